"""A message in its place: the account's own timeline around one of its entries (a search
result, a link), a page above and a page below, without loading the whole room."""

from dataclasses import dataclass

from django.db.models import Q

from accounts.models import MatrixAccount
from rooms import selectors, timeline
from rooms.models import Membership, TimelineEntry

AROUND = 15  # shown items above and below the message


@dataclass(frozen=True)
class TimelineContext:
    membership: Membership
    items: list  # selectors.TimelineItem, oldest first
    stream_id: int  # the message the page is about
    has_older: bool
    has_newer: bool


def timeline_around(
    *, account: MatrixAccount, room_id: str, stream_id: int, around: int = AROUND
) -> TimelineContext | None:
    """None unless the entry is this account's own, in that room."""
    membership = selectors.membership_for(account=account, room_id=room_id)
    if membership is None:
        return None
    room = membership.room
    anchor = (
        TimelineEntry.objects.filter(pk=stream_id, account=account, room=room)
        .values_list("origin_server_ts", flat=True)
        .first()
    )
    if anchor is None:
        return None
    shown = timeline.shown(TimelineEntry.objects.filter(account=account, room=room))
    above = list(
        timeline.before(shown, stream_id)
        .order_by("-origin_server_ts", "-id")
        .values_list("id", flat=True)[: around + 1]
    )
    below = list(
        shown.filter(Q(origin_server_ts__gt=anchor) | Q(origin_server_ts=anchor, id__gt=stream_id))
        .order_by("origin_server_ts", "id")
        .values_list("id", flat=True)[: around + 1]
    )
    ids = [*above[:around], stream_id, *below[:around]]
    items = selectors.timeline_items(account=account, room=room, entry_ids=ids, limit=len(ids))
    return TimelineContext(
        membership=membership,
        items=items,
        stream_id=stream_id,
        has_older=len(above) > around,
        has_newer=len(below) > around,
    )
