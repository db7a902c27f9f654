"""Every read for pages and sync hosts, each with a bounded number of queries."""

from dataclasses import dataclass

from accounts.models import MatrixAccount
from rooms.models import Membership, RoomState, TimelineEntry


@dataclass(frozen=True)
class Device:
    homeserver_url: str
    user_id: str
    access_token: str


def account_device(*, account_id: int) -> Device:
    account = MatrixAccount.objects.get(pk=account_id)
    return Device(account.homeserver_url, account.mxid, account.access_token)


def active_account_ids(*, ids: list[int]) -> list[int]:
    return list(
        MatrixAccount.objects.filter(pk__in=ids, is_active=True, user__is_active=True)
        .exclude(access_token="")
        .values_list("id", flat=True)
    )


@dataclass(frozen=True)
class RoomList:
    invites: list[Membership]
    spaces: list[Membership]
    rooms: list[Membership]
    direct: list[Membership]
    synced: bool

    @property
    def is_empty(self) -> bool:
        return not (self.invites or self.rooms or self.direct or self.spaces)


def room_list(*, account: MatrixAccount) -> RoomList:
    """Joined rooms and pending invites, most recent first (one query, plus one for sync state)."""
    memberships = list(
        Membership.objects.filter(
            account=account, membership__in=[Membership.JOIN, Membership.INVITE]
        )
        .select_related("room")
        .order_by("-last_activity_ts", "display_name")
    )
    joined = [m for m in memberships if m.membership == Membership.JOIN]
    return RoomList(
        invites=[m for m in memberships if m.membership == Membership.INVITE],
        spaces=[m for m in joined if m.is_space],
        rooms=[m for m in joined if not m.is_space and not m.is_direct],
        direct=[m for m in joined if not m.is_space and m.is_direct],
        synced=hasattr(account, "sync_state") and bool(account.sync_state.next_batch),
    )


@dataclass(frozen=True)
class TimelineItem:
    event_id: str
    sender: str
    sender_name: str
    event_type: str
    body: str
    origin_server_ts: int
    stream_id: int


@dataclass(frozen=True)
class RoomView:
    membership: Membership
    items: list[TimelineItem]


def _body_of(raw: dict) -> str:
    content = raw.get("content") if isinstance(raw.get("content"), dict) else {}
    event_type = raw.get("type")
    if event_type == "m.room.message":
        body = content.get("body")
        return body if isinstance(body, str) else "(message without text)"
    if event_type == "m.room.encrypted":
        return "(encrypted message)"
    if event_type == "m.room.member":
        return f"membership: {content.get('membership', '?')}"
    if event_type == "m.room.name":
        return f"renamed the room to {content.get('name', '')}"
    if event_type == "m.room.topic":
        return f"changed the topic to {content.get('topic', '')}"
    if event_type == "m.room.create":
        return "created the room"
    return ""


def room_view(*, account: MatrixAccount, room_id: str, limit: int = 50) -> RoomView | None:
    """A room the account joined or was invited to, with its latest events as this account saw them."""
    membership = (
        Membership.objects.filter(
            account=account,
            room__room_id=room_id,
            membership__in=[Membership.JOIN, Membership.INVITE],
        )
        .select_related("room")
        .first()
    )
    if membership is None:
        return None
    entries = list(
        TimelineEntry.objects.filter(account=account, room=membership.room)
        .select_related("event")
        .order_by("-id")[:limit]
    )
    names = dict(
        RoomState.objects.filter(room=membership.room, event_type="m.room.member").values_list(
            "state_key", "content__displayname"
        )
    )
    items = []
    for entry in reversed(entries):
        raw = entry.event.raw
        body = _body_of(raw)
        if not body:
            continue
        sender = entry.event.sender
        name = names.get(sender)
        items.append(
            TimelineItem(
                event_id=entry.event.event_id,
                sender=sender,
                sender_name=name if isinstance(name, str) and name else sender,
                event_type=entry.event.event_type,
                body=body,
                origin_server_ts=entry.event.origin_server_ts,
                stream_id=entry.id,
            )
        )
    return RoomView(membership=membership, items=items)
