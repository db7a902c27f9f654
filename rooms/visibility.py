"""What one account may be shown: its own timeline rows (those its own device could read) and the
state of rooms it is in. Events are stored once and shared between accounts, so every read that
shows content to a person asks here first, never the shared Event table directly."""

from dataclasses import dataclass

from django.db.models import Exists, OuterRef, Q

from accounts.matrix.client_api import profile_avatar_url
from accounts.matrix.errors import MatrixError
from accounts.models import MatrixAccount
from rooms.models import Event, MediaReference, Membership, Room, TimelineEntry


@dataclass(frozen=True)
class SeenEvent:
    """An event as this account received it: `sealed` when its own device could not read it
    (then only the envelope's sender and ids are its to see, never `raw`)."""

    event_id: str
    stream_id: int
    sealed: bool
    sender: str
    raw: dict


def seen_events(*, account: MatrixAccount, room: Room, event_ids) -> dict[str, SeenEvent]:
    """The account's own timeline rows for these events (one indexed query); an event it never
    received is simply absent."""
    if not event_ids:
        return {}
    rows = TimelineEntry.objects.filter(
        account=account, room=room, event__event_id__in=list(event_ids)
    ).values_list("event__event_id", "id", "sealed", "event__sender", "event__raw")
    return {
        event_id: SeenEvent(event_id, stream_id, sealed, sender, {} if sealed else raw)
        for event_id, stream_id, sealed, sender, raw in rows
    }


def readable_event(*, account: MatrixAccount, room_id: str, event_id: str) -> Event | None:
    """An event of the account's own timeline that its own device could read, else None."""
    if not room_id or not event_id:
        return None
    entry = (
        TimelineEntry.objects.filter(
            account=account, room__room_id=room_id, event__event_id=event_id, sealed=False
        )
        .select_related("event")
        .first()
    )
    return entry.event if entry is not None else None


def may_see_media(*, account: MatrixAccount, server_name: str, media_id: str) -> bool:
    """Whether this account was shown this mxc:// URI: by an event of its own timeline that its
    own device could read (files, inline images, link preview images), by the state of a room it
    has joined (room and member avatars), by a room it is in or invited to (its picture in the
    room list), or because it uploaded it. Two indexed queries at most."""
    references = MediaReference.objects.filter(server_name=server_name, media_id=media_id)
    seen = references.filter(
        Q(uploader=account)
        | Q(
            Exists(
                TimelineEntry.objects.filter(
                    account=account, sealed=False, event_id=OuterRef("event_id")
                )
            )
        )
        | Q(
            Exists(
                Membership.objects.filter(
                    account=account, membership=Membership.JOIN, room_id=OuterRef("state__room_id")
                )
            )
        )
    )
    if seen.exists():
        return True
    return Membership.objects.filter(
        account=account,
        membership__in=[Membership.JOIN, Membership.INVITE],
        avatar_mxc=f"mxc://{server_name}/{media_id}",
    ).exists()


def is_own_avatar(*, account: MatrixAccount, server_name: str, media_id: str) -> bool:
    """The person's own profile picture (a homeserver read: only asked when nothing else let the
    picture through, e.g. someone in no room yet)."""
    try:
        url = profile_avatar_url(
            account.homeserver_url, access_token=account.access_token, user_id=account.mxid
        )
    except MatrixError:
        return False
    return url == f"mxc://{server_name}/{media_id}"
