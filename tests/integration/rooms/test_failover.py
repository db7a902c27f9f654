"""Three sync host processes share twelve accounts fairly, and when the busiest is killed (-9) its
accounts are owned by the other two and syncing again within 30 s; no account ever has two owners.
Real `manage.py sync_host` processes on the test database, the real Synapse and Redis."""

import asyncio
import os
import signal
import time
from collections import Counter

import pytest
from asgiref.sync import sync_to_async
from django.db import connections
from django.test import Client
from django.utils import timezone
from nio import RoomCreateResponse, RoomSendResponse

from accounts.models import MatrixAccount
from rooms.models import SyncHostRecord, SyncLease, TimelineEntry
from rooms.sync.balance import fair_share, slack
from tests.integration.rooms.helpers import join, signed_in_account
from tests.integration.rooms.test_fencing import start_host

pytestmark = pytest.mark.django_db(transaction=True)

ACCOUNTS = 12
HOSTS = 3
# Short leases keep the test quick; FAILOVER_LEASE_SECONDS=20 measures production's default.
LEASE_SECONDS = float(os.environ.get("FAILOVER_LEASE_SECONDS", "4"))


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


async def test_accounts_spread_over_three_hosts_and_the_busiest_ones_resume_within_30_s_of_kill_9(
    matrix_user_factory, nio_peer_factory, tmp_path
):
    people = [matrix_user_factory() for _ in range(ACCOUNTS)]
    accounts = [await sync_to_async(signed_in_account)(Client(), person) for person in people]
    peer = await nio_peer_factory()
    created = await peer.room_create(name="Failover", invite=[p.user_id for p in people])
    assert isinstance(created, RoomCreateResponse)
    room_id = created.room_id
    for account in accounts:
        await sync_to_async(join)(account, room_id)
    folder = tmp_path / "hosts"
    folder.mkdir()
    hosts = {
        f"host-{n}": start_host(
            f"host-{n}", folder, lease_seconds=LEASE_SECONDS, sync_timeout_ms=3000
        )
        for n in range(HOSTS)
    }
    watch = LeaseWatch()
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

        counts = await wait_for(
            spread, timeout=60 + 10 * LEASE_SECONDS, what=f"each host holds at most {most}"
        )
        # Settled: after two more heartbeats of every host, nothing has moved.
        before = await sync_to_async(owners)()
        for _ in range(2):
            await wait_for(
                heartbeats_since(timezone.now()), timeout=5 * LEASE_SECONDS, what="beats"
            )
        assert await sync_to_async(owners)() == before, "accounts kept moving after settling"

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
        sent = await peer.room_send(
            room_id, "m.room.message", {"msgtype": "m.text", "body": "after the kill"}
        )
        assert isinstance(sent, RoomSendResponse)

        def resumed() -> bool:
            held = owners()
            moved = all(held.get(a) not in ("", busiest) for a in orphans)
            stored = TimelineEntry.objects.filter(
                account_id__in=orphans, event__event_id=sent.event_id
            ).count() == len(orphans)
            return moved and stored

        await wait_for(
            resumed,
            timeout=30 + 2 * LEASE_SECONDS,
            what="the killed host's accounts sync elsewhere",
        )
        elapsed = time.monotonic() - killed_at
        print(
            f"\nfailover: {len(orphans)} accounts of {busiest} syncing on the other hosts "
            f"{elapsed:.1f} s after kill -9 (lease {LEASE_SECONDS} s)"
        )
        assert elapsed <= 30, f"failover took {elapsed:.1f} s"

        after = await sync_to_async(owners)()
        survivors = Counter(after.values())
        assert set(survivors) == set(hosts) - {busiest}, survivors
        leases = await sync_to_async(list)(SyncLease.objects.filter(account_id__in=orphans))
        for lease in leases:
            assert lease.fencing_token > tokens_before[lease.account_id], lease
        every_one = await sync_to_async(MatrixAccount.objects.filter(is_active=True).count)()
        assert every_one == ACCOUNTS
    finally:
        try:
            await watch.stop()
        finally:
            for host in hosts.values():
                host.stop()
            await sync_to_async(connections.close_all)()
