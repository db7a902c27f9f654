"""Shared steps for room tests: sign a Matrix user in through the login page, run a sync host,
send real events and ingest a real /sync."""

import asyncio
import itertools
import json
import time
import urllib.parse

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connections

from accounts.matrix.http import matrix_request, quote
from accounts.matrix.sync_api import SYNC_FILTER
from accounts.models import MatrixAccount
from rooms import services
from rooms.sync.batch import SyncBatch, batch_from_sync_json
from rooms.sync.host import SyncHost
from rooms.sync.leases import lease_claim


def signed_in_account(client, creds) -> MatrixAccount:
    response = client.post(
        "/accounts/login/", {"username": creds.localpart, "password": creds.password}
    )
    assert response.status_code == 302, response.content.decode()[:500]
    return MatrixAccount.objects.get(mxid=creds.user_id)


def join(account: MatrixAccount, room_id: str) -> None:
    matrix_request(
        account.homeserver_url,
        "POST",
        f"/_matrix/client/v3/join/{quote(room_id)}",
        token=account.access_token,
        body={},
    )


async def run_host_until(condition, *, host: SyncHost | None = None, timeout: float = 30.0) -> bool:
    """Run a sync host until `condition()` (a sync ORM check) holds or the timeout passes."""
    host = host or SyncHost(capacity=10, lease_seconds=6)
    stop = asyncio.Event()
    task = asyncio.create_task(host.run(stop))
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if await sync_to_async(condition)():
                return True
            await asyncio.sleep(0.2)
        return False
    finally:
        stop.set()
        await task
        # The host's ORM work ran in asgiref's worker thread: close its connections too.
        await sync_to_async(connections.close_all)()


# Real traffic through the homeserver, and the real ingest of what an account's /sync returns.
FULL_TIMELINE = json.dumps(
    {
        **json.loads(SYNC_FILTER),
        "room": {**json.loads(SYNC_FILTER)["room"], "timeline": {"limit": 500}},
    },
    separators=(",", ":"),
)
_txn = itertools.count()


def create_room(creds, *, invite: list[str] = (), name: str = "", public: bool = True) -> str:
    """A room created by `creds` on the homeserver (public rooms are not encrypted)."""
    body = {"preset": "public_chat" if public else "private_chat", "invite": list(invite)}
    if name:
        body["name"] = name
    return matrix_request(
        settings.MATRIX_HOMESERVER_URL,
        "POST",
        "/_matrix/client/v3/createRoom",
        token=creds.access_token,
        body=body,
    )["room_id"]


def send_event(creds, room_id: str, content: dict, event_type: str = "m.room.message") -> str:
    """`creds` sends one event straight to the homeserver (as another Matrix client would)."""
    txn = f"t{time.time_ns()}-{next(_txn)}"
    return matrix_request(
        settings.MATRIX_HOMESERVER_URL,
        "PUT",
        f"/_matrix/client/v3/rooms/{quote(room_id)}/send/{quote(event_type)}/{txn}",
        token=creds.access_token,
        body=content,
    )["event_id"]


def text(body: str, **extra) -> dict:
    return {"msgtype": "m.text", "body": body, **extra}


def as_user(creds, method: str, path: str, body: dict | None = None) -> dict:
    """One client-server API call made by `creds` (another Matrix client, not our workspace)."""
    return matrix_request(
        settings.MATRIX_HOMESERVER_URL, method, path, token=creds.access_token, body=body
    )


def fetch_sync(account: MatrixAccount, *, since: str = "") -> SyncBatch:
    """One real /sync of the account (whole timelines, up to 500 events a room) as a batch."""
    params = {"filter": FULL_TIMELINE, "timeout": "0", **({"since": since} if since else {})}
    raw = matrix_request(
        account.homeserver_url,
        "GET",
        f"/_matrix/client/v3/sync?{urllib.parse.urlencode(params)}",
        token=account.access_token,
        timeout=60,
    )
    return batch_from_sync_json(raw)


def claim_lease(account: MatrixAccount, owner: str = "test-host") -> services.LeaseHandle:
    token = lease_claim(account_id=account.pk, owner=owner, seconds=60)
    assert token is not None, "another host holds the account"
    return services.LeaseHandle(account.pk, owner, token)


def sync_and_ingest(account: MatrixAccount, *, since: str = "") -> SyncBatch:
    """A real /sync of the account, ingested exactly as a sync host does. Returns the batch."""
    batch = fetch_sync(account, since=since)
    services.sync_ingest(
        lease=claim_lease(account), own_user_id=account.mxid, batch=batch, initial=not since
    )
    return batch
