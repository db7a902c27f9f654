"""Failover's parts on the database: free accounts are claimed in one go, reconcile counts only the
room of hosts running now, a host wakes the moment a dead host's lease runs out, and an operator
sees who owns what in admin. (Three real host processes: test_failover.py.)"""

import asyncio
import time
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from rooms import tasks
from rooms.models import SyncHostRecord, SyncLease
from rooms.sync.fence import lease_db
from rooms.sync.host import AccountSync, OutboxSender, SyncHost
from rooms.sync.leases import balance_view, lease_claim, leases_claim, leases_renew, live_hosts
from tests.integration.rooms.test_leases import make_accounts

pytestmark = pytest.mark.django_db(transaction=True)


def test_one_transaction_claims_a_batch_of_free_accounts_and_bumps_each_token():
    free, expired, released, held, extra = make_accounts(5)
    old = {a: lease_claim(account_id=a, owner="dead", seconds=30) for a in (expired, released)}
    SyncLease.objects.filter(account_id=expired).update(expires_at=timezone.now())
    SyncLease.objects.filter(account_id=released).update(owner="", expires_at=None)
    lease_claim(account_id=held, owner="alive", seconds=30)

    with CaptureQueriesContext(connection) as queries:
        tokens = leases_claim(owner="me", seconds=30, limit=3)

    assert tokens == {free: 1, expired: old[expired] + 1, released: old[released] + 1}
    writes = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("UPDATE")]
    assert len(writes) == 1, writes  # one statement for the whole batch, not one per account
    assert SyncLease.objects.get(account_id=held).owner == "alive"
    assert not SyncLease.objects.filter(account_id=extra, owner="me").exists()  # the limit
    # A host claiming next finds only what is left.
    assert leases_claim(owner="other", seconds=30, limit=10) == {extra: 1}
    assert leases_claim(owner="third", seconds=30, limit=10) == {}


def test_renewal_records_the_last_sync_and_the_last_error_in_the_same_statement():
    synced, failing, quiet = make_accounts(3)
    tokens = {
        a: lease_claim(account_id=a, owner="me", seconds=30) for a in (synced, failing, quiet)
    }
    at = timezone.now()
    with CaptureQueriesContext(connection) as queries:
        renewed = leases_renew(
            owner="me",
            tokens=tokens,
            seconds=30,
            synced={synced: at},
            failed={failing: (at, "HomeserverUnreachable: down")},
        )
    assert renewed == {synced, failing, quiet}
    writes = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("UPDATE")]
    assert len(writes) == 1, writes
    rows = {row.account_id: row for row in SyncLease.objects.all()}
    assert rows[synced].last_synced_at == at and rows[synced].last_error == ""
    assert rows[failing].last_error_at == at
    assert rows[failing].last_error == "HomeserverUnreachable: down"
    assert rows[quiet].last_synced_at is None and rows[quiet].last_error_at is None


def test_reconcile_counts_only_the_room_of_hosts_heard_from_within_a_lease(settings, monkeypatch):
    settings.SYNC_LEASE_SECONDS = 30
    settings.SYNC_HOST_CAPACITY = 10
    make_accounts(3)  # no owner
    now = timezone.now()
    # Died 40 s ago with all its room: its leases ran out 10 s ago. Another stopped cleanly.
    SyncHostRecord.objects.create(
        host_id="dead", capacity=500, heartbeat_at=now - timedelta(seconds=40)
    )
    SyncHostRecord.objects.create(host_id="stopped", capacity=500, heartbeat_at=now, stopped=True)
    started = []
    monkeypatch.setattr(tasks.sync_host_run, "delay", started.append)  # no Celery worker here

    assert tasks.sync_reconcile() == 1
    assert len(started) == 1
    # The new host counts (a grace of one lease to start): the next round starts none.
    assert tasks.sync_reconcile() == 0
    # One that never started stops counting after a lease, and is replaced.
    SyncHostRecord.objects.filter(host_id=started[0]).update(
        heartbeat_at=now - timedelta(seconds=31)
    )
    assert tasks.sync_reconcile() == 1
    assert set(live_hosts(lease_seconds=30).values_list("host_id", flat=True)) == {started[1]}


def test_the_balance_view_counts_live_peers_and_the_soonest_foreign_expiry():
    mine, theirs, _free = make_accounts(3)
    now = timezone.now()
    SyncHostRecord.objects.create(host_id="me", capacity=5, heartbeat_at=now, running=True)
    SyncHostRecord.objects.create(
        host_id="peer", capacity=7, heartbeat_at=now, account_count=1, running=True
    )
    SyncHostRecord.objects.create(
        host_id="gone", capacity=9, heartbeat_at=now - timedelta(60), running=True
    )
    # Reconcile's placeholder for a task still queued behind a full worker: nobody syncs for it,
    # so no host leaves accounts for it (it still reserves room in reconcile's count).
    SyncHostRecord.objects.create(host_id="queued", capacity=11, heartbeat_at=now)
    lease_claim(account_id=mine, owner="me", seconds=1)
    lease_claim(account_id=theirs, owner="peer", seconds=20)

    view = balance_view(host_id="me", lease_seconds=30)

    assert (view.active, view.free) == (3, 1)
    assert [(p.capacity, p.account_count) for p in view.peers] == [(7, 1)]
    assert view.next_expiry == SyncLease.objects.get(account_id=theirs).expires_at


async def test_a_host_wakes_when_another_hosts_lease_runs_out_not_at_its_next_heartbeat():
    """With production's 30 s lease a heartbeat comes every 10 s: waiting for it would add up to
    10 s to every failover. The host sleeps only until the dead host's lease may be taken."""
    (account_id,) = await sync_to_async(make_accounts)(1)
    await sync_to_async(lease_claim)(account_id=account_id, owner="dead", seconds=0.5)
    host = SyncHost(host_id="survivor", capacity=5, lease_seconds=30)
    view = await lease_db(balance_view, host_id=host.host_id, lease_seconds=30)
    host.next_expiry = view.next_expiry
    try:
        started = time.monotonic()
        await asyncio.wait_for(host._sleep_until_due(asyncio.Event()), timeout=5)
        assert time.monotonic() - started < 2
        assert timezone.now() >= view.next_expiry
    finally:
        await lease_db(connections.close_all)
        await sync_to_async(connections.close_all)()


def test_admin_shows_who_owns_each_account_and_each_hosts_heartbeat(admin_client):
    (account_id,) = make_accounts(1)
    lease_claim(account_id=account_id, owner="host-busy", seconds=30)
    SyncLease.objects.filter(account_id=account_id).update(
        last_synced_at=timezone.now(), last_error="HomeserverUnreachable: down"
    )
    SyncHostRecord.objects.create(
        host_id="host-busy",
        capacity=123,
        account_count=1,
        heartbeat_at=timezone.now(),
        running=True,
    )

    leases_page = admin_client.get("/admin/rooms/synclease/").content.decode()
    assert "host-busy" in leases_page and "@lease0:hs" in leases_page
    assert "HomeserverUnreachable: down" in leases_page
    assert "Last synced at" in leases_page
    hosts_page = admin_client.get("/admin/rooms/synchostrecord/").content.decode()
    assert "host-busy" in hosts_page and "123" in hosts_page
    # Read-only: the hosts alone write these rows.
    assert admin_client.get("/admin/rooms/synclease/add/").status_code == 403
    lease = SyncLease.objects.get(account_id=account_id)
    assert admin_client.post(f"/admin/rooms/synclease/{lease.pk}/delete/").status_code == 403


async def test_a_host_claims_new_accounts_while_a_queued_host_task_has_not_started(monkeypatch):
    """Reconcile's placeholder (a host task waiting for a worker thread) must not make the running
    host stop at half of the accounts or hand its accounts over: nobody would sync them."""

    async def syncing_forever(self) -> None:
        await asyncio.Event().wait()

    monkeypatch.setattr(AccountSync, "run", syncing_forever)  # no homeserver here
    monkeypatch.setattr(OutboxSender, "run", syncing_forever)
    ids = await sync_to_async(make_accounts)(4)
    await sync_to_async(SyncHostRecord.objects.create)(
        host_id="queued", capacity=500, heartbeat_at=timezone.now()
    )
    host = SyncHost(host_id="running", capacity=500, lease_seconds=30)
    try:
        for _beat in range(2):  # claims at the first, would give back at the second
            await host.heartbeat(None)
            assert sorted(host.owned) == sorted(ids)
    finally:
        await host.release_all()
        await asyncio.to_thread(host.keeper.stop)
