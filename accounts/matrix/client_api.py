"""Stateless client-server API calls (any homeserver that speaks the spec, not only Synapse)."""

import urllib.parse
from dataclasses import dataclass

from accounts.matrix.errors import InvalidCredentials, MatrixError
from accounts.matrix.http import matrix_request, quote


@dataclass(frozen=True)
class Session:
    """A logged-in Matrix device: what we keep (encrypted) to act as the user."""

    homeserver_url: str
    user_id: str
    device_id: str
    access_token: str


def password_login(
    homeserver_url: str,
    *,
    user: str,
    password: str,
    device_id: str | None = None,
    device_name: str = "webclient",
    timeout: float = 15.0,
) -> Session:
    """Log in with m.login.password. Passing our stored `device_id` reuses that device (its crypto
    identity survives) instead of piling up a new device at every sign-in."""
    body: dict = {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": user},
        "password": password,
        "initial_device_display_name": device_name,
    }
    if device_id:
        body["device_id"] = device_id
    try:
        reply = matrix_request(
            homeserver_url, "POST", "/_matrix/client/v3/login", body=body, timeout=timeout
        )
    except MatrixError as error:
        if error.errcode in ("M_FORBIDDEN", "M_INVALID_USERNAME", "M_NOT_FOUND"):
            raise InvalidCredentials(errcode=error.errcode, status=error.status) from None
        raise
    return _session_from(homeserver_url, reply)


def _session_from(homeserver_url: str, reply: dict) -> Session:
    try:
        return Session(
            homeserver_url=homeserver_url,
            user_id=str(reply["user_id"]),
            device_id=str(reply["device_id"]),
            access_token=str(reply["access_token"]),
        )
    except KeyError as missing:
        raise MatrixError(f"The homeserver's reply lacked {missing}.") from None


def logout(homeserver_url: str, *, access_token: str, timeout: float = 15.0) -> None:
    """Log one device out, which also deletes it and its keys on the homeserver."""
    matrix_request(
        homeserver_url,
        "POST",
        "/_matrix/client/v3/logout",
        token=access_token,
        body={},
        timeout=timeout,
    )


def whoami(homeserver_url: str, *, access_token: str, timeout: float = 15.0) -> dict:
    return matrix_request(
        homeserver_url,
        "GET",
        "/_matrix/client/v3/account/whoami",
        token=access_token,
        timeout=timeout,
    )


def username_available(homeserver_url: str, *, localpart: str, timeout: float = 15.0) -> bool:
    """Ask the homeserver whether a localpart is free (raises UsernameTaken/InvalidUsername if not)."""
    reply = matrix_request(
        homeserver_url,
        "GET",
        f"/_matrix/client/v3/register/available?username={quote(localpart)}",
        timeout=timeout,
    )
    return bool(reply.get("available"))


def server_versions(homeserver_url: str, *, timeout: float = 5.0) -> dict:
    return matrix_request(homeserver_url, "GET", "/_matrix/client/versions", timeout=timeout)


def join_room(
    homeserver_url: str, *, access_token: str, room_id_or_alias: str, timeout: float = 30.0
) -> str:
    """Join (or accept an invite to) a room; returns the room id."""
    reply = matrix_request(
        homeserver_url,
        "POST",
        f"/_matrix/client/v3/join/{quote(room_id_or_alias)}",
        token=access_token,
        body={},
        timeout=timeout,
    )
    room_id = reply.get("room_id")
    if not isinstance(room_id, str):
        raise MatrixError("The homeserver did not say which room was joined.")
    return room_id


def leave_room(
    homeserver_url: str, *, access_token: str, room_id: str, timeout: float = 30.0
) -> None:
    """Leave a room, or decline an invite to it."""
    matrix_request(
        homeserver_url,
        "POST",
        f"/_matrix/client/v3/rooms/{quote(room_id)}/leave",
        token=access_token,
        body={},
        timeout=timeout,
    )


def room_messages(
    homeserver_url: str,
    *,
    access_token: str,
    room_id: str,
    from_token: str,
    limit: int = 50,
    timeout: float = 30.0,
) -> dict:
    """One page of a room's history going backwards (`chunk` newest first, `end` continues)."""
    query = urllib.parse.urlencode({"from": from_token, "dir": "b", "limit": str(limit)})
    return matrix_request(
        homeserver_url,
        "GET",
        f"/_matrix/client/v3/rooms/{quote(room_id)}/messages?{query}",
        token=access_token,
        timeout=timeout,
    )


def set_read_markers(
    homeserver_url: str, *, access_token: str, room_id: str, event_id: str, timeout: float = 15.0
) -> None:
    """Move the fully-read marker and the public read receipt to an event."""
    matrix_request(
        homeserver_url,
        "POST",
        f"/_matrix/client/v3/rooms/{quote(room_id)}/read_markers",
        token=access_token,
        body={"m.fully_read": event_id, "m.read": event_id},
        timeout=timeout,
    )
