"""Fills an account's timeline gaps in the background, beside its /sync loop and never inside it.

Woken when a sync records a gap (and once when an owner takes the account over, for gaps an earlier
owner left), it reads each gap back page by page until it is complete. A homeserver that fails or
is slow only delays the gap: the filler backs off and retries, the gap record stays, and the live
sync goes on meanwhile.
"""

import asyncio
import logging
from collections.abc import Callable

import aiohttp
from asgiref.sync import sync_to_async
from django.conf import settings

from accounts import log_context
from accounts.matrix import sync_api
from accounts.matrix.errors import MatrixError, RateLimited
from rooms import gaps, selectors, services
from rooms.services import LeaseHandle
from rooms.sync.account_crypto import AccountCrypto
from rooms.sync.decryption import decrypt_history
from rooms.sync.leases import LeaseLost

log = logging.getLogger(__name__)


class GapFiller:
    def __init__(
        self,
        lease: LeaseHandle,
        http: aiohttp.ClientSession,
        crypto: AccountCrypto,
        backoff: Callable[..., float],
    ) -> None:
        self.lease = lease
        self.http = http
        self.crypto = crypto
        self.backoff = backoff  # the host's policy: capped, jittered, retry_after_ms wins
        self.wake = asyncio.Event()

    async def run(self) -> None:
        """Until cancelled (the account's loop ends) or the lease is lost."""
        attempt = 0
        while True:
            await self.wake.wait()
            self.wake.clear()
            try:
                await self.fill_all()
                attempt = 0
            except LeaseLost:
                return  # a new owner fills what is left
            except Exception as error:  # unreachable, rate-limited, refused, a database hiccup
                retry_after = error.retry_after_ms if isinstance(error, RateLimited) else 0
                delay = self.backoff(attempt, retry_after_ms=retry_after)
                log.warning(
                    "gap fill %s: %r; the gap is kept, retrying in %.1fs",
                    self.lease.account_id,
                    error,
                    delay,
                )
                attempt += 1
                await asyncio.sleep(delay)
                self.wake.set()

    async def fill_all(self) -> None:
        """Every gap the account has, each to its end."""
        account_id = self.lease.account_id
        while pending := await sync_to_async(gaps.gaps_pending)(account_id=account_id):
            for gap in pending:
                await self.fill(gap)

    async def fill(self, gap: gaps.PendingGap) -> None:
        log_context.bind(room=gap.room_id)  # the filler's lines name the room it works on
        device = await sync_to_async(selectors.account_device)(account_id=self.lease.account_id)
        token = gap.token
        while True:
            try:
                raw = await sync_api.messages_raw(
                    self.http,
                    homeserver_url=device.homeserver_url,
                    access_token=device.access_token,
                    room_id=gap.room_id,
                    from_token=token,
                    limit=settings.GAP_FILL_PAGE,
                )
            except MatrixError as error:
                await sync_to_async(gaps.gap_failed)(
                    account_id=self.lease.account_id, gap_id=gap.gap_id, error=error.message
                )
                raise
            events, end = services.history_chunk(raw)
            origins: dict = {}
            envelopes = await decrypt_history(self.crypto.device, gap.room_id, events, origins)
            _, finished = await sync_to_async(services.history_ingest)(
                account_id=self.lease.account_id,
                room_id=gap.room_id,
                chunk=events,
                lease=self.lease,
                gap_id=gap.gap_id,
                next_token=end,
                envelopes=envelopes,
                origins=origins,
                announce=True,
            )
            if finished:
                return
            token = end
