"""Group commit and the sync host's ingest threads (rooms/ingest_group.py, rooms/sync/
ingest_executor.py; issue 9's throughput).

- Several accounts' real /sync responses stored in one transaction land exactly as stored one by
  one: each account's own timeline rows and since-token, the shared event once.
- A replayed group stores nothing twice.
- The fence holds inside a group: a stale owner's sync is refused for that account only (nothing of
  it written, its since-token unchanged), the others in the group land; the leases are checked
  with one query for the whole group.
- The lease keeper's renewal does not wait for a group's open transaction (PostgreSQL).
- A sync host's ingest does not run on asgiref's shared thread: it completes while that thread is
  blocked, and what queues while the ingest thread is busy is stored in one group.
"""

import asyncio
import threading
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.db import connection, connections
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.matrix.http import quote
from rooms import ingest_group, previews
from rooms.ingest_group import IngestItem, sync_ingest_group
from rooms.models import Event, SyncLease, SyncState, TimelineEntry
from rooms.services import IngestResult
from rooms.sync import ingest_executor
from rooms.sync.host import AccountSync, _Fetched
from rooms.sync.leases import LeaseLost, lease_claim, leases_renew
from tests.integration.rooms.helpers import (
    as_user,
    claim_lease,
    create_room,
    fetch_sync,
    send_event,
    signed_in_account,
    sync_and_ingest,
    text,
)

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _no_preview_tasks(monkeypatch):
    monkeypatch.setattr(previews, "_enqueue", lambda account_id, event_ids: None)


def three_in_a_room(client, matrix_user_factory):
    """Three of our accounts in bob's room, each with its first sync stored."""
    bob = matrix_user_factory()
    people = [matrix_user_factory() for _ in range(3)]
    ours = [signed_in_account(client if n == 0 else Client(), p) for n, p in enumerate(people)]
    room_id = create_room(bob, name="group")
    for person in people:
        as_user(person, "POST", f"/_matrix/client/v3/join/{quote(room_id)}", {})
    since = {account.pk: sync_and_ingest(account).next_batch for account in ours}
    return bob, ours, room_id, since


def rows_of(account, event_id: str) -> int:
    return TimelineEntry.objects.filter(account=account, event__event_id=event_id).count()


def next_batch_of(account) -> str:
    return SyncState.objects.get(account=account).next_batch


def test_a_group_stores_each_accounts_sync_and_refuses_only_the_stale_owners(
    client, matrix_user_factory
):
    bob, ours, room_id, since = three_in_a_room(client, matrix_user_factory)
    event_id = send_event(bob, room_id, text("for the three of you"))
    items = []
    for account in ours:
        batch = fetch_sync(account, since=since[account.pk])
        items.append(IngestItem(claim_lease(account), account.mxid, batch))
    # The middle account's lease ran out and another host took it: our token is stale.
    stale = ours[1]
    SyncLease.objects.filter(account=stale).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert lease_claim(account_id=stale.pk, owner="other-host", seconds=60) is not None

    with CaptureQueriesContext(connection) as queries:
        outcomes = sync_ingest_group(items)

    assert isinstance(outcomes[0], IngestResult) and outcomes[0].new_events == 1
    assert isinstance(outcomes[1], LeaseLost)
    assert isinstance(outcomes[2], IngestResult) and outcomes[2].new_events == 1
    assert rows_of(ours[0], event_id) == rows_of(ours[2], event_id) == 1
    assert rows_of(stale, event_id) == 0, "a stale owner's row was written"
    assert next_batch_of(stale) == since[stale.pk], "a stale owner's since-token moved"
    for n in (0, 2):
        assert next_batch_of(ours[n]) == items[n].batch.next_batch
    assert Event.objects.filter(event_id=event_id).count() == 1
    # One transaction: the leases read with one query and locked with one at the end, the
    # since-tokens written with one.
    lease_queries = [q["sql"] for q in queries.captured_queries if '"rooms_synclease"' in q["sql"]]
    assert len(lease_queries) == 2, lease_queries
    token_writes = [
        q["sql"]
        for q in queries.captured_queries
        if '"rooms_syncstate"' in q["sql"] and q["sql"].startswith("UPDATE")
    ]
    assert len(token_writes) == 1, token_writes
    # Replayed (a crash before the loop learnt of the commit): nothing is stored twice.
    replayed = sync_ingest_group([items[0], items[2]])
    assert [r.new_events for r in replayed] == [0, 0]
    assert rows_of(ours[0], event_id) == rows_of(ours[2], event_id) == 1


def test_a_group_that_fails_is_stored_account_by_account(client, matrix_user_factory, monkeypatch):
    """Anything but a lost lease failing inside a group rolls it back; each account is then
    stored alone, so only the account whose sync fails gets the error."""
    bob, ours, room_id, since = three_in_a_room(client, matrix_user_factory)
    event_id = send_event(bob, room_id, text("one of you has trouble"))
    items = [
        IngestItem(claim_lease(account), account.mxid, fetch_sync(account, since=since[account.pk]))
        for account in ours
    ]
    real_apply = ingest_group.services.sync_apply

    def apply(*, account_id, **kwargs):
        if account_id == ours[2].pk:
            raise RuntimeError("this account's sync cannot be stored")
        return real_apply(account_id=account_id, **kwargs)

    monkeypatch.setattr(ingest_group.services, "sync_apply", apply)
    outcomes = sync_ingest_group(items)

    assert [type(o) for o in outcomes] == [IngestResult, IngestResult, RuntimeError]
    assert rows_of(ours[0], event_id) == rows_of(ours[1], event_id) == 1
    assert rows_of(ours[2], event_id) == 0
    assert next_batch_of(ours[2]) == since[ours[2].pk]


async def until(condition, failure: str, timeout: float = 30.0) -> None:
    """Poll until the condition holds; fail with `failure` after `timeout` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, failure
        await asyncio.sleep(0.01)


@pytest.mark.asyncio
async def test_ingest_runs_on_its_own_threads_and_groups_what_queued_meanwhile(
    client, matrix_user_factory, monkeypatch
):
    bob, ours, room_id, since = await sync_to_async(three_in_a_room)(client, matrix_user_factory)
    event_id = await sync_to_async(send_event)(bob, room_id, text("while you were busy"))
    executor = ingest_executor.IngestExecutor(threads=1, max_group=10)
    monkeypatch.setattr(ingest_executor, "EXECUTOR", executor)
    syncs = []
    for account in ours:
        lease = await sync_to_async(claim_lease)(account)
        batch = await sync_to_async(fetch_sync)(account, since=since[account.pk])
        syncs.append((AccountSync(lease, http=None), account, _Fetched({}, batch, "s")))

    # asgiref's shared thread is busy for as long as the test says: ingest must not need it.
    asgiref_free = threading.Event()
    blocker = asyncio.ensure_future(sync_to_async(asgiref_free.wait)(60))
    # The ingest thread is busy with the first account's sync until the test lets it go.
    ingest_free, ingest_busy = threading.Event(), threading.Event()
    real_group = ingest_executor.sync_ingest_group
    groups = []

    def group(items):
        if not groups:
            ingest_busy.set()
            ingest_free.wait(60)
        groups.append([item.lease.account_id for item in items])
        return real_group(items)

    monkeypatch.setattr(ingest_executor, "sync_ingest_group", group)
    try:
        first = asyncio.ensure_future(syncs[0][0]._ingest(ours[0].mxid, syncs[0][2]))
        await until(ingest_busy.is_set, "ingest waited for asgiref's busy thread")
        others = [asyncio.ensure_future(s._ingest(a.mxid, f)) for s, a, f in syncs[1:]]
        await until(lambda: len(executor._queue) == 2, "the other syncs were not queued")
        ingest_free.set()
        results = await asyncio.wait_for(asyncio.gather(first, *others), timeout=60)
    finally:
        ingest_free.set()
        asgiref_free.set()
        await blocker
    assert [r.new_events for r in results] == [1, 1, 1]
    assert groups == [[ours[0].pk], [ours[1].pk, ours[2].pk]], groups
    for account in ours:
        assert await sync_to_async(rows_of)(account, event_id) == 1
    await asyncio.to_thread(executor.release_connections)
    await sync_to_async(connections.close_all)()  # asgiref's thread's, before teardown


def test_the_lease_keeper_renews_while_a_group_is_being_stored(
    client, matrix_user_factory, monkeypatch
):
    """The keeper's renewal (one UPDATE of every lease the host holds) must not wait for an
    ingest transaction: ingest locks its lease rows only at the end, just before the commit.
    PostgreSQL only: SQLite has one writer, and every write waits for the open transaction."""
    if connection.vendor != "postgresql":
        pytest.skip("SQLite has a single writer: row locks do not apply")
    bob, ours, room_id, since = three_in_a_room(client, matrix_user_factory)
    send_event(bob, room_id, text("a slow group"))
    items = [
        IngestItem(claim_lease(account), account.mxid, fetch_sync(account, since=since[account.pk]))
        for account in ours
    ]
    inside, release = threading.Event(), threading.Event()
    real_apply = ingest_group.services.sync_apply

    def slow_apply(*, account_id, **kwargs):
        result = real_apply(account_id=account_id, **kwargs)
        if account_id == ours[-1].pk:  # every account's rows written, the transaction open
            inside.set()
            release.wait(60)
        return result

    monkeypatch.setattr(ingest_group.services, "sync_apply", slow_apply)
    outcomes, renewed = [], []

    def on_own_connection(work):
        def run():
            try:
                work()
            finally:
                connections.close_all()

        thread = threading.Thread(target=run)
        thread.start()
        return thread

    group = on_own_connection(lambda: outcomes.extend(sync_ingest_group(items)))
    try:
        assert inside.wait(60), "the group never got to its last account"
        tokens = {item.lease.account_id: item.lease.token for item in items}
        keeper = on_own_connection(
            lambda: renewed.append(leases_renew(owner="test-host", tokens=tokens, seconds=60))
        )
        keeper.join(timeout=10)
        assert not keeper.is_alive(), "the renewal waited for the ingest transaction"
        assert renewed == [set(tokens)]
    finally:
        release.set()
        group.join(timeout=60)
    assert [type(o) for o in outcomes] == [IngestResult] * 3
