"""Stateless client-server API calls (any homeserver that speaks the spec, not only Synapse)."""

import urllib.parse
from dataclasses import dataclass, field

from accounts.matrix.errors import InvalidCredentials, MatrixError
from accounts.matrix.http import matrix_request, quote


@dataclass(frozen=True)
class Session:
    """A logged-in Matrix device: what we keep (encrypted) to act as the user."""

    homeserver_url: str
    user_id: str
    device_id: str
    access_token: str = field(repr=False)  # never in a repr, a log line or a traceback


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


def create_room(
    homeserver_url: str,
    *,
    access_token: str,
    name: str = "",
    topic: str = "",
    public: bool = False,
    invite: list[str] | None = None,
    is_direct: bool = False,
    alias_localpart: str = "",
    encrypted: bool = False,
    timeout: float = 30.0,
) -> str:
    """Create a room; public rooms are listed in the directory and joinable by anyone. An
    encrypted room has Megolm from its first event (m.room.encryption in the initial state)."""
    body: dict = {
        "preset": "public_chat"
        if public
        else ("trusted_private_chat" if is_direct else "private_chat"),
        "visibility": "public" if public else "private",
        "invite": invite or [],
        "is_direct": is_direct,
    }
    if name:
        body["name"] = name
    if topic:
        body["topic"] = topic
    if alias_localpart:
        body["room_alias_name"] = alias_localpart
    if encrypted:
        body["initial_state"] = [
            {
                "type": "m.room.encryption",
                "state_key": "",
                "content": {"algorithm": "m.megolm.v1.aes-sha2"},
            }
        ]
    reply = matrix_request(
        homeserver_url,
        "POST",
        "/_matrix/client/v3/createRoom",
        token=access_token,
        body=body,
        timeout=timeout,
    )
    room_id = reply.get("room_id")
    if not isinstance(room_id, str):
        raise MatrixError("The homeserver did not return the new room's id.")
    return room_id


def invite_user(
    homeserver_url: str, *, access_token: str, room_id: str, user_id: str, timeout: float = 30.0
) -> None:
    matrix_request(
        homeserver_url,
        "POST",
        f"/_matrix/client/v3/rooms/{quote(room_id)}/invite",
        token=access_token,
        body={"user_id": user_id},
        timeout=timeout,
    )


def search_user_directory(
    homeserver_url: str, *, access_token: str, term: str, limit: int = 10, timeout: float = 15.0
) -> list[dict]:
    """People the homeserver lets this user find: [{user_id, display_name, avatar_url}]."""
    reply = matrix_request(
        homeserver_url,
        "POST",
        "/_matrix/client/v3/user_directory/search",
        token=access_token,
        body={"search_term": term, "limit": limit},
        timeout=timeout,
    )
    results = reply.get("results")
    return (
        [r for r in results if isinstance(r, dict) and isinstance(r.get("user_id"), str)]
        if isinstance(results, list)
        else []
    )


def public_rooms(
    homeserver_url: str,
    *,
    access_token: str,
    term: str = "",
    limit: int = 30,
    timeout: float = 15.0,
) -> list[dict]:
    """The homeserver's public room directory: [{room_id, name, topic, canonical_alias, ...}]."""
    body: dict = {"limit": limit}
    if term:
        body["filter"] = {"generic_search_term": term}
    reply = matrix_request(
        homeserver_url,
        "POST",
        "/_matrix/client/v3/publicRooms",
        token=access_token,
        body=body,
        timeout=timeout,
    )
    chunk = reply.get("chunk")
    return (
        [r for r in chunk if isinstance(r, dict) and isinstance(r.get("room_id"), str)]
        if isinstance(chunk, list)
        else []
    )


def set_direct_rooms(
    homeserver_url: str,
    *,
    access_token: str,
    user_id: str,
    direct: dict[str, list[str]],
    timeout: float = 15.0,
) -> None:
    """Replace the m.direct account data (which rooms are one-to-one chats with whom)."""
    matrix_request(
        homeserver_url,
        "PUT",
        f"/_matrix/client/v3/user/{quote(user_id)}/account_data/m.direct",
        token=access_token,
        body=direct,
        timeout=timeout,
    )


def get_direct_rooms(
    homeserver_url: str, *, access_token: str, user_id: str, timeout: float = 15.0
) -> dict[str, list[str]]:
    try:
        reply = matrix_request(
            homeserver_url,
            "GET",
            f"/_matrix/client/v3/user/{quote(user_id)}/account_data/m.direct",
            token=access_token,
            timeout=timeout,
        )
    except MatrixError as error:
        if error.errcode == "M_NOT_FOUND":
            return {}
        raise
    return {
        k: [r for r in v if isinstance(r, str)] for k, v in reply.items() if isinstance(v, list)
    }


def set_typing(
    homeserver_url: str,
    *,
    access_token: str,
    room_id: str,
    user_id: str,
    typing: bool,
    timeout_ms: int = 6000,
    timeout: float = 10.0,
) -> None:
    body: dict = {"typing": typing}
    if typing:
        body["timeout"] = timeout_ms
    matrix_request(
        homeserver_url,
        "PUT",
        f"/_matrix/client/v3/rooms/{quote(room_id)}/typing/{quote(user_id)}",
        token=access_token,
        body=body,
        timeout=timeout,
    )


def joined_members(
    homeserver_url: str, *, access_token: str, room_id: str, timeout: float = 15.0
) -> dict[str, dict]:
    """Everyone joined to a room now: {user_id: {display_name, avatar_url}}."""
    reply = matrix_request(
        homeserver_url,
        "GET",
        f"/_matrix/client/v3/rooms/{quote(room_id)}/joined_members",
        token=access_token,
        timeout=timeout,
    )
    joined = reply.get("joined")
    return (
        {k: v for k, v in joined.items() if isinstance(v, dict)} if isinstance(joined, dict) else {}
    )


def room_state_event(
    homeserver_url: str,
    *,
    access_token: str,
    room_id: str,
    event_type: str,
    state_key: str = "",
    timeout: float = 15.0,
) -> dict:
    return matrix_request(
        homeserver_url,
        "GET",
        f"/_matrix/client/v3/rooms/{quote(room_id)}/state/{quote(event_type)}/{quote(state_key)}",
        token=access_token,
        timeout=timeout,
    )


def put_room_state(
    homeserver_url: str,
    *,
    access_token: str,
    room_id: str,
    event_type: str,
    content: dict,
    state_key: str = "",
    timeout: float = 15.0,
) -> None:
    matrix_request(
        homeserver_url,
        "PUT",
        f"/_matrix/client/v3/rooms/{quote(room_id)}/state/{quote(event_type)}/{quote(state_key)}",
        token=access_token,
        body=content,
        timeout=timeout,
    )


def user_devices(
    homeserver_url: str, *, access_token: str, user_id: str, timeout: float = 15.0
) -> dict[str, dict]:
    """A user's devices with published keys: {device_id: {name, ed25519}} (from /keys/query)."""
    reply = matrix_request(
        homeserver_url,
        "POST",
        "/_matrix/client/v3/keys/query",
        token=access_token,
        body={"device_keys": {user_id: []}},
        timeout=timeout,
    )
    devices = reply.get("device_keys", {}).get(user_id, {})
    found = {}
    for device_id, keys in devices.items() if isinstance(devices, dict) else []:
        if not isinstance(keys, dict):
            continue
        unsigned = keys.get("unsigned") if isinstance(keys.get("unsigned"), dict) else {}
        ed25519 = (keys.get("keys") or {}).get(f"ed25519:{device_id}", "")
        found[device_id] = {
            "name": str(unsigned.get("device_display_name") or "")[:100],
            "ed25519": ed25519 if isinstance(ed25519, str) else "",
        }
    return found


def profile_avatar_url(
    homeserver_url: str, *, access_token: str, user_id: str, timeout: float = 10.0
) -> str:
    """A user's profile picture (an mxc:// URI), or "" when they have none."""
    try:
        reply = matrix_request(
            homeserver_url,
            "GET",
            f"/_matrix/client/v3/profile/{quote(user_id)}/avatar_url",
            token=access_token,
            timeout=timeout,
        )
    except MatrixError as error:
        if error.status == 404:
            return ""
        raise
    url = reply.get("avatar_url")
    return url if isinstance(url, str) else ""
