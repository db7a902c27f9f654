"""Which host, account and room a log line is about, and no secrets in any line.

A sync host runs hundreds of accounts in one process, so a bare "sync failed" is useless. Code that
works for one account binds it once (`bind(account=...)` at the top of the account's task); asyncio
tasks started inside inherit it, and asgiref's `sync_to_async` carries it to the database thread,
so every line logged on its behalf, nio's included, names the account: each record is stamped
with the bound fields when it is made, and `ContextFormatter` (the console handler's,
settings.LOGGING) writes them as `%(context)s` and removes access tokens and passwords from the
line, traceback included, whoever logged it.

Lives in accounts (the lowest app) so that rooms and accounts can both bind without importing
upward; it imports nothing of ours.
"""

import contextlib
import logging
import re
from collections.abc import Iterator
from contextvars import ContextVar

_fields: ContextVar[tuple[tuple[str, str], ...]] = ContextVar("log_context", default=())

# Values that must never reach a log: Matrix access tokens in URLs, headers or JSON, passwords, and
# single sign-on's loginTokens (single use, but valid for a while if an exchange failed).
_SECRETS = [
    (re.compile(r"\b((?:access_token|password|loginToken)=)[^&\s\"']+"), r"\1[redacted]"),
    (re.compile(r"(Bearer\s+)[A-Za-z0-9._~+/=-]+"), r"\1[redacted]"),
    (
        re.compile(
            r"""(["']?(?:access_token|refresh_token|password|registration_shared_secret|pickle_key)["']?\s*[:=]\s*)(["'])[^"']*\2"""
        ),
        r"\1\2[redacted]\2",
    ),
    (re.compile(r"\bsy[tdl]_[A-Za-z0-9_]+"), "[redacted]"),  # Synapse's token formats
]


def bind(**fields: object) -> None:
    """Add fields (account=, room=, host=) to every later log line of the current task or thread."""
    current = dict(_fields.get())
    current.update({name: str(value) for name, value in fields.items() if value is not None})
    _fields.set(tuple(current.items()))


@contextlib.contextmanager
def bound(**fields: object) -> Iterator[None]:
    """Like bind(), for the lines logged inside the block only."""
    token = _fields.set(_fields.get())
    bind(**fields)
    try:
        yield
    finally:
        _fields.reset(token)


def current() -> dict[str, str]:
    return dict(_fields.get())


def scrub(text: str) -> str:
    """The text with anything that looks like a token or password replaced."""
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


def _rendered() -> str:
    return "".join(f" {name}={value}" for name, value in _fields.get())


_installed = False


def install() -> None:
    """Stamp every log record with the bound fields when it is created (in the task or thread
    that logs it), so a handler that formats later or elsewhere still names the right account."""
    global _installed
    if _installed:
        return
    make_record = logging.getLogRecordFactory()

    def with_context(*args, **kwargs) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        record.context = _rendered()
        return record

    logging.setLogRecordFactory(with_context)
    _installed = True


class ContextFormatter(logging.Formatter):
    """The console handler's formatter (settings.LOGGING): fills `%(context)s` with the bound
    fields (" host=h account=12 room=!r:x", or "") and scrubs the whole line, traceback
    included, of tokens and passwords. Configuring it installs the record stamp."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        install()

    def format(self, record: logging.LogRecord) -> str:
        if not hasattr(record, "context"):  # made before install(), or by hand
            record.context = _rendered()
        return scrub(super().format(record))
