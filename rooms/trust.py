"""Reads about trust for pages and the sync host: identity changes to warn about, and room keys
their senders withheld (never asked for again)."""

from dataclasses import dataclass

from accounts.models import MatrixAccount
from rooms.models import PinnedIdentity, Room, RoomState, WithheldKey


@dataclass(frozen=True)
class IdentityChange:
    user_id: str
    name: str


def withheld_session_ids(*, account_id: int, session_ids: set[str]) -> set[str]:
    """Of `session_ids`, those whose senders told this account's device they withhold the key."""
    if not session_ids:
        return set()
    return set(
        WithheldKey.objects.filter(
            account_id=account_id, session_id__in=list(session_ids)
        ).values_list("session_id", flat=True)
    )


def _changed(account: MatrixAccount):
    return PinnedIdentity.objects.filter(account=account, changed_at__isnull=False).exclude(
        user_id=account.mxid
    )


def identity_changes(*, account: MatrixAccount) -> list[IdentityChange]:
    """Everyone whose identity changed since this account pinned it (for the Security page)."""
    return [IdentityChange(u, u) for u in _changed(account).values_list("user_id", flat=True)]


def room_identity_changes(*, account: MatrixAccount, room: Room) -> list[IdentityChange]:
    """Joined members of the room whose identity changed and was not acknowledged (two queries:
    one when nobody's did)."""
    changed = set(_changed(account).values_list("user_id", flat=True))
    if not changed:
        return []
    names = {}
    for user_id, content in RoomState.objects.filter(
        room=room, event_type="m.room.member", state_key__in=changed
    ).values_list("state_key", "content"):
        content = content if isinstance(content, dict) else {}
        if content.get("membership") == "join":
            name = content.get("displayname")
            names[user_id] = name.strip()[:100] if isinstance(name, str) and name.strip() else ""
    return [IdentityChange(u, names[u] or u) for u in sorted(names)]
