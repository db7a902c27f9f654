"""Everyone joined to a room, not only those lazy-loading gave us.

/sync with lazy-loaded members brings the member events of people who spoke; an encrypted room's
indicator must count the devices of everyone its keys go to, so the owning sync host fills in the
rest from the homeserver when the room's summary says members are missing."""

from django.db import transaction

from rooms.models import Membership, Room, RoomState
from rooms.services import LeaseHandle
from rooms.sync.leases import lease_check


def rooms_missing_members(*, account_id: int) -> dict[str, int]:
    """Encrypted rooms the account has joined whose known joined members fall short of the
    homeserver's count: room id -> that count (so a host asks once per count it saw)."""
    memberships = Membership.objects.filter(
        account_id=account_id, membership=Membership.JOIN, is_encrypted=True
    ).values_list("room_id", "room__room_id", "joined_member_count")
    wanted = {pk: (room_id, count) for pk, room_id, count in memberships if count}
    if not wanted:
        return {}
    known: dict[int, int] = {}
    for room_pk, content in RoomState.objects.filter(
        room_id__in=list(wanted), event_type="m.room.member"
    ).values_list("room_id", "content"):
        if isinstance(content, dict) and content.get("membership") == "join":
            known[room_pk] = known.get(room_pk, 0) + 1
    return {room_id: count for pk, (room_id, count) in wanted.items() if known.get(pk, 0) < count}


def room_members_fill(*, lease: LeaseHandle, room_id: str, events: list[dict]) -> int:
    """Add the member events the room's state lacks (never replacing what sync recorded, which
    may be newer). Returns how many were added."""
    added = 0
    with transaction.atomic():
        lease_check(account_id=lease.account_id, owner=lease.owner, token=lease.token)
        room = Room.objects.filter(room_id=room_id).first()
        if room is None:
            return 0
        for event in events:
            _, created = RoomState.objects.get_or_create(
                room=room,
                event_type="m.room.member",
                state_key=event["state_key"][:255],
                defaults={
                    "event_id": event["event_id"][:255],
                    "sender": event["sender"][:255],
                    "content": event["content"],
                    "origin_server_ts": event.get("origin_server_ts")
                    if isinstance(event.get("origin_server_ts"), int)
                    else 0,
                },
            )
            added += created
    return added
