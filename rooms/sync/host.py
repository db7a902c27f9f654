"""A sync host: one asyncio loop holding the sync loops of many accounts (the pantalaimon pattern).

The host claims accounts whose lease is free, keeps their leases alive by heartbeat, and drops an
account the moment its lease is lost or the account is deactivated. Each account loop long-polls /sync
and hands the raw response to the ingest service, which commits it under the lease's fencing token.
"""

import asyncio
import contextlib
import logging
import random
import uuid
from dataclasses import dataclass

import aiohttp
from asgiref.sync import sync_to_async
from django.conf import settings

from accounts.matrix import sync_api
from accounts.matrix.errors import HomeserverUnreachable, MatrixError, RateLimited, TokenInvalid
from rooms import selectors, services
from rooms.services import LeaseHandle
from rooms.sync import leases
from rooms.sync.batch import MalformedSync, batch_from_sync_json

log = logging.getLogger(__name__)

BACKOFF_START = 1.0
BACKOFF_CAP = 60.0


def backoff_delay(attempt: int, *, retry_after_ms: int = 0) -> float:
    """Capped exponential backoff with full jitter; the homeserver's retry_after_ms wins if longer."""
    ceiling = min(BACKOFF_CAP, BACKOFF_START * (2 ** min(attempt, 10)))
    return max(random.uniform(ceiling / 2, ceiling), retry_after_ms / 1000)


@dataclass
class _Owned:
    lease: LeaseHandle
    task: asyncio.Task


class AccountSync:
    """The /sync loop of one account, alive while its lease is held."""

    def __init__(self, lease: LeaseHandle, http: aiohttp.ClientSession) -> None:
        self.lease = lease
        self.http = http

    async def run(self) -> None:
        device = await sync_to_async(selectors.account_device)(account_id=self.lease.account_id)
        since = await sync_to_async(services.sync_state_next_batch)(
            account_id=self.lease.account_id
        )
        attempt = 0
        while True:
            try:
                raw = await sync_api.sync_raw(
                    self.http,
                    homeserver_url=device.homeserver_url,
                    access_token=device.access_token,
                    since=since,
                    timeout_ms=settings.SYNC_TIMEOUT_MS,
                )
                batch = batch_from_sync_json(raw)
                await sync_to_async(services.sync_ingest)(
                    lease=self.lease, own_user_id=device.user_id, batch=batch
                )
                since, attempt = batch.next_batch, 0
            except TokenInvalid:
                # A new sign-in replaced the device's token: pick up the stored one.
                fresh = await sync_to_async(selectors.account_device)(
                    account_id=self.lease.account_id
                )
                if fresh.access_token == device.access_token:
                    raise
                device = fresh
            except (HomeserverUnreachable, RateLimited, MalformedSync, MatrixError) as error:
                retry_after = error.retry_after_ms if isinstance(error, RateLimited) else 0
                delay = backoff_delay(attempt, retry_after_ms=retry_after)
                log.warning("sync %s: %s; retrying in %.1fs", device.user_id, error, delay)
                attempt += 1
                await asyncio.sleep(delay)


class SyncHost:
    """Owns up to `capacity` accounts; `run()` returns when `stop` is set, releasing every lease."""

    def __init__(
        self,
        *,
        host_id: str | None = None,
        capacity: int | None = None,
        lease_seconds: float | None = None,
    ) -> None:
        self.host_id = host_id or f"host-{uuid.uuid4().hex[:12]}"
        self.capacity = capacity or settings.SYNC_HOST_CAPACITY
        self.lease_seconds = lease_seconds or settings.SYNC_LEASE_SECONDS
        self.owned: dict[int, _Owned] = {}

    async def run(self, stop: asyncio.Event) -> None:
        async with sync_api.new_http_session() as http:
            try:
                while not stop.is_set():
                    await self.heartbeat(http)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), timeout=self.lease_seconds / 3)
            finally:
                await self.release_all()
                await sync_to_async(leases.host_stopped)(host_id=self.host_id)

    async def heartbeat(self, http: aiohttp.ClientSession) -> None:
        """Renew our leases, drop what we lost or what was deactivated, claim what has no owner."""
        await self._reap_finished()
        active = set(await sync_to_async(selectors.active_account_ids)(ids=list(self.owned)))
        for account_id, owned in list(self.owned.items()):
            renewed = account_id in active and await sync_to_async(leases.lease_renew)(
                account_id=account_id,
                owner=self.host_id,
                token=owned.lease.token,
                seconds=self.lease_seconds,
            )
            if not renewed:
                await self._drop(account_id)
        room = self.capacity - len(self.owned)
        candidates = (
            await sync_to_async(leases.accounts_without_owner)(limit=room) if room > 0 else []
        )
        for account_id in candidates:
            token = await sync_to_async(leases.lease_claim)(
                account_id=account_id, owner=self.host_id, seconds=self.lease_seconds
            )
            if token is None:
                continue
            lease = LeaseHandle(account_id=account_id, owner=self.host_id, token=token)
            task = asyncio.create_task(AccountSync(lease, http).run(), name=f"sync-{account_id}")
            self.owned[account_id] = _Owned(lease=lease, task=task)
            log.info("%s claimed account %s (token %s)", self.host_id, account_id, token)
        await sync_to_async(leases.host_heartbeat)(
            host_id=self.host_id, capacity=self.capacity, account_count=len(self.owned)
        )

    async def _reap_finished(self) -> None:
        for account_id, owned in list(self.owned.items()):
            if not owned.task.done():
                continue
            error = "" if owned.task.cancelled() else repr(owned.task.exception() or "")
            if error:
                log.error("sync loop for account %s ended: %s", account_id, error)
            del self.owned[account_id]
            await sync_to_async(leases.lease_release)(
                account_id=account_id, owner=self.host_id, token=owned.lease.token, error=error
            )

    async def _drop(self, account_id: int) -> None:
        owned = self.owned.pop(account_id)
        owned.task.cancel()
        await asyncio.gather(owned.task, return_exceptions=True)
        log.info("%s dropped account %s", self.host_id, account_id)

    async def release_all(self) -> None:
        for account_id in list(self.owned):
            owned = self.owned[account_id]
            await self._drop(account_id)
            await sync_to_async(leases.lease_release)(
                account_id=account_id, owner=self.host_id, token=owned.lease.token
            )
