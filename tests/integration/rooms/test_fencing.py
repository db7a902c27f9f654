"""The lease fences everything a device does, not only database rows: a sync host frozen (SIGSTOP)
past its lease while another host takes the account over writes nothing to the crypto store and
sends nothing when it wakes (SIGCONT); it stops the account, and the new owner decrypts and sends
as usual. Two real host processes on one database, the real Synapse, an encrypting nio peer.

What each host does is recorded below every fence (tests/integration/rooms/traced_host.py):
every committed write to its crypto store, and every HTTP request the process starts.
"""

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connection, connections
from django.utils import timezone
from nio import AsyncClient, MegolmEvent, RoomMessagesResponse, RoomMessageText

from accounts.matrix.sync_api import new_http_session
from accounts.models import MatrixAccount
from rooms import services
from rooms.models import OutboxMessage, Room, SyncHostRecord, SyncLease
from rooms.services import LeaseHandle
from rooms.sync.fence import lease_db
from rooms.sync.host import OutboxSender
from rooms.sync.leases import LeaseLost, lease_claim
from tests.integration.rooms.test_encryption import (
    cross_signed,
    decrypted,
    encrypted_room,
    peer_send,
    sent,
    until,
)
from tests.integration.rooms.test_outbox import bodies_on_homeserver, shared_room

pytestmark = pytest.mark.django_db(transaction=True)
ROOT = Path(__file__).resolve().parents[3]
SYNC_PATH = "/_matrix/client/v3/sync"


def database_url() -> str:
    """The test database as a URL, so host processes write where the test reads."""
    config = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{config['NAME']}"
    user = config.get("USER") or "postgres"
    host, port = config.get("HOST") or "127.0.0.1", config.get("PORT") or 5432
    return f"postgres://{user}@{host}:{port}/{config['NAME']}"


@dataclass
class Host:
    """One `sync_host` process, its log and its trace."""

    host_id: str
    process: subprocess.Popen
    log: Path
    trace: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def trace_size(self) -> int:
        return self.trace.stat().st_size if self.trace.exists() else 0

    def trace_since(self, offset: int) -> list[str]:
        with self.trace.open("rb") as trace:
            trace.seek(offset)
            return trace.read().decode(errors="replace").splitlines()

    def open_syncs(self) -> int:
        """/sync long-polls started and not answered yet (the loop keeps one open while it
        ingests the last answer, so the last request started says nothing)."""
        started = sum(line.startswith(f"http GET {SYNC_PATH}") for line in self.trace_since(0))
        done = self.trace.with_name(self.trace.name + ".done")
        ended = done.read_text().splitlines() if done.exists() else []
        return started - sum(line.startswith(f"GET {SYNC_PATH}") for line in ended)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_host(
    host_id: str,
    folder: Path,
    *,
    lease_seconds: float,
    sync_timeout_ms: int,
    machine: Path | None = None,
) -> Host:
    """A traced `sync_host` process on the test's database, Redis and homeserver. With `machine`,
    it shares no directory with anyone: its HOME, data and crypto-store folders are under
    `machine` (as on another server), and only the keys come from the environment."""
    env = {
        **os.environ,  # WEBCLIENT_DATA_DIR: the test's keys and crypto store folder
        "DJANGO_SETTINGS_MODULE": "webclient.settings.embedded",
        "DATABASE_URL": database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "CHANNELS_PREFIX": settings.CHANNEL_LAYERS["default"]["CONFIG"]["prefix"],  # nudges
        "WEBCLIENT_CRYPTO_STORE_DIR": str(settings.CRYPTO_STORE_DIR),
        "MATRIX_HOMESERVER_URL": settings.MATRIX_HOMESERVER_URL,
        "MATRIX_REGISTRATION_SHARED_SECRET": settings.MATRIX_REGISTRATION_SHARED_SECRET,
        "SYNC_LEASE_SECONDS": str(lease_seconds),
        "SYNC_TIMEOUT_MS": str(sync_timeout_ms),
        "FENCING_TRACE": str(folder / f"{host_id}.trace"),
    }
    if machine is not None:
        env |= {
            "HOME": str(machine / "home"),
            "WEBCLIENT_DATA_DIR": str(machine / "data"),
            "WEBCLIENT_CRYPTO_STORE_DIR": str(machine / "data" / "crypto"),
            "DJANGO_SECRET_KEY": settings.SECRET_KEY,
            "WEBCLIENT_SECRET_KEYS": ",".join(settings.WEBCLIENT_SECRET_KEYS),
        }
        (machine / "home").mkdir(parents=True, exist_ok=True)
    log = folder / f"{host_id}.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.integration.rooms.traced_host", "--host-id", host_id],
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    return Host(host_id, process, log, folder / f"{host_id}.trace")


def database_unlocked() -> bool:
    """Nobody holds a lock: SQLite's write lock, or on PostgreSQL an open transaction (a host
    frozen holding one would stall the other host and the test, which is not what it is about)."""
    if connection.vendor != "sqlite":
        # PostgreSQL locks rows: a host frozen inside a transaction (its pipelined loop ingests
        # while a long-poll is open; its lease keeper renews on a thread of its own) would hold
        # its lease row, and a takeover would wait for it, which is not what this test is about.
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND pid <> pg_backend_pid() AND xact_start IS NOT NULL"
            )
            return cursor.fetchone()[0] == 0
    probe = sqlite3.connect(connection.settings_dict["NAME"], timeout=0.3)
    try:
        probe.execute("BEGIN IMMEDIATE")
        probe.execute("ROLLBACK")
        return True
    except sqlite3.OperationalError:
        return False
    finally:
        probe.close()


async def freeze(host: Host, *, in_long_poll: bool = False) -> None:
    """SIGSTOP the host at a moment it holds no database lock (and, if asked, while its account's
    loop waits in a /sync long-poll: what the homeserver answers meanwhile waits in its socket)."""
    for _ in range(50):
        host.process.send_signal(signal.SIGSTOP)
        while not stopped(host.process.pid):
            await asyncio.sleep(0.01)
        polling = host.open_syncs() > 0
        if await sync_to_async(database_unlocked)() and (polling or not in_long_poll):
            return
        host.process.send_signal(signal.SIGCONT)
        await asyncio.sleep(0.2)
    raise AssertionError(f"{host.host_id} was never idle enough to freeze")


def stopped(pid: int) -> bool:
    """The process is stopped by a signal (its state in /proc is T)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rpartition(")")[2].split()[0] == "T"


def owner_of(account: MatrixAccount, host_id: str):
    def check():
        return SyncLease.objects.filter(account=account, owner=host_id).first()

    check.__name__ = f"owner_of({host_id})"
    return check


def lease_expired(account: MatrixAccount):
    def check():
        return SyncLease.objects.filter(account=account, expires_at__lt=timezone.now()).exists()

    check.__name__ = "lease_expired"
    return check


def account_stopped_by(host_id: str):
    """The host's own heartbeat says it holds no account any more."""

    def check():
        return SyncHostRecord.objects.filter(host_id=host_id, account_count=0).exists()

    check.__name__ = f"account_stopped_by({host_id})"
    return check


def all_sent(txn_ids: list[str]):
    def check():
        rows = OutboxMessage.objects.filter(txn_id__in=txn_ids, status=OutboxMessage.SENT)
        return rows.count() == len(txn_ids)

    check.__name__ = "all_sent"
    return check


async def our_messages_on_homeserver(peer: AsyncClient, room_id: str, sender: str) -> list[str]:
    """The bodies of `sender`'s messages in the room, as the peer's own device decrypts them."""
    await peer.sync(timeout=0)  # the room keys of what was sent meanwhile
    response = await peer.room_messages(room_id, limit=200)
    assert isinstance(response, RoomMessagesResponse), response
    bodies = []
    for event in response.chunk:
        if event.sender == sender and isinstance(event, (RoomMessageText, MegolmEvent)):
            assert isinstance(event, RoomMessageText), f"the peer could not read {event}"
            bodies.append(event.body)
    return bodies


async def log_says(host: Host, text: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while text not in host.log_text():
        if time.monotonic() > deadline:
            raise AssertionError(f"{host.host_id}'s log never said {text!r}:\n{host.log_text()}")
        await asyncio.sleep(0.2)


async def test_a_host_frozen_past_its_lease_writes_and_sends_nothing_when_it_wakes(
    client, synapse, matrix_user_factory, tmp_path
):
    account, peer, room_id = await encrypted_room(client, synapse, matrix_user_factory, tmp_path)
    folder = tmp_path / "hosts"
    folder.mkdir()
    # A: a short lease, so a short freeze outlives it; a long poll that stays open while frozen.
    a = start_host("host-a", folder, lease_seconds=3, sync_timeout_ms=60_000)
    b = None
    try:
        # A owns the account and uses its device both ways.
        await until(owner_of(account, "host-a"))
        await until(cross_signed(account), timeout=60)
        before = await until(decrypted(await peer_send(peer, room_id, "before the freeze")))
        assert before.raw["content"]["body"] == "before the freeze"
        room = await sync_to_async(Room.objects.get)(room_id=room_id)
        hello = await sync_to_async(services.message_send)(
            account_id=account.pk, room=room, body="sent by A"
        )
        await until(sent(hello.txn_id))
        assert any(line.startswith("sql ") for line in a.trace_since(0)), "writes are traced"

        await freeze(a, in_long_poll=True)
        # While A sleeps in its long-poll, the peer starts a new room key (an Olm message to our
        # device) and writes: the homeserver answers A's open /sync with both, into A's socket.
        peer.olm.outbound_group_sessions.pop(room_id, None)
        key_rotated = await peer_send(peer, room_id, "new key, A is frozen")

        # B takes the account over once A's lease has run out, and reads the new key's messages.
        await until(lease_expired(account))
        b = start_host("host-b", folder, lease_seconds=30, sync_timeout_ms=1000)
        await until(owner_of(account, "host-b"), timeout=60)
        event = await until(decrypted(key_rotated), timeout=60)
        assert event.raw["content"]["body"] == "new key, A is frozen"

        # B freezes too (well inside its 30 s lease), so what is queued now waits for whoever
        # sends it: the peer writes, and our person queues messages, which nudge both hosts.
        await freeze(b)
        from_peer = [await peer_send(peer, room_id, f"peer {n}") for n in range(2)]
        queued = [
            await sync_to_async(services.message_send)(
                account_id=account.pk, room=room, body=f"queued {n}"
            )
            for n in range(3)
        ]
        a_woke_at = a.trace_size()
        a.process.send_signal(signal.SIGCONT)

        # A stops the account, and did nothing for it on the way.
        await log_says(a, f"host-a lost the lease of account {account.pk}: stopping it")
        await log_says(a, f"host-a dropped account {account.pk}")
        await until(account_stopped_by("host-a"))
        assert a.process.poll() is None, "A stops the account, not itself"
        after_waking = a.trace_since(a_woke_at)
        writes = [line for line in after_waking if line.startswith("sql ")]
        requests = [line for line in after_waking if line.startswith("http ")]
        assert writes == [], f"A wrote to the crypto store after it woke: {writes}"
        assert requests == [], f"A asked the homeserver for something after it woke: {requests}"
        assert await our_messages_on_homeserver(peer, room_id, account.mxid) == ["sent by A"]

        # B wakes and carries on: it reads what the peer wrote and sends each queued message.
        b_woke_at = b.trace_size()
        b.process.send_signal(signal.SIGCONT)
        for event_id in from_peer:
            await until(decrypted(event_id), timeout=60)
        txn_ids = [message.txn_id for message in queued]
        await until(all_sent(txn_ids), timeout=60)
        b_puts = [line for line in b.trace_since(b_woke_at) if line.startswith("http PUT")]
        for txn_id in txn_ids:
            assert sum(line.split()[2].endswith(f"/{txn_id}") for line in b_puts) == 1, (
                txn_id,
                b_puts,
            )
        bodies = await our_messages_on_homeserver(peer, room_id, account.mxid)
        assert sorted(bodies) == ["queued 0", "queued 1", "queued 2", "sent by A"], bodies
        assert a.trace_since(a_woke_at) == after_waking, "A stays silent"
    finally:
        for host in (a, b):
            if host is not None:
                host.stop()
        await peer.close()
        await sync_to_async(connections.close_all)()  # this test's own, on asgiref's thread


async def test_an_outbox_whose_lease_was_taken_over_puts_nothing(
    client, matrix_user_factory, nio_peer_factory
):
    """The send fence on its own: the old owner's sender finds a queued message and refuses to
    PUT it (the database check after the PUT would come too late: the message would be out)."""
    account, room, _peer = await shared_room(client, matrix_user_factory, nio_peer_factory)
    await sync_to_async(services.message_send)(
        account_id=account.pk, room=room, body="not from the old owner"
    )
    token = await sync_to_async(lease_claim)(account_id=account.pk, owner="old", seconds=30)
    await sync_to_async(SyncLease.objects.filter(account=account).update)(expires_at=timezone.now())
    await sync_to_async(lease_claim)(account_id=account.pk, owner="new", seconds=30)
    try:
        async with new_http_session() as http:
            with pytest.raises(LeaseLost):
                await OutboxSender(LeaseHandle(account.pk, "old", token), http).send_pending(0)
        bodies = await sync_to_async(bodies_on_homeserver)(account, room.room_id)
        assert "not from the old owner" not in bodies
    finally:
        await sync_to_async(connections.close_all)()
        await lease_db(connections.close_all)  # the fence's check ran on the lease thread
