"""Leases: renewed in one statement, nobody's once expired, and never late because other accounts'
ingest holds asgiref's shared thread. (The frozen-host proof is test_fencing.py.)"""

import asyncio
import threading
import time
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from django.db import connection, connections, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import MatrixAccount
from rooms.models import SyncHostRecord, SyncLease
from rooms.services import LeaseHandle
from rooms.sync.account_crypto import AccountCrypto
from rooms.sync.fence import LeaseFence, lease_db
from rooms.sync.host import SyncHost, _Owned
from rooms.sync.lease_keeper import LeaseKeeper
from rooms.sync.leases import LeaseLost, lease_check, lease_claim, lease_held, leases_renew

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
async def _close_lease_thread_connection():
    yield
    await lease_db(connections.close_all)
    await sync_to_async(connections.close_all)()  # asgiref's thread's, as other host tests do


def make_accounts(count: int) -> list[int]:
    ids = []
    for n in range(count):
        user = get_user_model().objects.create_user(username=f"lease{n}")
        account = MatrixAccount.objects.create(
            user=user,
            homeserver_url="http://127.0.0.1:9",
            mxid=f"@lease{n}:hs",
            device_id="D",
            access_token="syt_x",
        )
        ids.append(account.pk)
    return ids


def expires_at(account_id: int):
    return SyncLease.objects.get(account_id=account_id).expires_at


def test_one_statement_renews_exactly_the_leases_the_host_still_holds():
    held, taken, expired, stale = make_accounts(4)
    tokens = {
        a: lease_claim(account_id=a, owner="me", seconds=30) for a in (held, taken, expired, stale)
    }
    SyncLease.objects.filter(account_id__in=[taken, expired, stale]).update(
        expires_at=timezone.now()
    )
    lease_claim(account_id=taken, owner="other", seconds=30)  # another host took it
    lease_claim(account_id=stale, owner="me", seconds=30)  # so did we, later: our token is old
    untouched = {a: expires_at(a) for a in (taken, expired, stale)}

    with CaptureQueriesContext(connection) as queries:
        renewed = leases_renew(owner="me", tokens=tokens, seconds=60)

    assert renewed == {held}
    assert expires_at(held) > timezone.now() + timedelta(seconds=50)
    assert {a: expires_at(a) for a in (taken, expired, stale)} == untouched
    updates = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("UPDATE")]
    assert len(updates) == 1, updates
    assert SyncLease.objects.get(account_id=taken).owner == "other"


def test_an_expired_lease_is_nobodys_even_before_another_host_takes_it():
    (account_id,) = make_accounts(1)
    token = lease_claim(account_id=account_id, owner="me", seconds=30)
    assert lease_held(account_id=account_id, owner="me", token=token)
    SyncLease.objects.filter(account_id=account_id).update(expires_at=timezone.now())
    assert not lease_held(account_id=account_id, owner="me", token=token)
    with pytest.raises(LeaseLost), transaction.atomic():
        lease_check(account_id=account_id, owner="me", token=token)
    assert leases_renew(owner="me", tokens={account_id: token}, seconds=30) == set()


async def test_the_fence_shuts_on_its_own_clock_and_on_the_database():
    (account_id,) = await sync_to_async(make_accounts)(1)
    token = await sync_to_async(lease_claim)(account_id=account_id, owner="me", seconds=30)
    lease = LeaseHandle(account_id, "me", token)

    # Frozen past the lease: refused at once, without asking anyone.
    woke_late = LeaseFence(lease, 3, since=time.monotonic() - 4)
    with pytest.raises(LeaseLost):
        woke_late.check()

    fence = LeaseFence(lease, 30)
    await fence.verify()
    await sync_to_async(lease_claim)(account_id=account_id, owner="me", seconds=30)  # new token
    with pytest.raises(LeaseLost):
        await fence.verify()
    with pytest.raises(LeaseLost):
        fence.check()  # and it stays shut
    fence.renewed(time.monotonic())
    with pytest.raises(LeaseLost):
        fence.check()


async def test_renewals_never_wait_behind_ingest_on_the_shared_thread():
    (account_id,) = await sync_to_async(make_accounts)(1)
    host = SyncHost(host_id="busy-host", capacity=1, lease_seconds=3)
    token = await sync_to_async(lease_claim)(account_id=account_id, owner=host.host_id, seconds=3)
    lease = LeaseHandle(account_id, host.host_id, token)
    idle = [asyncio.create_task(asyncio.Event().wait()) for _ in range(2)]
    crypto = AccountCrypto(LeaseFence(lease))
    host.owned[account_id] = _Owned(lease, idle[0], None, idle[1], crypto)
    host.keeper.track(account_id, token, crypto.fence)
    before = await sync_to_async(expires_at)(account_id)

    # Another account's ingest holds asgiref's one thread-sensitive thread for a long time.
    ingest_done = threading.Event()
    ingest = asyncio.create_task(sync_to_async(ingest_done.wait)())
    try:
        await asyncio.wait_for(host.heartbeat(None), timeout=5)
        assert not ingest.done()
    finally:
        ingest_done.set()
        await ingest
        for task in idle:
            task.cancel()
        await asyncio.to_thread(host.keeper.stop)
    assert account_id in host.owned
    assert await sync_to_async(expires_at)(account_id) > before
    record = await sync_to_async(SyncHostRecord.objects.get)(host_id="busy-host")
    assert record.account_count == 1


def test_the_keeper_renews_while_the_loop_ticks_and_lets_the_lease_lapse_when_it_is_wedged():
    """The keeper's own thread keeps leases alive only for a loop that shows life: a wedged loop
    (no tick for half a lease) must lose its accounts as a frozen host does."""
    (account_id,) = make_accounts(1)
    seconds = 4.0
    token = lease_claim(account_id=account_id, owner="keeper-host", seconds=seconds)
    fence = LeaseFence(LeaseHandle(account_id, "keeper-host", token), seconds)
    keeper = LeaseKeeper(host_id="keeper-host", seconds=seconds, on_lost=lambda lost: None)
    keeper.track(account_id, token, fence)
    keeper.start()
    try:
        ticking_until = time.monotonic() + seconds * 2.5
        while time.monotonic() < ticking_until:
            keeper.loop_alive()
            time.sleep(0.1)
        assert lease_held(account_id=account_id, owner="keeper-host", token=token)
        fence.check()  # renewed by the keeper, the fence's own clock agrees

        # The loop stops ticking: no more renewals, the lease runs out, another host may take it.
        deadline = time.monotonic() + seconds * 6
        while lease_held(account_id=account_id, owner="keeper-host", token=token):
            assert time.monotonic() < deadline, "a wedged loop's lease was still renewed"
            time.sleep(0.2)
        with pytest.raises(LeaseLost):
            fence.check()
        assert lease_claim(account_id=account_id, owner="other-host", seconds=30) == token + 1
    finally:
        keeper.stop()


async def test_a_host_claims_a_batch_at_a_time_and_comes_back_for_more(settings):
    """A claimed lease is renewed once its account is started; a host that claimed a thousand at
    once lost most of them before it had started them. It claims a few batches per heartbeat
    and runs the next heartbeat at once while accounts are still free."""
    settings.SYNC_FIRST_ROUNDS = 2  # batches of 4, three per heartbeat
    await sync_to_async(make_accounts)(14)
    host = SyncHost(host_id="batching-host", capacity=100, lease_seconds=30)
    host.keeper.start()
    try:
        await asyncio.wait_for(host.heartbeat(None), timeout=30)
        assert len(host.owned) == 12
        assert host.claim_now.is_set()  # two accounts still free: claim again now
        host.claim_now.clear()
        await asyncio.wait_for(host.heartbeat(None), timeout=30)
        assert len(host.owned) == 14
        assert not host.claim_now.is_set()
    finally:
        await host.release_all()
        await asyncio.to_thread(host.keeper.stop)
