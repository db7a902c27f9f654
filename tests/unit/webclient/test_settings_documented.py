"""The README's settings list is complete: every environment variable the code reads is in it."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
READS = re.compile(r"""(?:os\.environ\.get|os\.getenv|env_list)\(\s*["']([A-Z][A-Z0-9_]+)["']""")


def variables_read() -> set[str]:
    names = set()
    for package in ("webclient", "accounts", "rooms"):
        for path in (ROOT / package).rglob("*.py"):
            names.update(READS.findall(path.read_text()))
    return names


def test_every_variable_the_code_reads_is_in_the_readme():
    readme = (ROOT / "README.md").read_text()
    names = variables_read()
    assert len(names) > 40  # the pattern still finds the settings
    missing = sorted(name for name in names if f"`{name}`" not in readme)
    assert not missing, f"add to the README's settings list: {missing}"


def test_the_production_environment_example_sets_what_production_requires():
    example = (ROOT / "deploy" / "webclient.env.example").read_text()
    production = (ROOT / "webclient" / "settings" / "production.py").read_text()
    required = re.findall(r'^\s+"([A-Z_]+)": ', production, re.MULTILINE)
    assert "REDIS_URL" in required
    assert [name for name in required if f"\n{name}=" not in example] == []
