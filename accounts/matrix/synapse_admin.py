"""Synapse's admin API: create accounts (shared-secret registration), reset passwords, deactivate.

Only the admin console's provisioning needs these; people signing in with an existing account on any
homeserver never touch them.
"""

import hashlib
import hmac

from accounts.matrix.client_api import Session, _session_from
from accounts.matrix.errors import MatrixError
from accounts.matrix.http import matrix_request, quote


def _registration_mac(
    shared_secret: str, nonce: str, localpart: str, password: str, admin: bool
) -> str:
    mac = hmac.new(shared_secret.encode(), digestmod=hashlib.sha1)
    for part in (nonce, localpart, password):
        mac.update(part.encode())
        mac.update(b"\x00")
    mac.update(b"admin" if admin else b"notadmin")
    return mac.hexdigest()


def register_with_shared_secret(
    homeserver_url: str,
    *,
    shared_secret: str,
    localpart: str,
    password: str,
    admin: bool = False,
    displayname: str | None = None,
    timeout: float = 15.0,
) -> Session:
    """Create an account and log in its first device in one call (Synapse's /_synapse/admin/v1/register)."""
    nonce = matrix_request(homeserver_url, "GET", "/_synapse/admin/v1/register", timeout=timeout)[
        "nonce"
    ]
    body = {
        "nonce": nonce,
        "username": localpart,
        "password": password,
        "admin": admin,
        "mac": _registration_mac(shared_secret, nonce, localpart, password, admin),
    }
    if displayname:
        body["displayname"] = displayname
    reply = matrix_request(
        homeserver_url, "POST", "/_synapse/admin/v1/register", body=body, timeout=timeout
    )
    return _session_from(homeserver_url, reply)


def reset_password(
    homeserver_url: str,
    *,
    admin_token: str,
    user_id: str,
    new_password: str,
    timeout: float = 15.0,
) -> None:
    """Set a new password; our own device stays logged in (`logout_devices` false)."""
    matrix_request(
        homeserver_url,
        "POST",
        f"/_synapse/admin/v1/reset_password/{quote(user_id)}",
        token=admin_token,
        body={"new_password": new_password, "logout_devices": False},
        timeout=timeout,
    )


def deactivate(
    homeserver_url: str, *, admin_token: str, user_id: str, erase: bool, timeout: float = 30.0
) -> None:
    """Deactivate an account; with `erase`, Synapse also forgets its messages for new joiners (GDPR)."""
    matrix_request(
        homeserver_url,
        "POST",
        f"/_synapse/admin/v1/deactivate/{quote(user_id)}",
        token=admin_token,
        body={"erase": erase},
        timeout=timeout,
    )


# --- rooms and memberships (the admin console's joiners, leavers and room actions) ---


def join_user_to_room(
    homeserver_url: str, *, admin_token: str, room: str, user_id: str, timeout: float = 15.0
) -> str:
    """Join a local user to a room (id or alias) as the server admin; returns the room id.

    Synapse allows it for a public room, or for any room its admin user is in with the power to
    invite (it invites, then joins)."""
    reply = matrix_request(
        homeserver_url,
        "POST",
        f"/_synapse/admin/v1/join/{quote(room)}",
        token=admin_token,
        body={"user_id": user_id},
        timeout=timeout,
    )
    return str(reply.get("room_id", room))


def user_joined_rooms(
    homeserver_url: str, *, admin_token: str, user_id: str, timeout: float = 15.0
) -> list[str]:
    reply = matrix_request(
        homeserver_url,
        "GET",
        f"/_synapse/admin/v1/users/{quote(user_id)}/joined_rooms",
        token=admin_token,
        timeout=timeout,
    )
    return [str(room) for room in reply.get("joined_rooms", [])]


def room_state(
    homeserver_url: str, *, admin_token: str, room_id: str, timeout: float = 15.0
) -> list[dict]:
    """The room's current state events, as the homeserver holds them."""
    reply = matrix_request(
        homeserver_url,
        "GET",
        f"/_synapse/admin/v1/rooms/{quote(room_id)}/state",
        token=admin_token,
        timeout=timeout,
    )
    return [event for event in reply.get("state", []) if isinstance(event, dict)]


def make_room_admin(
    homeserver_url: str, *, admin_token: str, room_id: str, user_id: str, timeout: float = 15.0
) -> None:
    """Give `user_id` the power of the room's most powerful local member (Synapse sends the power
    levels as that member); a user not in a private room is invited."""
    matrix_request(
        homeserver_url,
        "POST",
        f"/_synapse/admin/v1/rooms/{quote(room_id)}/make_room_admin",
        token=admin_token,
        body={"user_id": user_id},
        timeout=timeout,
    )


def block_room(
    homeserver_url: str, *, admin_token: str, room_id: str, block: bool, timeout: float = 15.0
) -> None:
    """Block (or unblock) a room: nobody on this homeserver may join it while it is blocked."""
    matrix_request(
        homeserver_url,
        "PUT",
        f"/_synapse/admin/v1/rooms/{quote(room_id)}/block",
        token=admin_token,
        body={"block": block},
        timeout=timeout,
    )


def delete_room(
    homeserver_url: str,
    *,
    admin_token: str,
    room_id: str,
    purge: bool = True,
    block: bool = False,
    message: str = "",
    timeout: float = 30.0,
) -> str:
    """Start deleting a room (v2, runs in the background on the homeserver): every local member
    is removed and, with `purge`, the room's history is removed from the homeserver's database.
    Returns the delete id to follow with `delete_room_status`."""
    body: dict = {"purge": purge, "block": block}
    if message:
        body["message"] = message
    reply = matrix_request(
        homeserver_url,
        "DELETE",
        f"/_synapse/admin/v2/rooms/{quote(room_id)}",
        token=admin_token,
        body=body,
        timeout=timeout,
    )
    return str(reply.get("delete_id", ""))


def delete_room_status(
    homeserver_url: str, *, admin_token: str, delete_id: str, timeout: float = 15.0
) -> dict:
    """{"status": "scheduled" | "active" | "complete" | "failed", "error": ..., ...}"""
    return matrix_request(
        homeserver_url,
        "GET",
        f"/_synapse/admin/v2/rooms/delete_status/{quote(delete_id)}",
        token=admin_token,
        timeout=timeout,
    )


def user_exists(
    homeserver_url: str, *, admin_token: str, user_id: str, timeout: float = 15.0
) -> bool:
    """Whether the homeserver has the account (deactivated ones included)."""
    try:
        matrix_request(
            homeserver_url,
            "GET",
            f"/_synapse/admin/v2/users/{quote(user_id)}",
            token=admin_token,
            timeout=timeout,
        )
    except MatrixError as error:
        if error.status == 404:
            return False
        raise
    return True


def server_name(homeserver_url: str, *, admin_token: str, timeout: float = 15.0) -> str:
    """The homeserver's name (the part after ':' in its user ids), from who the admin is."""
    reply = matrix_request(
        homeserver_url,
        "GET",
        "/_matrix/client/v3/account/whoami",
        token=admin_token,
        timeout=timeout,
    )
    return str(reply["user_id"]).split(":", 1)[1]
