"""A leaver's rooms handed over: in every room where the leaver is an admin, a named colleague
is made room admin through Synapse's admin API before the leaver's account goes, so no room is
left without someone who can manage it."""

from django.db import transaction
from django.http import HttpRequest

from accounts import services as accounts
from accounts.matrix import synapse_admin
from accounts.matrix.errors import MatrixError
from accounts.models import MatrixAccount
from records.audit import record_action

ADMIN_LEVEL = 100
# Room versions where the creators hold unlimited power and are not in the power levels' users.
CREATORS_RULE_VERSIONS = {"12", "org.matrix.hydra.11"}


class HandoverFailed(MatrixError):
    """A room could not be handed over: the leaver stays active until it can."""


def room_admins(state: list[dict]) -> set[str]:
    """Who can manage the room: creators where the room version gives them power, and everyone
    at power level 100 or above."""
    admins: set[str] = set()
    for event in state:
        content = event.get("content") or {}
        if event.get("type") == "m.room.create" and (
            str(content.get("room_version", "1")) in CREATORS_RULE_VERSIONS
        ):
            admins.add(str(event.get("sender", "")))
            admins.update(str(user) for user in content.get("additional_creators", []))
        if event.get("type") == "m.room.power_levels":
            for user, level in (content.get("users") or {}).items():
                if isinstance(level, int) and level >= ADMIN_LEVEL:
                    admins.add(str(user))
    return admins


def rooms_to_hand_over(*, account: MatrixAccount, colleague: str) -> list[str]:
    """The rooms the leaver has joined and manages that the colleague does not manage yet."""
    token = accounts.synapse_admin_token()
    rooms = synapse_admin.user_joined_rooms(
        account.homeserver_url, admin_token=token, user_id=account.mxid
    )
    wanted = []
    for room_id in rooms:
        state = synapse_admin.room_state(account.homeserver_url, admin_token=token, room_id=room_id)
        admins = room_admins(state)
        if account.mxid in admins and colleague not in admins:
            wanted.append(room_id)
    return wanted


def rooms_hand_over(
    *, account: MatrixAccount, colleague: str, request: HttpRequest | None = None
) -> list[str]:
    """Make `colleague` room admin wherever the leaver is one; each room handed over is an audit
    entry. Raises HandoverFailed naming the first room that could not be handed over."""
    colleague = colleague.strip()
    if not MatrixAccount.objects.filter(mxid=colleague, is_active=True).exists():
        raise HandoverFailed(f"{colleague or 'No colleague'} is not an active person here.")
    if colleague == account.mxid:
        raise HandoverFailed("A leaver cannot hand their rooms over to themselves.")
    token = accounts.synapse_admin_token()
    handed = []
    for room_id in rooms_to_hand_over(account=account, colleague=colleague):
        try:
            synapse_admin.make_room_admin(
                account.homeserver_url, admin_token=token, room_id=room_id, user_id=colleague
            )
        except MatrixError as error:
            raise HandoverFailed(
                f"Room {room_id} was not handed over to {colleague}: {error.message}"
            ) from error
        with transaction.atomic():
            record_action(
                action="person.hand_over_room",
                target=room_id,
                request=request,
                details={"from": account.mxid, "to": colleague},
            )
        handed.append(room_id)
    return handed
