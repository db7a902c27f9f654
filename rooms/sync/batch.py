"""A /sync response as plain, validated data. Malformed events are dropped here (and counted), so
nothing downstream has to guard against a missing field and the loop never crashes on bad input."""

import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class JoinedRoomBatch:
    room_id: str
    state: list[dict] = field(default_factory=list)
    timeline: list[dict] = field(default_factory=list)
    limited: bool = False
    prev_batch: str | None = None
    heroes: list[str] | None = None
    joined_count: int | None = None
    invited_count: int | None = None
    notification_count: int | None = None
    highlight_count: int | None = None
    typing: list[str] | None = None  # None: no news; []: nobody is typing any more
    receipts: list[tuple[str, str, int]] = field(default_factory=list)  # (event, user, ts)
    # Encrypted events we decrypted: event id -> the envelope as received (the timeline holds the
    # clear event in its place).
    envelopes: dict[str, dict] = field(default_factory=dict)
    # Where each decrypted event's room key came from (event id -> Provenance), for its mark.
    origins: dict[str, Any] = field(default_factory=dict)


@dataclass
class InvitedRoomBatch:
    room_id: str
    stripped_state: list[dict] = field(default_factory=list)


@dataclass
class LeftRoomBatch:
    room_id: str
    state: list[dict] = field(default_factory=list)
    timeline: list[dict] = field(default_factory=list)


@dataclass
class SyncBatch:
    next_batch: str
    joined: list[JoinedRoomBatch] = field(default_factory=list)
    invited: list[InvitedRoomBatch] = field(default_factory=list)
    left: list[LeftRoomBatch] = field(default_factory=list)
    direct_room_ids: set[str] | None = None
    dropped_events: int = 0
    # When the response arrived (time.monotonic()): the sync lag metric runs from here to commit.
    received_at: float = field(default_factory=time.monotonic, repr=False, compare=False)


class MalformedSync(ValueError):
    """The response lacks what every /sync response must have (a next_batch)."""


def _dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list:
    return value if isinstance(value, list) else []


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def is_room_id(value: Any) -> bool:
    return isinstance(value, str) and value.startswith("!") and 3 <= len(value) <= 255


def is_room_event(event: Any) -> bool:
    """A timeline or state event with the fields every room event must carry."""
    return (
        isinstance(event, dict)
        and isinstance(event.get("event_id"), str)
        and isinstance(event.get("type"), str)
        and isinstance(event.get("sender"), str)
        and ("state_key" not in event or isinstance(event["state_key"], str))
        and len(event["event_id"]) <= 255
        and len(event["type"]) <= 255
        and len(event["sender"]) <= 255
    )


def is_stripped_state(event: Any) -> bool:
    return (
        isinstance(event, dict)
        and isinstance(event.get("type"), str)
        and isinstance(event.get("state_key"), str)
        and isinstance(event.get("content"), dict)
    )


class _Counter:
    def __init__(self) -> None:
        self.dropped = 0

    def events(self, raw: Any, check=is_room_event) -> list[dict]:
        kept = []
        for event in _list(raw):
            if check(event):
                if not isinstance(event.get("content"), dict):
                    event = {**event, "content": {}}
                kept.append(event)
            else:
                self.dropped += 1
        return kept


def batch_from_sync_json(raw: Any) -> SyncBatch:
    """Translate a raw /sync body into a SyncBatch; only a missing next_batch is fatal."""
    raw = _dict(raw)
    next_batch = raw.get("next_batch")
    if not isinstance(next_batch, str) or not next_batch:
        raise MalformedSync("The /sync response has no next_batch.")
    counter = _Counter()
    rooms = _dict(raw.get("rooms"))
    batch = SyncBatch(next_batch=next_batch)
    for room_id, room in _dict(rooms.get("join")).items():
        if not is_room_id(room_id):
            counter.dropped += 1
            continue
        room = _dict(room)
        timeline = _dict(room.get("timeline"))
        summary = _dict(room.get("summary"))
        counts = _dict(room.get("unread_notifications"))
        heroes = summary.get("m.heroes")
        batch.joined.append(
            JoinedRoomBatch(
                room_id=room_id,
                state=counter.events(_dict(room.get("state")).get("events")),
                timeline=counter.events(timeline.get("events")),
                limited=timeline.get("limited") is True,
                prev_batch=timeline.get("prev_batch")
                if isinstance(timeline.get("prev_batch"), str)
                else None,
                heroes=[h for h in heroes if isinstance(h, str)]
                if isinstance(heroes, list)
                else None,
                joined_count=_int_or_none(summary.get("m.joined_member_count")),
                invited_count=_int_or_none(summary.get("m.invited_member_count")),
                notification_count=_int_or_none(counts.get("notification_count")),
                highlight_count=_int_or_none(counts.get("highlight_count")),
                typing=_typing(room),
                receipts=_receipts(room),
            )
        )
    for room_id, room in _dict(rooms.get("invite")).items():
        if not is_room_id(room_id):
            counter.dropped += 1
            continue
        stripped = _dict(_dict(room).get("invite_state")).get("events")
        batch.invited.append(
            InvitedRoomBatch(
                room_id=room_id, stripped_state=counter.events(stripped, is_stripped_state)
            )
        )
    for room_id, room in _dict(rooms.get("leave")).items():
        if not is_room_id(room_id):
            counter.dropped += 1
            continue
        room = _dict(room)
        batch.left.append(
            LeftRoomBatch(
                room_id=room_id,
                state=counter.events(_dict(room.get("state")).get("events")),
                timeline=counter.events(_dict(room.get("timeline")).get("events")),
            )
        )
    batch.direct_room_ids = _direct_rooms(raw)
    batch.dropped_events = counter.dropped
    return batch


def _typing(room: dict) -> list[str] | None:
    """Who is typing, from the room's m.typing ephemeral event (None when the sync has none)."""
    for event in _list(_dict(room.get("ephemeral")).get("events")):
        if isinstance(event, dict) and event.get("type") == "m.typing":
            users = _dict(event.get("content")).get("user_ids")
            return [u for u in _list(users) if isinstance(u, str)][:20]
    return None


def _receipts(room: dict) -> list[tuple[str, str, int]]:
    """Public read receipts (m.read) from the room's m.receipt ephemeral events."""
    found = []
    for event in _list(_dict(room.get("ephemeral")).get("events")):
        if not isinstance(event, dict) or event.get("type") != "m.receipt":
            continue
        for event_id, kinds in _dict(event.get("content")).items():
            for user_id, data in _dict(_dict(kinds).get("m.read")).items():
                if isinstance(event_id, str) and isinstance(user_id, str) and len(event_id) <= 255:
                    found.append(
                        (event_id, user_id[:255], _int_or_none(_dict(data).get("ts")) or 0)
                    )
    return found


def _direct_rooms(raw: dict) -> set[str] | None:
    for event in _list(_dict(raw.get("account_data")).get("events")):
        if isinstance(event, dict) and event.get("type") == "m.direct":
            rooms: set[str] = set()
            for room_ids in _dict(event.get("content")).values():
                rooms.update(r for r in _list(room_ids) if isinstance(r, str))
            return rooms
    return None
