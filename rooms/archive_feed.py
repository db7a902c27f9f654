"""The reads the organisation's archive (records/) makes of the local store: timeline rows in id
order with their events, and the current form of events it holds still encrypted. records reads
through here and rooms never imports records."""

from collections.abc import Iterable
from dataclasses import dataclass

from rooms.models import Event, TimelineEntry


@dataclass(frozen=True)
class ReceivedEvent:
    """One account's timeline row and the shared event it points at, as the archive needs them."""

    entry_id: int
    user_id: str  # the receiving account's Matrix ID
    event_id: str
    room_id: str
    sender: str
    event_type: str
    origin_server_ts: int
    raw: dict
    encrypted_raw: dict | None
    redacts: str


_FIELDS = (
    "id",
    "account__mxid",
    "event__event_id",
    "event__room__room_id",
    "event__sender",
    "event__event_type",
    "event__origin_server_ts",
    "event__raw",
    "event__encrypted_raw",
    "event__redacts",
)


def _received(rows: Iterable[tuple]) -> list[ReceivedEvent]:
    return [ReceivedEvent(*row) for row in rows]


def timeline_after(*, after_id: int, limit: int) -> list[ReceivedEvent]:
    """The next timeline rows of every account after `after_id`, oldest first (one query)."""
    rows = (
        TimelineEntry.objects.filter(id__gt=after_id).order_by("id").values_list(*_FIELDS)[:limit]
    )
    return _received(rows)


def timeline_rows(*, entry_ids: Iterable[int]) -> list[ReceivedEvent]:
    """The timeline rows with these ids that exist now (rows the archiver passed while they were
    still uncommitted)."""
    entry_ids = sorted(entry_ids)
    found: list[ReceivedEvent] = []
    for start in range(0, len(entry_ids), 1000):  # SQLite caps a query's parameters
        rows = TimelineEntry.objects.filter(id__in=entry_ids[start : start + 1000]).order_by("id")
        found.extend(_received(rows.values_list(*_FIELDS)))
    return found


def events_readable(*, event_ids: Iterable[str]) -> dict[str, tuple[dict, dict | None]]:
    """event_id -> (clear event, envelope) for the given events that a device of ours has
    decrypted since (still-encrypted ones and unknown ids are left out)."""
    rows = (
        Event.objects.filter(event_id__in=list(event_ids))
        .exclude(event_type="m.room.encrypted")
        .values_list("event_id", "raw", "encrypted_raw")
    )
    return {event_id: (raw, encrypted_raw) for event_id, raw, encrypted_raw in rows}
