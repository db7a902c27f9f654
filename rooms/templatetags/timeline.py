"""Template filters for timelines."""

from datetime import UTC, datetime

from django import template

register = template.Library()


@register.filter
def matrix_time(origin_server_ts: int) -> str:
    """'14:05' for a Matrix millisecond timestamp (UTC until people have a time zone setting)."""
    try:
        moment = datetime.fromtimestamp(int(origin_server_ts) / 1000, tz=UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return ""
    return moment.strftime("%H:%M")


@register.filter
def matrix_iso(origin_server_ts: int) -> str:
    try:
        return datetime.fromtimestamp(int(origin_server_ts) / 1000, tz=UTC).isoformat()
    except (TypeError, ValueError, OverflowError, OSError):
        return ""


@register.filter
def dom_id(value: str) -> str:
    """A stable HTML id for a Matrix id (they contain '$', '!' and ':')."""
    import hashlib

    return "t" + hashlib.sha1(str(value).encode(), usedforsecurity=False).hexdigest()[:16]


@register.simple_tag
def quick_reactions() -> tuple[str, ...]:
    """The reactions the shared message menu offers in one click."""
    from rooms.selectors import TimelineItem

    return TimelineItem.quick_reactions
