"""Holes in a timeline left by limited syncs: recorded with the sync that found them, filled page by
page in the background by the account's owner, and removed only when complete.

A gap is complete when a page reaches events this account already has, or the room's start (the
homeserver has nothing older). There is no page limit: the history is meant to be lossless. Each page
commits with the gap's progress, so a host that dies mid-fill leaves the rest for the next owner.
"""

from dataclasses import dataclass

from django.db import transaction

from rooms import notify
from rooms.models import Room, TimelineGap


@dataclass(frozen=True)
class PendingGap:
    gap_id: int
    room_id: str
    token: str


def gap_record(*, account_id: int, room: Room, token: str, timeline: list[dict]) -> TimelineGap:
    """Inside the sync's transaction: the events before `timeline` are missing from `token` back."""
    stamps = [e.get("origin_server_ts") for e in timeline]
    stamps = [ts for ts in stamps if isinstance(ts, int) and not isinstance(ts, bool)]
    gap = TimelineGap.objects.create(
        account_id=account_id, room=room, token=token, anchor_ts=min(stamps, default=0)
    )
    gap_id = gap.pk
    transaction.on_commit(lambda: notify.gap_changed(account_id=account_id, gap_id=gap_id))
    return gap


def gaps_pending(*, account_id: int) -> list[PendingGap]:
    """The account's unfilled gaps, oldest recorded first."""
    return [
        PendingGap(gap_id, room_id, token)
        for gap_id, room_id, token in TimelineGap.objects.filter(account_id=account_id)
        .order_by("id")
        .values_list("id", "room__room_id", "token")
    ]


def gap_advance(
    *,
    account_id: int,
    gap_id: int,
    chunk: list[dict],
    next_token: str | None,
    reached_known: bool,
) -> bool:
    """Inside the transaction that stored `chunk` (a /messages page, newest first): record how far
    the gap is filled. `reached_known`: the page held events this account had before it. Returns
    True when the gap is complete (and removed)."""
    gap = TimelineGap.objects.select_for_update().filter(pk=gap_id, account_id=account_id).first()
    if gap is None:
        return True
    finished = reached_known or not next_token or not chunk
    if finished:
        gap.delete()
    else:
        stamps = [e.get("origin_server_ts") for e in chunk]
        stamps = [ts for ts in stamps if isinstance(ts, int) and not isinstance(ts, bool)]
        if gap.anchor_ts:
            stamps.append(gap.anchor_ts)
        gap.token = next_token
        gap.pages_fetched += 1
        gap.anchor_ts = min(stamps, default=0)
        gap.last_error = ""
        gap.save(update_fields=["token", "pages_fetched", "anchor_ts", "last_error"])
    transaction.on_commit(lambda: notify.gap_changed(account_id=account_id, gap_id=gap_id))
    return finished


def gap_failed(*, account_id: int, gap_id: int, error: str) -> None:
    """A page could not be fetched: the gap stays, with the reason, and is tried again later."""
    TimelineGap.objects.filter(pk=gap_id, account_id=account_id).update(last_error=error[:255])
    transaction.on_commit(lambda: notify.gap_changed(account_id=account_id, gap_id=gap_id))
