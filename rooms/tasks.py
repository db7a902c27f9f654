"""Thin Celery doors into the sync supervisor."""

import asyncio
import math
import threading
import uuid

from celery import shared_task
from celery.signals import worker_shutting_down
from django.conf import settings
from django.utils import timezone

from accounts import log_context
from rooms import metrics, previews, search_index
from rooms.models import SyncHostRecord
from rooms.sync.host import SyncHost
from rooms.sync.leases import accounts_without_owner, live_hosts

_shutting_down = threading.Event()


@worker_shutting_down.connect
def _stop_hosts(**_kwargs) -> None:
    """A warm shutdown waits for running tasks: tell every sync host in this worker to finish."""
    _shutting_down.set()


@shared_task(name="rooms.tasks.sync_host_run", acks_late=False, ignore_result=True)
def sync_host_run(host_id: str) -> None:
    """Run a sync host until the worker shuts down. Acknowledged on receipt (acks_late=False), so a
    broker redelivery never starts a second copy; the leases keep ownership exclusive anyway."""
    asyncio.run(_run_host(host_id))


async def _run_host(host_id: str) -> None:
    log_context.bind(host=host_id)  # the host's lines, and its accounts' tasks, name it
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def watch() -> None:
        _shutting_down.wait()
        loop.call_soon_threadsafe(stop.set)

    threading.Thread(target=watch, daemon=True).start()
    try:
        await SyncHost(host_id=host_id).run(stop)
    finally:
        metrics.host_stopped(host_id)


@shared_task(name="rooms.tasks.sync_reconcile", ignore_result=True)
def sync_reconcile() -> int:
    """Start enough sync hosts for every active account without a live owner; returns hosts started.

    Only the room of hosts running now counts (heard from within a lease period, not stopped): a
    host that died or never started stops counting as soon as its leases could have run out."""
    now = timezone.now()
    live = live_hosts(lease_seconds=settings.SYNC_LEASE_SECONDS, now=now)
    spare = sum(max(0, h.capacity - h.account_count) for h in live)
    orphans = len(accounts_without_owner(limit=10_000))
    needed = math.ceil(max(0, orphans - spare) / settings.SYNC_HOST_CAPACITY)
    for _ in range(needed):
        host_id = f"host-{uuid.uuid4().hex[:12]}"
        SyncHostRecord.objects.create(
            host_id=host_id, capacity=settings.SYNC_HOST_CAPACITY, heartbeat_at=now
        )
        sync_host_run.delay(host_id)
    return needed


@shared_task(name="rooms.tasks.link_previews_fetch", ignore_result=True)
def link_previews_fetch(account_id: int, event_ids: list[str]) -> int:
    """Previews of links in new messages, from the homeserver's preview API."""
    return previews.fetch(account_id=account_id, event_ids=event_ids)


@shared_task(name="rooms.tasks.search_index_run", ignore_result=True)
def search_index_run() -> int:
    """Index messages stored since the last run (beat, and a nudge after each sync that stored
    new events); returns how many events were read."""
    return search_index.search_index_run()
