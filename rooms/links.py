"""Web links in message bodies (pure functions: pages and the preview fetcher share them)."""

import re

_LINK = re.compile(r"https?://[^\s<>\"'`]{3,2000}", re.IGNORECASE)
_TRAILING = ".,;:!?)]}'\""


def first_link(body: object) -> str:
    """The first http(s) link in a message body ("" when there is none)."""
    if not isinstance(body, str):
        return ""
    match = _LINK.search(body)
    return match.group(0).rstrip(_TRAILING) if match else ""


def link_of(event: dict) -> str:
    content = event.get("content") if isinstance(event.get("content"), dict) else {}
    if event.get("type") != "m.room.message" or content.get("msgtype") not in (
        "m.text",
        "m.notice",
        "m.emote",
    ):
        return ""
    return first_link(content.get("body"))
