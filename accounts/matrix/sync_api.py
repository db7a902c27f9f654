"""Long-poll /sync and /messages for sync hosts, returning the raw JSON.

We fetch the raw body ourselves rather than through nio's parsed SyncResponse: nio rejects a whole
response when one event breaks its schema, while we must keep unknown or malformed events and go on.
(Encryption, later, feeds the same raw body to nio's Olm machine.)
"""

import json
import urllib.parse
from typing import Any

import aiohttp

from accounts.matrix.errors import HomeserverUnreachable, MatrixError
from accounts.matrix.http import error_from_response, quote

# Lazy-load members and get room summaries (heroes and counts) for room names.
SYNC_FILTER = json.dumps(
    {"room": {"state": {"lazy_load_members": True}, "timeline": {"limit": 50}}},
    separators=(",", ":"),
)


def new_http_session() -> aiohttp.ClientSession:
    """One connection pool per sync host, shared by all its accounts."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=60),
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
    )


async def request_json(
    http: aiohttp.ClientSession,
    method: str,
    url: str,
    token: str,
    timeout: float,
    body: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One request; the JSON object it answers, or the homeserver's refusal as our exception."""
    try:
        async with http.request(
            method,
            url,
            json=body,
            headers={"Authorization": f"Bearer {token}"},
            timeout=aiohttp.ClientTimeout(total=timeout),
        ) as response:
            payload = await response.read()
            if response.status != 200:
                raise error_from_response(response.status, payload)
    except aiohttp.ClientConnectorError as error:
        raise HomeserverUnreachable(reached=False) from error
    except (aiohttp.ClientError, TimeoutError, OSError) as error:
        raise HomeserverUnreachable() from error
    try:
        decoded = json.loads(payload)
    except ValueError:
        raise MatrixError("The homeserver's answer is not JSON.") from None
    if not isinstance(decoded, dict):
        raise MatrixError("The homeserver's answer is not an object.")
    return decoded


async def sync_raw(
    http: aiohttp.ClientSession,
    *,
    homeserver_url: str,
    access_token: str,
    since: str,
    timeout_ms: int,
) -> dict[str, Any]:
    params = {"filter": SYNC_FILTER, "timeout": str(timeout_ms if since else 0)}
    if since:
        params["since"] = since
    url = f"{homeserver_url}/_matrix/client/v3/sync?{urllib.parse.urlencode(params)}"
    return await request_json(http, "GET", url, access_token, timeout_ms / 1000 + 30)


async def messages_raw(
    http: aiohttp.ClientSession,
    *,
    homeserver_url: str,
    access_token: str,
    room_id: str,
    from_token: str,
    limit: int = 50,
    direction: str = "b",
) -> dict[str, Any]:
    params = {"from": from_token, "dir": direction, "limit": str(limit)}
    url = (
        f"{homeserver_url}/_matrix/client/v3/rooms/{quote(room_id)}/messages?"
        f"{urllib.parse.urlencode(params)}"
    )
    return await request_json(http, "GET", url, access_token, 60)


async def send_event(
    http: aiohttp.ClientSession,
    *,
    homeserver_url: str,
    access_token: str,
    room_id: str,
    event_type: str,
    txn_id: str,
    content: dict[str, Any],
) -> str:
    """PUT one room event under our transaction id; the same id twice yields one event."""
    base = f"{homeserver_url}/_matrix/client/v3/rooms/{quote(room_id)}"
    if event_type == "m.room.redaction":
        # Redactions have their own endpoint; the target goes in the path.
        url = f"{base}/redact/{quote(content.get('redacts', ''))}/{quote(txn_id)}"
        content = {k: v for k, v in content.items() if k == "reason"}
    else:
        url = f"{base}/send/{quote(event_type)}/{quote(txn_id)}"
    reply = await request_json(http, "PUT", url, access_token, 30, body=content)
    event_id = reply.get("event_id")
    if not isinstance(event_id, str):
        raise MatrixError("The homeserver did not return an event id.")
    return event_id


async def room_encryption(
    http: aiohttp.ClientSession, *, homeserver_url: str, access_token: str, room_id: str
) -> dict[str, Any] | None:
    """The room's m.room.encryption content, or None when the room is not encrypted. Asked
    directly when our store has not synced the room's state yet (just joined)."""
    url = f"{homeserver_url}/_matrix/client/v3/rooms/{quote(room_id)}/state/m.room.encryption/"
    try:
        return await request_json(http, "GET", url, access_token, 30)
    except MatrixError as error:
        if error.errcode == "M_NOT_FOUND":
            return None
        raise


async def set_typing(
    http: aiohttp.ClientSession,
    *,
    homeserver_url: str,
    access_token: str,
    room_id: str,
    user_id: str,
    typing: bool,
) -> None:
    """Start or stop the account's typing notice in a room."""
    url = f"{homeserver_url}/_matrix/client/v3/rooms/{quote(room_id)}/typing/{quote(user_id)}"
    body: dict[str, Any] = {"typing": typing}
    if typing:
        body["timeout"] = 6000
    await request_json(http, "PUT", url, access_token, 10, body=body)


ECHO_SEARCH_PAGES = 10


async def find_own_event(
    http: aiohttp.ClientSession,
    *,
    homeserver_url: str,
    access_token: str,
    room_id: str,
    user_id: str,
    txn_id: str,
    not_before_ms: int,
) -> str | None:
    """The id of the event this device sent under `txn_id`, if the room has it.

    The homeserver remembers transaction ids only for a while, so a send retried much later could
    post twice: look for its echo (`unsigned.transaction_id`, shown to the sending device) among our
    own recent events, back to `not_before_ms`, before sending again."""
    event_filter = json.dumps({"senders": [user_id]}, separators=(",", ":"))
    token = ""
    for _ in range(ECHO_SEARCH_PAGES):
        params = {"dir": "b", "limit": "100", "filter": event_filter}
        if token:
            params["from"] = token
        url = (
            f"{homeserver_url}/_matrix/client/v3/rooms/{quote(room_id)}/messages?"
            f"{urllib.parse.urlencode(params)}"
        )
        page = await request_json(http, "GET", url, access_token, 30)
        chunk = page.get("chunk") if isinstance(page.get("chunk"), list) else []
        for event in chunk:
            unsigned = event.get("unsigned") if isinstance(event, dict) else None
            if isinstance(unsigned, dict) and unsigned.get("transaction_id") == txn_id:
                event_id = event.get("event_id")
                return event_id if isinstance(event_id, str) else None
        oldest = min(
            (e.get("origin_server_ts", 0) for e in chunk if isinstance(e, dict)), default=0
        )
        token = page.get("end") if isinstance(page.get("end"), str) else ""
        if not chunk or not token or (isinstance(oldest, int) and oldest < not_before_ms):
            return None
    return None
