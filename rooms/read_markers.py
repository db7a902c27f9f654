"""The person's own read marker, kept here so unread counts follow what the page shows.

The homeserver counts notifications after the newest read receipt it has processed, and never
counts our own messages as reading. A /sync computed before our receipt arrived (a long poll in
flight) still carries the old count, and so does every sync of a room where we spoke without a
receipt. So the count we keep is capped by what this account's timeline holds after the local
marker: nothing the person has read, or said, can make the room unread again.
"""

from rooms.models import Event, Membership, TimelineEntry


def room_read_up_to(*, account_id: int, room_id: int, ts: int) -> None:
    """The page showed the room up to an event at `ts`: the counts drop to 0 at once and the
    marker moves forward (never back: an older report changes nothing it covers)."""
    memberships = Membership.objects.filter(account_id=account_id, room_id=room_id)
    memberships.update(notification_count=0, highlight_count=0)
    memberships.filter(read_up_to_ts__lt=ts).update(read_up_to_ts=ts)


def counts_from_sync(
    membership: Membership,
    *,
    own_user_id: str,
    timeline: list[dict],
    receipts: list[tuple[str, str, int]],
    notification_count: int | None,
    highlight_count: int | None,
) -> None:
    """Set a sync's unread counts on `membership` (saved by the caller), after moving the marker
    to our own newest message or receipt in the same sync, and capped by what is newer than it."""
    membership.read_up_to_ts = max(
        membership.read_up_to_ts,
        _own_newest(timeline, own_user_id),
        _own_receipt_ts(timeline, receipts, own_user_id),
    )
    if notification_count is not None:
        membership.notification_count = notification_count
    if highlight_count is not None:
        membership.highlight_count = highlight_count
    if membership.read_up_to_ts and (membership.notification_count or membership.highlight_count):
        unread = _others_after(membership, own_user_id)
        membership.notification_count = min(membership.notification_count, unread)
        membership.highlight_count = min(membership.highlight_count, unread)


def _own_newest(timeline: list[dict], own_user_id: str) -> int:
    return max(
        (
            _ts(event)
            for event in timeline
            if event.get("sender") == own_user_id and not _state(event)
        ),
        default=0,
    )


def _own_receipt_ts(timeline: list[dict], receipts: list[tuple[str, str, int]], own: str) -> int:
    """The timestamp of the event our own receipt (from any of our devices) points at."""
    read = [event_id for event_id, user_id, _ts_read in receipts if user_id == own]
    if not read:
        return 0
    in_batch = {event["event_id"]: _ts(event) for event in timeline if event.get("event_id")}
    known = [in_batch[event_id] for event_id in read if event_id in in_batch]
    missing = [event_id for event_id in read if event_id not in in_batch]
    if missing:
        known.extend(
            Event.objects.filter(event_id__in=missing).values_list("origin_server_ts", flat=True)
        )
    return max(known, default=0)


def _others_after(membership: Membership, own_user_id: str) -> int:
    """How many events from others this account holds after the marker: the most that can be
    unread."""
    return (
        TimelineEntry.objects.filter(
            account_id=membership.account_id,
            room_id=membership.room_id,
            origin_server_ts__gt=membership.read_up_to_ts,
        )
        .exclude(event__sender=own_user_id)
        .count()
    )


def _ts(event: dict) -> int:
    value = event.get("origin_server_ts")
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _state(event: dict) -> bool:
    return "state_key" in event
