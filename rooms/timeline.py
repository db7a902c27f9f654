"""Timeline reads that pages page through: which entries are shown, catch-up after a stream
position, and the gaps still filling, each in a bounded number of indexed queries.

Pages order entries by (origin_server_ts, id). The id is a stream position (arrival order), so a
back-filled event has a high id but an old timestamp: it belongs in its place, not at the bottom.
"""

from dataclasses import dataclass, replace

from django.db.models import Q, QuerySet

from rooms.models import Room, TimelineEntry, TimelineGap

# Event types a timeline shows a line for (see selectors._body_of); anything else is state or a
# relation that changes another message.
SHOWN_TYPES = (
    "m.room.message",
    "m.room.encrypted",
    "m.room.member",
    "m.room.name",
    "m.room.topic",
    "m.room.create",
)
# Relations shown inside other messages (edits, reactions) or in their thread (relations.is_hidden).
FOLDED_RELATIONS = ("m.replace", "m.thread", "m.annotation")


def shown(entries: QuerySet) -> QuerySet:
    """Only entries that make a line of their own, so a page of N is N visible items: a run of
    reactions or edits can never empty a page (the filter rides the (account, room, ts, id) index;
    each candidate joins its event by primary key). A sealed entry shows as m.room.encrypted."""
    return entries.filter(Q(sealed=True) | Q(event__event_type__in=SHOWN_TYPES)).exclude(
        event__rel_type__in=FOLDED_RELATIONS
    )


def before(entries: QuerySet, stream_id: int) -> QuerySet:
    """Entries shown above the one with this stream id (keyset on (origin_server_ts, id)); 0 means
    "above nothing yet": a page that shows no entry at all reads from the newest."""
    if not stream_id:
        return entries
    anchor_ts = (
        TimelineEntry.objects.filter(pk=stream_id)
        .values_list("origin_server_ts", flat=True)
        .first()
    )
    if anchor_ts is None:
        return entries.none()
    return entries.filter(
        Q(origin_server_ts__lt=anchor_ts) | Q(origin_server_ts=anchor_ts, id__lt=stream_id)
    )


@dataclass(frozen=True)
class CatchUpScan:
    shown_ids: list[int]  # new entries that make a line, to render
    touched_event_ids: list[str]  # messages that new edits, reactions or redactions change
    position: int  # the last stream position read: the next page starts after it
    more: bool  # rows after `position` exist already: ask again


CATCH_UP_ROWS = 50  # rows read per catch-up request; the page asks again while more follow


def catch_up_scan(
    *, account_id: int, room: Room, after: int, rows: int = CATCH_UP_ROWS
) -> CatchUpScan:
    """The account's entries in the room after a stream position, `rows` at a time (two queries).

    The position advances over every row read, hidden kinds too, so a run of reactions never
    stalls a catch-up; the page asks again while `more` says there is more."""
    read = list(
        TimelineEntry.objects.filter(account_id=account_id, room=room, id__gt=after)
        .order_by("id")
        .values_list(
            "id",
            "sealed",
            "event__event_type",
            "event__rel_type",
            "event__relates_to",
            "event__redacts",
        )[: rows + 1]
    )
    more = len(read) > rows
    read = read[:rows]
    shown_ids, touched = [], set()
    for entry_id, sealed, event_type, rel_type, relates_to, redacts in read:
        if (sealed or event_type in SHOWN_TYPES) and rel_type not in FOLDED_RELATIONS:
            shown_ids.append(entry_id)
        else:
            touched.update(t for t in (relates_to, redacts) if t)
    return CatchUpScan(shown_ids, sorted(touched), read[-1][0] if read else after, more)


@dataclass(frozen=True)
class GapMarker:
    """A hole still filling, shown where it is ("Loading missed messages…") until it is filled.
    Its ordering key is (anchor_ts, 0): above every entry stamped at or after the anchor."""

    gap_id: int
    anchor_ts: int
    error: str = ""


def gap_markers(*, account_id: int, room: Room) -> list[GapMarker]:
    return [
        GapMarker(gap_id, anchor_ts, error)
        for gap_id, anchor_ts, error in TimelineGap.objects.filter(
            account_id=account_id, room=room
        ).values_list("id", "anchor_ts", "last_error")
    ]


def place_gaps(
    items: list, markers: list[GapMarker], *, newest: bool, oldest: bool
) -> tuple[list, list[GapMarker]]:
    """The page's items with each marker on the item it sits above (`gaps_above`), and the markers
    below the last item. A marker above the first item shows only when nothing older is left to
    load (else the older page shows it); one below the last only on the newest page."""
    above: dict[int, list[GapMarker]] = {}
    below: list[GapMarker] = []
    for marker in sorted(markers, key=lambda m: m.anchor_ts):
        if items and marker.anchor_ts < items[0].origin_server_ts and not oldest:
            continue
        index = next(
            (i for i, item in enumerate(items) if item.origin_server_ts >= marker.anchor_ts), None
        )
        if index is not None:
            above.setdefault(index, []).append(marker)
        elif newest:
            below.append(marker)
    placed = [
        replace(item, gaps_above=tuple(above[i])) if i in above else item
        for i, item in enumerate(items)
    ]
    return placed, below
