"""Our templates hold nothing the Content-Security-Policy would refuse: no inline script, handler,
style or eval'd htmx attribute. (The browser test proves the pages; this names the line at once.)"""

import re
from pathlib import Path

import pytest

TEMPLATES = Path(__file__).resolve().parents[3] / "templates"
FORBIDDEN = {
    "hx-on handler (move it to static/js/app.js)": re.compile(r"\b(?:data-)?hx-on[:\-]", re.I),
    "inline event handler": re.compile(r"<[^>]*\son[a-z]+\s*=", re.I),
    "inline <script> (use a static file)": re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.I),
    "inline style attribute (use static/css/app.css)": re.compile(r"<[^>]*\sstyle\s*=", re.I),
    "<style> block": re.compile(r"<style\b", re.I),
    "hx-vars or js: values (htmx would eval them)": re.compile(
        r"hx-vars|hx-vals\s*=\s*['\"]\s*(?:js|javascript):", re.I
    ),
    "javascript: URL": re.compile(r"javascript:", re.I),
}


@pytest.mark.parametrize("template", sorted(TEMPLATES.rglob("*.html")), ids=lambda p: p.name)
def test_template_needs_no_unsafe_policy(template):
    text = template.read_text()
    found = [
        f"{template.relative_to(TEMPLATES)}:{text.count(chr(10), 0, match.start()) + 1}: {what}"
        for what, pattern in FORBIDDEN.items()
        for match in pattern.finditer(text)
    ]
    assert found == []
