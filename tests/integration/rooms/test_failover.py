"""Three sync host processes that share no directory (each its own HOME, data and crypto-store
folder: three machines) share the accounts fairly while a peer streams plain and encrypted messages;
when the busiest is killed (-9) its accounts sync on the other two within 30 s, and afterwards every
account holds exactly what the homeserver's /messages gives it, every encrypted message decrypted.
No account is ever held by two hosts, and no device ever used by two. Real `manage.py sync_host`
processes on the test database, the real Synapse and Redis. FAILOVER_ACCOUNTS=30 runs the issue's
size (the suite runs twelve to stay quick on two cores)."""

import asyncio
import hashlib
import os
import signal
import time
from collections import Counter
from itertools import pairwise
from urllib.parse import quote, urlencode

import pytest
from asgiref.sync import sync_to_async
from django.db import connections
from django.test import Client
from django.utils import timezone
from nio import RoomCreateResponse

from accounts.matrix.http import matrix_request
from accounts.models import MatrixAccount
from rooms.models import SyncHostRecord, SyncLease, TimelineEntry
from rooms.sync.balance import fair_share, slack
from tests.integration.rooms.helpers import join, signed_in_account
from tests.integration.rooms.test_encryption import ENCRYPTION, encrypting_peer, peer_send
from tests.integration.rooms.test_fencing import start_host

pytestmark = pytest.mark.django_db(transaction=True)

ACCOUNTS = int(os.environ.get("FAILOVER_ACCOUNTS", "12"))
HOSTS = 3
# Short leases keep the test quick; FAILOVER_LEASE_SECONDS=20 measures production's default.
LEASE_SECONDS = float(os.environ.get("FAILOVER_LEASE_SECONDS", "8"))


def owners() -> dict[int, str]:
    """Who holds each account's lease now (expired leases are nobody's)."""
    now = timezone.now()
    return {
        lease.account_id: lease.owner if lease.owner and lease.expires_at > now else ""
        for lease in SyncLease.objects.all()
    }


class LeaseWatch:
    """Samples every lease row until stopped: a fencing token only ever grows, and each token
    names one owner, so no account is ever held by two hosts under one token."""

    def __init__(self) -> None:
        self.seen: dict[tuple[int, int], set[str]] = {}
        self.last_token: dict[int, int] = {}
        self.errors: list[str] = []
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            rows = await sync_to_async(list)(
                SyncLease.objects.values_list("account_id", "fencing_token", "owner")
            )
            for account_id, token, owner in rows:
                if token < self.last_token.get(account_id, 0):
                    self.errors.append(f"account {account_id}: token went back to {token}")
                self.last_token[account_id] = token
                if owner:
                    self.seen.setdefault((account_id, token), set()).add(owner)
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        shared = {key: names for key, names in self.seen.items() if len(names) > 1}
        assert not shared, f"one token, several owners: {shared}"
        assert not self.errors, self.errors


def heartbeats_since(moment):
    """Every host has heartbeat since `moment`."""

    def check() -> bool:
        records = SyncHostRecord.objects.filter(host_id__in=[f"host-{n}" for n in range(HOSTS)])
        return records.filter(heartbeat_at__gt=moment).count() == HOSTS

    return check


async def wait_for(check, *, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = await sync_to_async(check)()
        if result:
            return result
        await asyncio.sleep(0.1)
    raise AssertionError(f"not within {timeout} s: {what} ({await sync_to_async(owners)()})")


def device_hash(account: MatrixAccount) -> str:
    """How traced_host names the device a request used."""
    return hashlib.sha256(f"Bearer {account.access_token}".encode()).hexdigest()[:12]


def device_users(hosts) -> dict[str, list[tuple[float, str]]]:
    """From the hosts' traces: for each device, every (time, host) that used it, in time order."""
    uses: dict[str, list[tuple[float, str]]] = {}
    for host_id, host in hosts.items():
        for line in host.trace_since(0):
            if not line.startswith("http ") or " @" not in line:
                continue
            stamp, device = line.rsplit(" @", 1)[1].split()
            uses.setdefault(device, []).append((float(stamp), host_id))
    return {device: sorted(times) for device, times in uses.items()}


def assert_no_device_used_by_two_hosts(hosts, accounts: list[MatrixAccount]) -> None:
    """A device changes hands only with its lease: the hosts' requests with it switch from one
    host to another at most once per claim of its lease (each claim bumps the fencing token).
    Two hosts using it at once would interleave their requests, switching back and forth."""
    uses = device_users(hosts)
    claims = dict(SyncLease.objects.values_list("account_id", "fencing_token"))
    for account in accounts:
        sequence = [host_id for _at, host_id in uses.get(device_hash(account), [])]
        assert sequence, f"{account.mxid}: its requests are traced"
        switches = sum(a != b for a, b in pairwise(sequence))
        assert switches <= claims[account.pk] - 1, (account.mxid, switches, claims[account.pk])


def homeserver_messages(account: MatrixAccount, room_id: str) -> set[str]:
    """The ids of the messages (plain or encrypted) the homeserver gives this account."""
    ids: set[str] = set()
    since = None
    while True:
        query = {"dir": "b", "limit": "500", **({"from": since} if since else {})}
        page = matrix_request(
            account.homeserver_url,
            "GET",
            f"/_matrix/client/v3/rooms/{quote(room_id)}/messages?{urlencode(query)}",
            token=account.access_token,
        )
        for event in page.get("chunk", []):
            if event["type"] in ("m.room.message", "m.room.encrypted"):
                ids.add(event["event_id"])
        if not page.get("chunk") or not page.get("end"):
            return ids
        since = page["end"]


def stored_messages(account: MatrixAccount, room_id: str) -> set[str]:
    """The ids of the messages this account's own timeline holds (decrypted ones are messages)."""
    return set(
        TimelineEntry.objects.filter(
            account=account,
            room__room_id=room_id,
            event__event_type__in=["m.room.message", "m.room.encrypted"],
        ).values_list("event__event_id", flat=True)
    )


def readable_everywhere(event_ids: list[str]) -> bool:
    """Every account holds each event, decrypted by its own device."""
    readable = TimelineEntry.objects.filter(
        event__event_id__in=event_ids, event__event_type="m.room.message", sealed=False
    ).count()
    return readable == ACCOUNTS * len(event_ids)


class Stream:
    """The peer sends plain and encrypted messages in turn, until stopped."""

    def __init__(self, peer, plain_room: str, secret_room: str) -> None:
        self.peer, self.rooms = peer, (plain_room, secret_room)
        self.sent: list[tuple[str, str]] = []  # (room, event id)
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        n = 0
        while True:
            room_id = self.rooms[n % 2]
            event_id = await peer_send(self.peer, room_id, f"message {n}")
            self.sent.append((room_id, event_id))
            n += 1
            await asyncio.sleep(0.2)

    async def stop(self) -> list[tuple[str, str]]:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        return self.sent


async def test_accounts_spread_over_three_hosts_and_the_busiest_ones_resume_within_30_s_of_kill_9(
    matrix_user_factory, synapse, tmp_path
):
    people = [matrix_user_factory() for _ in range(ACCOUNTS)]
    accounts = [await sync_to_async(signed_in_account)(Client(), person) for person in people]
    peer = await encrypting_peer(synapse, matrix_user_factory(), tmp_path / "peer")
    invite = [p.user_id for p in people]
    plain = await peer.room_create(name="Failover", invite=invite)
    secret = await peer.room_create(
        name="Failover, encrypted", invite=invite, initial_state=[ENCRYPTION]
    )
    assert isinstance(plain, RoomCreateResponse) and isinstance(secret, RoomCreateResponse)
    rooms = (plain.room_id, secret.room_id)
    for account in accounts:
        for room_id in rooms:
            await sync_to_async(join)(account, room_id)
    folder = tmp_path / "hosts"
    folder.mkdir()
    machines = {f"host-{n}": tmp_path / f"machine-{n}" for n in range(HOSTS)}
    hosts = {
        host_id: start_host(
            host_id, folder, lease_seconds=LEASE_SECONDS, sync_timeout_ms=3000, machine=machine
        )
        for host_id, machine in machines.items()
    }
    watch = LeaseWatch()
    stream = None
    most = fair_share(ACCOUNTS, HOSTS) + slack(fair_share(ACCOUNTS, HOSTS))
    try:
        # Spread: every account held by a live host, none above its fair share plus the slack,
        # every host busy, every account synced once by its owner.
        def spread() -> Counter | None:
            held = owners()
            counts = Counter(held.values())
            all_held = len(held) == ACCOUNTS and "" not in counts
            synced = SyncLease.objects.filter(last_synced_at__isnull=False).count() == ACCOUNTS
            fair = len(counts) == HOSTS and max(counts.values()) <= most
            return counts if all_held and fair and synced else None

        await wait_for(
            spread, timeout=60 + 10 * LEASE_SECONDS, what=f"each host holds at most {most}"
        )
        # Every device can read the encrypted room before the stream starts (the peer knows all
        # their keys), so every encrypted message of the stream is decryptable by every account.
        for _attempt in range(6):
            probe = await peer_send(peer, secret.room_id, "can everyone read this?")
            try:
                await wait_for(
                    lambda probe=probe: readable_everywhere([probe]),
                    timeout=15,
                    what="the probe decrypted",
                )
                break
            except AssertionError:
                continue
        else:
            raise AssertionError("our devices never all read the encrypted room")

        # Settled: after two more heartbeats of every host, nothing has moved.
        before = await sync_to_async(owners)()
        for _ in range(2):
            await wait_for(
                heartbeats_since(timezone.now()), timeout=5 * LEASE_SECONDS, what="beats"
            )
        assert await sync_to_async(owners)() == before, "accounts kept moving after settling"
        counts = Counter(before.values())

        stream = Stream(peer, *rooms)
        await asyncio.sleep(2)
        busiest, _ = counts.most_common(1)[0]
        orphans = sorted(a for a, owner in before.items() if owner == busiest)
        tokens_before = dict(
            await sync_to_async(list)(
                SyncLease.objects.filter(account_id__in=orphans).values_list(
                    "account_id", "fencing_token"
                )
            )
        )
        hosts[busiest].process.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        hosts[busiest].process.wait()
        sent_before = len(stream.sent)

        def resumed() -> bool:
            held = owners()
            moved = all(held.get(a) not in ("", busiest) for a in orphans)
            after_kill = [event_id for _room, event_id in stream.sent[sent_before:]]
            stored = after_kill and TimelineEntry.objects.filter(
                account_id__in=orphans, event__event_id=after_kill[0]
            ).count() == len(orphans)
            return moved and bool(stored)

        await wait_for(
            resumed,
            timeout=30 + 2 * LEASE_SECONDS,
            what="the killed host's accounts sync elsewhere",
        )
        elapsed = time.monotonic() - killed_at
        await asyncio.sleep(2)
        sent = await stream.stop()
        stream = None
        print(
            f"\nfailover: {len(orphans)} of {ACCOUNTS} accounts of {busiest} syncing on the other "
            f"hosts {elapsed:.1f} s after kill -9 (lease {LEASE_SECONDS} s); "
            f"{len(sent)} messages streamed"
        )
        assert elapsed <= 30, f"failover took {elapsed:.1f} s"

        # Nothing lost: every message, plain or encrypted, decrypted by every account's device.
        await wait_for(
            lambda: readable_everywhere([event_id for _room, event_id in sent]),
            timeout=60,
            what="every streamed message read by every account",
        )
        for account in accounts:
            for room_id in rooms:
                theirs = await sync_to_async(homeserver_messages)(account, room_id)
                ours = await sync_to_async(stored_messages)(account, room_id)
                assert ours == theirs, (account.mxid, room_id, theirs ^ ours)

        after = await sync_to_async(owners)()
        survivors = Counter(after.values())
        assert set(survivors) == set(hosts) - {busiest}, survivors
        leases = await sync_to_async(list)(SyncLease.objects.filter(account_id__in=orphans))
        for lease in leases:
            assert lease.fencing_token > tokens_before[lease.account_id], lease
        every_one = await sync_to_async(MatrixAccount.objects.filter(is_active=True).count)()
        assert every_one == ACCOUNTS
        await sync_to_async(assert_no_device_used_by_two_hosts)(hosts, accounts)
        # Nothing a host needs is on its own disk: no crypto store, no database file.
        for machine in machines.values():
            kept = [
                p for p in machine.rglob("*") if p.is_file() and p.suffix in (".db", ".sqlite3")
            ]
            assert not kept, kept
    finally:
        try:
            if stream is not None:
                await stream.stop()
            await watch.stop()
        finally:
            for host in hosts.values():
                host.stop()
            await peer.close()
            await sync_to_async(connections.close_all)()
