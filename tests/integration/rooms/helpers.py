"""Shared steps for room tests: sign a Matrix user in through the login page, run a sync host."""

import asyncio
import time

from asgiref.sync import sync_to_async
from django.db import connections

from accounts.matrix.http import matrix_request, quote
from accounts.models import MatrixAccount
from rooms.sync.host import SyncHost


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
