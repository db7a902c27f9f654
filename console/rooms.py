"""Room actions through Synapse's admin API, each in the audit log: make someone room admin,
block or unblock, delete (v2, optionally purged from the homeserver)."""

from django.db import transaction
from django.http import HttpRequest

from accounts import services as accounts
from accounts.matrix import synapse_admin
from records import retention
from records.audit import record_action


class RoomActionRefused(Exception):
    """An action the workspace's own rules forbid (a legal hold), with the reason to show."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _url_and_token() -> tuple[str, str]:
    return accounts.homeserver_config().url, accounts.synapse_admin_token()


def room_make_admin(*, room_id: str, user_id: str, request: HttpRequest | None = None) -> None:
    url, token = _url_and_token()
    synapse_admin.make_room_admin(url, admin_token=token, room_id=room_id, user_id=user_id)
    with transaction.atomic():
        record_action(
            action="room.make_admin", target=room_id, request=request, details={"user": user_id}
        )


def room_block(*, room_id: str, block: bool, request: HttpRequest | None = None) -> None:
    url, token = _url_and_token()
    synapse_admin.block_room(url, admin_token=token, room_id=room_id, block=block)
    with transaction.atomic():
        record_action(
            action="room.block" if block else "room.unblock", target=room_id, request=request
        )


def room_delete(
    *,
    room_id: str,
    purge: bool,
    block: bool,
    message: str = "",
    request: HttpRequest | None = None,
) -> str:
    """Starts the homeserver's delete; returns its delete id (the homeserver finishes it in the
    background: its status is in the audit entry's details for whoever follows it up).

    A room under legal hold is not purged: the hold keeps every copy of its history, the
    homeserver's included, until it is released."""
    if purge and room_id in retention.active_holds()[1]:
        raise RoomActionRefused(
            "This room is under legal hold: its history cannot be purged until the hold is "
            "released. Delete it without purging, or release the hold first."
        )
    url, token = _url_and_token()
    delete_id = synapse_admin.delete_room(
        url, admin_token=token, room_id=room_id, purge=purge, block=block, message=message
    )
    with transaction.atomic():
        record_action(
            action="room.delete",
            target=room_id,
            request=request,
            details={"purge": purge, "block": block, "delete_id": delete_id},
        )
    return delete_id
