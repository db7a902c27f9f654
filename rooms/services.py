"""Every write to rooms and timelines. Ingest commits a sync response's events and its next_batch in
one transaction, checked against the host's lease; the live push happens only after commit."""

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from django.db import transaction

from rooms import notify
from rooms.models import Event, Membership, Room, RoomState, SyncState, TimelineEntry
from rooms.naming import resolve_room
from rooms.sync.batch import InvitedRoomBatch, JoinedRoomBatch, LeftRoomBatch, SyncBatch
from rooms.sync.leases import lease_check

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LeaseHandle:
    account_id: int
    owner: str
    token: int


@dataclass(frozen=True)
class IngestResult:
    new_events: int
    rooms_changed: int
    backfill: list[tuple[str, str]]  # (room_id, prev_batch) of limited timelines


def sync_ingest(*, lease: LeaseHandle, own_user_id: str, batch: SyncBatch) -> IngestResult:
    """Store one /sync response for one account, atomically with its next_batch."""
    new_events = 0
    backfill: list[tuple[str, str]] = []
    with transaction.atomic():
        lease_check(account_id=lease.account_id, owner=lease.owner, token=lease.token)
        for joined in batch.joined:
            new_events += _ingest_joined(
                lease.account_id, own_user_id, joined, batch.direct_room_ids
            )
            if joined.limited and joined.prev_batch:
                backfill.append((joined.room_id, joined.prev_batch))
        for invited in batch.invited:
            _ingest_invite(lease.account_id, own_user_id, invited, batch.direct_room_ids)
        for left in batch.left:
            new_events += _ingest_left(lease.account_id, left)
        if batch.direct_room_ids is not None:
            _apply_direct_flags(lease.account_id, batch.direct_room_ids)
        SyncState.objects.update_or_create(
            account_id=lease.account_id, defaults={"next_batch": batch.next_batch}
        )
        rooms_changed = len(batch.joined) + len(batch.invited) + len(batch.left)
        if rooms_changed:
            account_id = lease.account_id
            transaction.on_commit(lambda: notify.room_list_changed(account_id=account_id))
    return IngestResult(new_events=new_events, rooms_changed=rooms_changed, backfill=backfill)


def _store_events(account_id: int, room: Room, events: Iterable[dict]) -> int:
    """Insert events once (event_id unique) and this account's timeline rows; replays change nothing."""
    events = list(events)
    if not events:
        return 0
    Event.objects.bulk_create(
        [
            Event(
                event_id=event["event_id"],
                room=room,
                sender=event["sender"],
                event_type=event["type"],
                state_key=event.get("state_key"),
                origin_server_ts=_ts(event),
                raw=event,
            )
            for event in events
        ],
        ignore_conflicts=True,
    )
    stored = dict(
        Event.objects.filter(event_id__in=[e["event_id"] for e in events]).values_list(
            "event_id", "id"
        )
    )
    already = set(
        TimelineEntry.objects.filter(
            account_id=account_id, event_id__in=stored.values()
        ).values_list("event_id", flat=True)
    )
    fresh = [
        TimelineEntry(account_id=account_id, room=room, event_id=stored[e["event_id"]])
        for e in events
        if stored.get(e["event_id"]) not in already
    ]
    # Keep the homeserver's order: entries are created in the order the events arrived.
    TimelineEntry.objects.bulk_create(fresh, ignore_conflicts=True)
    return len(fresh)


def _ts(event: dict) -> int:
    value = event.get("origin_server_ts")
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _apply_state(room: Room, events: Iterable[dict]) -> None:
    for event in events:
        if "state_key" not in event:
            continue
        RoomState.objects.update_or_create(
            room=room,
            event_type=event["type"],
            state_key=event["state_key"],
            defaults={
                "event_id": event["event_id"],
                "sender": event["sender"],
                "content": event.get("content", {}),
                "origin_server_ts": _ts(event),
            },
        )


def _state_map(room: Room) -> dict[tuple[str, str], dict]:
    return {
        (event_type, key): content
        for event_type, key, content in room.state.values_list("event_type", "state_key", "content")
    }


def _ingest_joined(
    account_id: int, own_user_id: str, joined: JoinedRoomBatch, direct: set[str] | None
) -> int:
    room, _ = Room.objects.get_or_create(room_id=joined.room_id)
    _apply_state(room, joined.state)
    _apply_state(room, joined.timeline)
    new_events = _store_events(account_id, room, joined.timeline)
    membership = Membership.objects.filter(account_id=account_id, room=room).first() or Membership(
        account_id=account_id, room=room
    )
    if joined.heroes is not None:
        membership.heroes = joined.heroes
    if joined.joined_count is not None:
        membership.joined_member_count = joined.joined_count
    if joined.invited_count is not None:
        membership.invited_member_count = joined.invited_count
    if joined.notification_count is not None:
        membership.notification_count = joined.notification_count
    if joined.highlight_count is not None:
        membership.highlight_count = joined.highlight_count
    membership.membership = Membership.JOIN
    membership.invite_state = []
    _describe(
        membership,
        own_user_id,
        _state_map(room),
        counts_known=membership.pk is not None or joined.joined_count is not None,
    )
    if direct is not None:
        membership.is_direct = joined.room_id in direct
    latest = max((_ts(e) for e in joined.timeline), default=0)
    membership.last_activity_ts = max(membership.last_activity_ts, latest)
    membership.save()
    return new_events


def _describe(membership: Membership, own_user_id: str, state: dict, *, counts_known: bool) -> None:
    resolved = resolve_room(
        own_user_id=own_user_id,
        state=state,
        heroes=membership.heroes or None,
        joined_count=membership.joined_member_count if counts_known else None,
        invited_count=membership.invited_member_count if counts_known else None,
    )
    membership.display_name = resolved.name
    membership.avatar_mxc = resolved.avatar_mxc
    topic = state.get(("m.room.topic", ""), {}).get("topic")
    membership.topic = topic[:2000] if isinstance(topic, str) else ""
    membership.is_encrypted = ("m.room.encryption", "") in state
    membership.is_space = state.get(("m.room.create", ""), {}).get("type") == "m.space"


def _ingest_invite(
    account_id: int, own_user_id: str, invited: InvitedRoomBatch, direct: set[str] | None
) -> None:
    room, _ = Room.objects.get_or_create(room_id=invited.room_id)
    state = {(e["type"], e["state_key"]): e["content"] for e in invited.stripped_state}
    own = next(
        (
            e
            for e in invited.stripped_state
            if e["type"] == "m.room.member" and e["state_key"] == own_user_id
        ),
        None,
    )
    inviter = own.get("sender", "") if own else ""
    inviter = inviter if isinstance(inviter, str) else ""
    membership = Membership.objects.filter(account_id=account_id, room=room).first() or Membership(
        account_id=account_id, room=room
    )
    membership.membership = Membership.INVITE
    membership.invite_state = invited.stripped_state
    membership.inviter = inviter[:255]
    membership.heroes = [inviter] if inviter and ("m.room.member", inviter) in state else []
    membership.joined_member_count = 0
    membership.invited_member_count = 0
    _describe(membership, own_user_id, state, counts_known=False)
    if own and own.get("content", {}).get("is_direct") is True:
        membership.is_direct = True
    elif direct is not None:
        membership.is_direct = invited.room_id in direct
    membership.last_activity_ts = max(membership.last_activity_ts, _ts(own or {}))
    membership.save()


def _ingest_left(account_id: int, left: LeftRoomBatch) -> int:
    room, _ = Room.objects.get_or_create(room_id=left.room_id)
    new_events = _store_events(account_id, room, left.timeline)
    Membership.objects.filter(account_id=account_id, room=room).update(membership=Membership.LEAVE)
    return new_events


def _apply_direct_flags(account_id: int, direct_room_ids: set[str]) -> None:
    memberships = Membership.objects.filter(account_id=account_id)
    memberships.filter(room__room_id__in=direct_room_ids).update(is_direct=True)
    memberships.exclude(room__room_id__in=direct_room_ids).exclude(
        membership=Membership.INVITE
    ).update(is_direct=False)


def sync_state_next_batch(*, account_id: int) -> str:
    return (
        SyncState.objects.filter(account_id=account_id).values_list("next_batch", flat=True).first()
        or ""
    )
