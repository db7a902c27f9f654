"""Message HTML: Markdown from our composer, and every formatted_body through one sanitizer.

The allowlist is the Matrix spec's (client-server API, "m.room.message msgtypes", HTML subset)."""

import re

import nh3
from markdown_it import MarkdownIt

ALLOWED_TAGS = {
    "del",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "blockquote",
    "p",
    "a",
    "ul",
    "ol",
    "sup",
    "sub",
    "li",
    "b",
    "i",
    "u",
    "strong",
    "em",
    "s",
    "code",
    "hr",
    "br",
    "div",
    "table",
    "thead",
    "tbody",
    "tr",
    "th",
    "td",
    "caption",
    "pre",
    "span",
    "img",
    "details",
    "summary",
}
ALLOWED_ATTRIBUTES = {
    "span": {"data-mx-bg-color", "data-mx-color", "data-mx-spoiler", "data-mx-maths"},
    "font": {"data-mx-bg-color", "data-mx-color", "color"},
    "a": {"href", "target"},
    "img": {"width", "height", "alt", "title", "src"},
    "ol": {"start"},
    "code": {"class"},
    "div": {"data-mx-maths"},
}
URL_SCHEMES = {"https", "http", "ftp", "mailto", "magnet"}
_COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")
_CODE_CLASS = re.compile(r"^language-[A-Za-z0-9_+-]{1,32}$")

_markdown = MarkdownIt("commonmark", {"html": False, "linkify": False, "breaks": True}).enable(
    "strikethrough"
)


def _attribute_filter(tag: str, attribute: str, value: str) -> str | None:
    if attribute in ("data-mx-color", "data-mx-bg-color", "color"):
        return value if _COLOUR.match(value) else None
    if tag == "code" and attribute == "class":
        return value if _CODE_CLASS.match(value) else None
    if tag == "img" and attribute == "src":
        return None  # inline images arrive with the media proxy (mxc only); never remote URLs
    return value


def sanitize_html(html: str) -> str:
    """Reduce untrusted HTML to the spec's allowlist; links open safely in a new context."""
    without_reply = re.sub(r"<mx-reply>.*?</mx-reply>", "", html, flags=re.S | re.I)
    return nh3.clean(
        without_reply,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=URL_SCHEMES,
        attribute_filter=_attribute_filter,
        link_rel="noopener noreferrer",
        strip_comments=True,
    )


def markdown_to_html(text: str) -> str | None:
    """The composer's Markdown as org.matrix.custom.html, or None when it is plain text."""
    html = _markdown.render(text).strip()
    plain = f"<p>{_escape(text.strip())}</p>".replace("\n", "<br />\n")
    if html in (plain, f"<p>{_escape(text.strip())}</p>"):
        return None
    return sanitize_html(html)


def _escape(text: str) -> str:
    return (
        text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    )
