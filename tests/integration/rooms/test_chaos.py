"""Kill sync hosts with SIGKILL while a peer streams messages: nothing is lost or doubled."""

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connection
from nio import RoomCreateResponse

from accounts.matrix.http import matrix_request, quote
from rooms.models import SyncState, TimelineEntry
from tests.integration.rooms.helpers import join, signed_in_account

pytestmark = pytest.mark.django_db(transaction=True)
ROOT = Path(__file__).resolve().parents[3]
LOG_DIR = Path(tempfile.mkdtemp(prefix="chaos-hosts-"))


def database_url() -> str:
    """The test database as a URL, so a host in another process writes where the test reads."""
    config = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{config['NAME']}"
    user = config.get("USER") or "postgres"
    return f"postgres://{user}@{config.get('HOST') or '127.0.0.1'}:{config.get('PORT') or 5432}/{config['NAME']}"


def start_host() -> subprocess.Popen:
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "DJANGO_SETTINGS_MODULE": "webclient.settings.test",
        "MATRIX_HOMESERVER_URL": settings.MATRIX_HOMESERVER_URL,
        "REDIS_URL": settings.REDIS_URL,
        "SYNC_LEASE_SECONDS": "2",
        "SYNC_TIMEOUT_MS": "1000",
    }
    log = open(LOG_DIR / f"host-{time.monotonic_ns()}.log", "wb")  # noqa: SIM115
    return subprocess.Popen(
        [sys.executable, "manage.py", "sync_host", "--capacity", "5"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def host_logs() -> str:
    """The tail of every host's log, for a failure message."""
    return "\n".join(
        f"--- {path.name}\n{path.read_text(errors='replace')[-1500:]}"
        for path in sorted(LOG_DIR.glob("host-*.log"))
    )


def homeserver_event_ids(account, room_id: str) -> list[str]:
    raw = matrix_request(
        account.homeserver_url,
        "GET",
        f"/_matrix/client/v3/rooms/{quote(room_id)}/messages?dir=b&limit=500",
        token=account.access_token,
    )
    return [e["event_id"] for e in raw["chunk"] if e["type"] == "m.room.message"][::-1]


def synced(account) -> bool:
    return SyncState.objects.filter(account=account).exclude(next_batch="").exists()


def stored_event_ids(account, room_id: str) -> list[str]:
    return list(
        TimelineEntry.objects.filter(
            account=account, room__room_id=room_id, event__event_type="m.room.message"
        )
        .order_by("origin_server_ts", "id")
        .values_list("event__event_id", flat=True)
    )


async def test_sigkilled_hosts_lose_and_double_nothing(
    client, matrix_user_factory, nio_peer_factory
):
    me = matrix_user_factory()
    account = await sync_to_async(signed_in_account)(client, me)
    peer = await nio_peer_factory()
    created = await peer.room_create(name="Chaos", invite=[me.user_id])
    assert isinstance(created, RoomCreateResponse)
    await sync_to_async(join)(account, created.room_id)

    async def stream() -> None:
        for n in range(60):
            await peer.room_send(
                created.room_id, "m.room.message", {"msgtype": "m.text", "body": f"chaos {n}"}
            )
            await asyncio.sleep(0.05)

    # The first sync of an account is limited by design; chaos starts once it has happened.
    host = start_host()
    for _ in range(150):
        if await sync_to_async(synced)(account):
            break
        await asyncio.sleep(0.2)
    assert await sync_to_async(synced)(account)
    host.send_signal(signal.SIGKILL)
    host.wait()

    streaming = asyncio.create_task(stream())
    kills = 0
    while not streaming.done():
        host = start_host()
        await asyncio.sleep(1.5)
        host.send_signal(signal.SIGKILL)
        host.wait()
        kills += 1
    await streaming
    assert kills >= 2
    expected = await sync_to_async(homeserver_event_ids)(account, created.room_id)
    assert len(expected) == 60
    survivor = start_host()
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            stored = await sync_to_async(stored_event_ids)(account, created.room_id)
            if len(stored) >= len(expected):
                break
            await asyncio.sleep(0.5)
    finally:
        survivor.send_signal(signal.SIGTERM)
        survivor.wait(timeout=30)
    stored = await sync_to_async(stored_event_ids)(account, created.room_id)
    assert sorted(stored) == sorted(expected), host_logs()
    assert len(stored) == len(set(stored))
