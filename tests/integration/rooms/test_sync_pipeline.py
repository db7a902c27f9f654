"""The sync loop is pipelined (the next /sync long-polls while a batch is ingested), yet batches are
ingested one by one in the order they were fetched, each from exactly the since-token stored before
it: none is skipped, none reordered, and a batch whose ingest fails transiently is retried."""

import asyncio
import threading
import time

import pytest
from asgiref.sync import sync_to_async
from django.db import OperationalError, connections

from accounts.matrix import sync_api
from accounts.models import MatrixAccount
from rooms import services
from rooms.models import SyncState, TimelineEntry
from rooms.sync.host import SyncHost
from tests.integration.rooms.helpers import join, signed_in_account

pytestmark = pytest.mark.django_db(transaction=True)

MESSAGES = [f"pipelined {n}" for n in range(8)]
FAILING = MESSAGES[3]  # the first ingest of the batch holding it fails


async def wait_for(condition, timeout: float = 45.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await sync_to_async(condition)():
            return True
        await asyncio.sleep(0.1)
    return False


async def test_batches_are_ingested_in_fetch_order_and_a_failed_one_is_retried(
    client, monkeypatch, matrix_user_factory, nio_peer_factory
):
    me = matrix_user_factory()
    account = await sync_to_async(signed_in_account)(client, me)
    peer = await nio_peer_factory()
    created = await peer.room_create(name="Pipeline", invite=[me.user_id])
    await sync_to_async(join)(account, created.room_id)

    fetched_with: dict[str, str] = {}  # a batch's next_batch -> the since it was fetched with
    polled_during_ingest: list[str] = []  # /sync requests started while a batch was ingested
    ingesting = threading.Event()
    real_sync_raw = sync_api.sync_raw

    long_poll_started: list[float] = []  # while a /sync is in flight: when it started

    async def sync_raw(*args, since: str, **kwargs):
        if ingesting.is_set():
            polled_during_ingest.append(since)
        long_poll_started[:] = [time.monotonic()]
        try:
            raw = await real_sync_raw(*args, since=since, **kwargs)
        finally:
            long_poll_started.clear()
        fetched_with[raw["next_batch"]] = since or ""
        return raw

    committed: list[tuple[str, str]] = []  # (since stored before, batch's next_batch) per commit
    failed: list[str] = []
    real_ingest = services.sync_ingest

    def ingest(**kwargs):
        batch = kwargs["batch"]
        bodies = {e["content"].get("body") for j in batch.joined for e in j.timeline}
        stored = services.sync_state_next_batch(account_id=account.pk)
        ingesting.set()
        try:
            time.sleep(0.3)  # a slow ingest (rendering, a busy database): the next poll goes on
            if FAILING in bodies and not failed:
                failed.append(batch.next_batch)
                raise OperationalError("database is locked")
            result = real_ingest(**kwargs)
        finally:
            ingesting.clear()
        committed.append((stored, batch.next_batch))
        return result

    monkeypatch.setattr(sync_api, "sync_raw", sync_raw)
    monkeypatch.setattr(services, "sync_ingest", ingest)

    host = SyncHost(capacity=10, lease_seconds=6)
    stop = asyncio.Event()
    running = asyncio.create_task(host.run(stop))
    try:
        assert await wait_for(lambda: SyncState.objects.filter(account=account).exists())
        # A new account is set up (key backup) after its first sync, and the syncs that brings
        # (its own device list, key counts) are stored: the steady state is an idle long-poll.
        assert await wait_for(
            lambda: (
                MatrixAccount.objects.filter(pk=account.pk).exclude(key_backup_version="").exists()
            )
        )

        def idle() -> bool:
            started = next(iter(long_poll_started), None)
            return started is not None and time.monotonic() - started > 1.0

        assert await wait_for(idle)
        for body in MESSAGES:
            await peer.room_send(
                created.room_id, "m.room.message", {"msgtype": "m.text", "body": body}
            )
            await asyncio.sleep(0.15)

        def last_stored() -> bool:  # (a skipped batch would leave the others missing)
            return TimelineEntry.objects.filter(
                account=account, event__raw__content__body=MESSAGES[-1]
            ).exists()

        assert await wait_for(last_stored)
    finally:
        stop.set()
        await running
        await sync_to_async(connections.close_all)()

    assert failed, "no ingest of the chosen batch failed: the test did not exercise a retry"
    assert failed[0] in [next_batch for _, next_batch in committed]  # retried, then stored
    # Each committed batch was fetched with exactly the since stored before it: a skipped batch
    # would leave the next one fetched from a token never stored; a reordered one likewise.
    for stored, next_batch in committed:
        assert fetched_with[next_batch] == stored, (stored, next_batch, committed)
    bodies = await sync_to_async(list)(
        TimelineEntry.objects.filter(account=account, event__raw__content__body__in=MESSAGES)
        .order_by("id")
        .values_list("event__raw__content__body", flat=True)
    )
    assert bodies == MESSAGES
    assert polled_during_ingest, "the next /sync waited for ingest: nothing was pipelined"
