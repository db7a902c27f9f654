"""Kill sync hosts with SIGKILL while a peer streams messages and we send through our own outbox,
some of them in the middle of a send (the PUT reached the homeserver, the answer never came back):
nothing is lost, and the homeserver holds each of our messages exactly once."""

import asyncio
import os
import random
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
from rooms import services
from rooms.models import OutboxMessage, Room, SyncLease, SyncState, TimelineEntry
from tests.integration.rooms.helpers import join, signed_in_account
from tests.integration.rooms.proxy import HomeserverProxy

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


def homeserver_messages(account, room_id: str) -> list[tuple[str, str]]:
    """(event id, body) of every message in the room, oldest first, as the homeserver has them."""
    raw = matrix_request(
        account.homeserver_url,
        "GET",
        f"/_matrix/client/v3/rooms/{quote(room_id)}/messages?dir=b&limit=500",
        token=account.access_token,
    )
    return [
        (e["event_id"], e["content"].get("body"))
        for e in reversed(raw["chunk"])
        if e["type"] == "m.room.message"
    ]


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


def fencing_token(account) -> int:
    lease = SyncLease.objects.filter(account=account).first()
    return lease.fencing_token if lease else 0


def all_sent(account) -> bool:
    return not OutboxMessage.objects.filter(account=account).exclude(status="sent").exists()


async def test_sigkilled_hosts_lose_and_double_nothing(
    client, matrix_user_factory, nio_peer_factory, synapse, settings
):
    # Our hosts reach Synapse through a proxy that can kill a host right after its PUT went in.
    proxy = await HomeserverProxy(synapse.url).start()
    settings.MATRIX_HOMESERVER_URL = proxy.url
    try:
        await sigkill_hosts_while_sending(client, matrix_user_factory, nio_peer_factory, proxy)
    finally:
        await proxy.stop()


async def sigkill_hosts_while_sending(client, matrix_user_factory, nio_peer_factory, proxy):
    me = matrix_user_factory()
    account = await sync_to_async(signed_in_account)(client, me)
    peer = await nio_peer_factory()
    created = await peer.room_create(name="Chaos", invite=[me.user_id])
    assert isinstance(created, RoomCreateResponse)
    await sync_to_async(join)(account, created.room_id)
    room = await sync_to_async(Room.objects.create)(room_id=created.room_id)
    ours = [f"ours {n}" for n in range(20)]

    async def stream() -> None:
        """The peer's messages, and ours through the outbox (every third turn), interleaved."""
        for n in range(60):
            await peer.room_send(
                created.room_id, "m.room.message", {"msgtype": "m.text", "body": f"chaos {n}"}
            )
            if n % 3 == 0:
                await sync_to_async(services.message_send)(
                    account_id=account.pk, room=room, body=ours[n // 3]
                )
            await asyncio.sleep(0.25)

    # Kill the running host the moment one of its sends reached the homeserver, before the
    # answer gets back: the next owner sends that message again.
    current: dict = {"host": None, "armed": False}
    mid_send_kills = []

    def kill_mid_send(request) -> None:
        if current["armed"]:
            current["armed"] = False
            current["host"].send_signal(signal.SIGKILL)
            mid_send_kills.append(request.path)

    proxy.after_put = kill_mid_send

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
    while (not streaming.done() or kills < 3) and kills < 15:
        claims = await sync_to_async(fencing_token)(account)
        host = start_host()
        current.update(host=host, armed=True)
        # Each host lives until it owns the account, then a little longer (or dies mid-send).
        for _ in range(200):
            if await sync_to_async(fencing_token)(account) > claims or host.poll() is not None:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(random.uniform(0.3, 1.2))
        current["armed"] = False
        host.send_signal(signal.SIGKILL)
        host.wait()
        kills += 1
    await streaming
    assert kills >= 2 and mid_send_kills, host_logs()
    survivor = start_host()
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            expected = await sync_to_async(homeserver_messages)(account, created.room_id)
            stored = await sync_to_async(stored_event_ids)(account, created.room_id)
            if len(stored) >= len(expected) and await sync_to_async(all_sent)(account):
                break
            await asyncio.sleep(0.5)
    finally:
        survivor.send_signal(signal.SIGTERM)
        survivor.wait(timeout=30)
    assert await sync_to_async(all_sent)(account), host_logs()
    expected = await sync_to_async(homeserver_messages)(account, created.room_id)
    bodies = [body for _, body in expected]
    # Nothing doubled where it counts: on the homeserver, each of our messages exactly once.
    assert sorted(body for body in bodies if body.startswith("ours")) == sorted(ours), bodies
    assert len(expected) == 80
    stored = await sync_to_async(stored_event_ids)(account, created.room_id)
    assert sorted(stored) == sorted(event_id for event_id, _ in expected), host_logs()
    assert len(stored) == len(set(stored))
