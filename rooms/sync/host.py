"""A sync host: one asyncio loop holding the sync loops of many accounts (the pantalaimon pattern).

The host claims accounts whose lease is free, keeps their leases alive by heartbeat, and drops an
account the moment its lease is lost or the account is deactivated. Each account loop long-polls /sync
and hands the raw response to the ingest service, which commits it under the lease's fencing token.
The crypto store and the sends are fenced too (fence.py): the first check that finds the lease lost
ends the account's loop, and the host stops the account at once.
"""

import asyncio
import contextlib
import itertools
import logging
import random
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial

import aiohttp
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError, connection, connections
from django.utils import timezone

from accounts import log_context
from accounts.matrix import sync_api
from accounts.matrix.crypto import to_device_events
from accounts.matrix.errors import (
    HomeserverUnreachable,
    MatrixError,
    RateLimited,
    TokenInvalid,
    is_transient,
)
from rooms import notify, outbox, reminders, scheduled, selectors, services, sessions
from rooms.services import LeaseHandle
from rooms.sessions import SESSION_ENDED
from rooms.sync import balance, leases
from rooms.sync.account_crypto import AccountCrypto
from rooms.sync.batch import MalformedSync, SyncBatch, batch_from_sync_json
from rooms.sync.decryption import retry_sealed
from rooms.sync.fence import LeaseFence, lease_db, run_on_own_connection
from rooms.sync.first_sync import first_sync_parts
from rooms.sync.gap_filler import GapFiller
from rooms.sync.lease_keeper import LeaseKeeper
from rooms.sync.leases import LeaseLost
from rooms.sync.startup import FirstRound, StartupGate, unbounded

log = logging.getLogger(__name__)

BACKOFF_START = 1.0
BACKOFF_CAP = 60.0


def backoff_delay(attempt: int, *, retry_after_ms: int = 0) -> float:
    """Capped exponential backoff with full jitter; the homeserver's retry_after_ms wins if longer."""
    ceiling = min(BACKOFF_CAP, BACKOFF_START * (2 ** min(attempt, 10)))
    return max(random.uniform(ceiling / 2, ceiling), retry_after_ms / 1000)


# Milliseconds taken off each sync loop's long-poll timeout: consecutive loops of one process
# differ, and processes start at random places.
_TIMEOUT_SHAVES = itertools.count(random.randrange(1000))


@dataclass
class _Fetched:
    """One /sync response on its way from the long-poll to ingest."""

    raw: dict
    batch: SyncBatch
    since: str  # the token it was fetched with ("" for an account's first sync)
    absorbed: asyncio.Event = field(default_factory=asyncio.Event)  # the crypto device has it


@dataclass
class _Owned:
    lease: LeaseHandle
    task: asyncio.Task
    outbox: "OutboxSender"
    outbox_task: asyncio.Task
    crypto: "AccountCrypto"
    sync: "AccountSync | None" = None


class AccountSync:
    """The /sync loop of one account, alive while its lease is held."""

    def __init__(
        self,
        lease: LeaseHandle,
        http: aiohttp.ClientSession,
        crypto: AccountCrypto | None = None,
        startup: StartupGate | None = None,
    ) -> None:
        self.lease = lease
        self.http = http
        self.crypto = crypto or AccountCrypto(LeaseFence(lease))
        self.startup = startup or unbounded()  # the host's: a few first rounds at a time
        self._first_round: FirstRound | None = None  # held until the first sync is stored
        self._started = time.monotonic()  # for the start-up log line: how long each part took
        self._slot_at = 0.0
        self._set_up_later: selectors.Device | None = None  # a new account's deferred setup
        self._setting_up: asyncio.Task | None = None  # that setup, once its first sync is in
        self._turn = asyncio.Lock()  # held while a batch is processed: the setup goes between
        self.gaps = GapFiller(lease, http, self.crypto, backoff_delay)
        # Since the heartbeat last wrote them: when a sync was last stored, when one last failed.
        self.synced_at: datetime | None = None
        self.failure: tuple[datetime, str] | None = None
        # Synapse answers an identical /sync request (same since, filter and timeout) from a cache
        # for minutes: a long-poll left in flight by a previous owner (which always has one, the
        # loop being pipelined) would hand this loop that owner's early answer and stale one-time
        # key counts. A timeout of our own makes our requests ours.
        base = settings.SYNC_TIMEOUT_MS
        self.timeout_ms = base - next(_TIMEOUT_SHAVES) % max(1, base // 20)

    def news(self) -> tuple[datetime | None, tuple[datetime, str] | None]:
        """What happened since the last heartbeat asked, for the heartbeat's renewal to record."""
        news = self.synced_at, self.failure
        self.synced_at = self.failure = None
        return news

    async def run(self) -> None:
        """The sync loop, with the account's gap filler beside it (a task of its own, so a slow
        or failing /messages never holds up the live sync); both end together."""
        log_context.bind(account=self.lease.account_id)  # this task's lines, nio's included
        filler = asyncio.create_task(self.gaps.run(), name=f"gaps-{self.lease.account_id}")
        try:
            await self._sync()
        finally:
            filler.cancel()
            if self._setting_up is not None:
                self._setting_up.cancel()
            await asyncio.gather(filler, *filter(None, [self._setting_up]), return_exceptions=True)

    async def _sync(self) -> None:
        """Long-poll /sync and ingest each batch, pipelined: the next long-poll starts as soon as a
        batch's next_batch is known and the batch is handed over, while the batch is absorbed,
        ingested, rendered and pushed and the housekeeping after it runs (_process). Batches are
        still ingested one by one in the order they came, each committed with its own next_batch
        under the lease, so a crash resumes from the last batch that was stored; a batch whose
        ingest fails transiently is retried, never skipped (see docs/decisions.md)."""
        self._first_round = slot = await self.startup.first_round()
        self._slot_at = time.monotonic()
        try:
            device = await sync_to_async(selectors.account_device)(account_id=self.lease.account_id)
            since = await sync_to_async(services.sync_state_next_batch)(
                account_id=self.lease.account_id
            )
            if not self.crypto.ready.is_set():
                # A new account syncs first and is set up after (startup.py): its keys are
                # published by open(), which is what peers need to encrypt to it.
                await self.crypto.open(device, self.lease, self.http, setup=bool(since))
                self._set_up_later = None if since else device
            if since:
                slot.release()  # its first /sync is a long-poll: not worth a slot
            ahead: asyncio.Queue[_Fetched] = asyncio.Queue(maxsize=self.FETCH_AHEAD)
            fetcher = asyncio.create_task(
                self._fetch(device, since, ahead), name=f"fetch-{self.lease.account_id}"
            )
            try:
                await self._process(device.user_id, ahead, fetcher)
            finally:
                fetcher.cancel()
                await asyncio.gather(fetcher, return_exceptions=True)
        finally:
            slot.release()

    # Batches fetched but not yet taken up by _process: with one more long-poll in flight, at
    # most this many plus two batches of an account are in memory.
    FETCH_AHEAD = 1

    async def _fetch(
        self, device: selectors.Device, since: str, ahead: "asyncio.Queue[_Fetched]"
    ) -> None:
        """Long-poll /sync and queue each batch in order. Returns when the homeserver ended the
        session; raises LeaseLost when the fence shuts."""
        attempt = 0
        while True:
            self.crypto.fence.check()  # a host woken past its lease does not even sync
            try:
                raw = await sync_api.sync_raw(
                    self.http,
                    homeserver_url=device.homeserver_url,
                    access_token=device.access_token,
                    since=since,
                    timeout_ms=self.timeout_ms,
                )
                fetched = _Fetched(raw, batch_from_sync_json(raw), since)
            except TokenInvalid:
                # A new sign-in replaced the device's token: pick up the stored one. Else the
                # homeserver ended the session: stop once and tell the person (no restart loop).
                ended = await sync_to_async(sessions.session_ended)(
                    account_id=self.lease.account_id, rejected_token=device.access_token
                )
                if ended:
                    return
                device = await sync_to_async(selectors.account_device)(
                    account_id=self.lease.account_id
                )
                if self.crypto.device is not None:
                    self.crypto.device.use_access_token(device.access_token)
                continue
            except (HomeserverUnreachable, RateLimited, MalformedSync, MatrixError) as error:
                retry_after = error.retry_after_ms if isinstance(error, RateLimited) else 0
                delay = backoff_delay(attempt, retry_after_ms=retry_after)
                log.warning("sync %s: %s; retrying in %.1fs", device.user_id, error, delay)
                self.failure = (timezone.now(), f"{type(error).__name__}: {error}")
                attempt += 1
                await asyncio.sleep(delay)
                continue
            attempt = 0
            await ahead.put(fetched)
            since = fetched.batch.next_batch
            if to_device_events(raw):
                # The homeserver deletes to-device messages (room keys among them) once a sync
                # names a later since: hold the next long-poll until the crypto store has them.
                await fetched.absorbed.wait()

    async def _process(
        self, own_user_id: str, ahead: "asyncio.Queue[_Fetched]", fetcher: asyncio.Task
    ) -> None:
        """Absorb, ingest and follow up each fetched batch, in order; returns when the fetcher
        stopped and every batch it queued is stored."""
        asked_at = time.monotonic()  # when missing keys were last asked for again
        first_round = True  # gaps left by an earlier owner are filled from the first sync on
        deferred = False  # a new account's setup (and first retry of sealed events) runs aside
        while (fetched := await self._next_fetched(ahead, fetcher)) is not None:
            await self._turn.acquire()  # released below; an error ends the loop anyway
            keys_arrived = await self.crypto.absorb(fetched.raw, fetched.batch)
            fetched.absorbed.set()
            result = await self._ingest_parts(own_user_id, fetched)
            self.synced_at = timezone.now()  # for the operator, written by the lease renewal
            if first_round:
                deferred = self._after_first_sync()
            if result.gaps or first_round:
                self.gaps.wake.set()
            if keys_arrived or (first_round and not deferred):
                await self.crypto.retry_sealed(None if first_round else keys_arrived)
            if time.monotonic() - asked_at > settings.KEY_REQUEST_RETRY_SECONDS:
                await self.crypto.retry_sealed(None, ask_again=True)
                asked_at = time.monotonic()
            await self.crypto.export_devices(fetched.raw, force=first_round)
            first_round = False
            self._turn.release()

    @staticmethod
    async def _next_fetched(
        ahead: "asyncio.Queue[_Fetched]", fetcher: asyncio.Task
    ) -> "_Fetched | None":
        """The next batch in order; None once the fetcher returned with nothing left queued (an
        error that stopped it is raised here)."""
        if not ahead.empty():
            return ahead.get_nowait()
        getter = asyncio.ensure_future(ahead.get())
        try:
            await asyncio.wait({getter, fetcher}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not getter.done():
                getter.cancel()
        if getter.done() and not getter.cancelled():
            return getter.result()
        fetcher.result()  # raises what stopped it
        return None

    async def _ingest_parts(self, own_user_id: str, fetched: "_Fetched") -> services.IngestResult:
        """Store a batch; an account's first sync in parts, each committed and pushed on its own
        so the room list fills in as it is stored (first_sync.py)."""
        if fetched.since:
            return await self._ingest(own_user_id, fetched.batch, initial=False)
        total = services.IngestResult(new_events=0, rooms_changed=0, gaps=0)
        for part in first_sync_parts(fetched.batch):
            result = await self._ingest(own_user_id, part, initial=True)
            total = services.IngestResult(
                new_events=total.new_events + result.new_events,
                rooms_changed=total.rooms_changed + result.rooms_changed,
                gaps=total.gaps + result.gaps,
            )
        return total

    def _after_first_sync(self) -> bool:
        """The first sync is stored: give the first-round slot to the next account. A new account
        is set up (cross-signing, key backup, then events left sealed retried) by a task of its
        own once no other first round is waiting, between two batches: its syncs go on being
        stored meanwhile. Returns whether that setup is on its way."""
        if self._first_round is not None:
            self._first_round.release()
        stored = time.monotonic()
        device, self._set_up_later = self._set_up_later, None
        if device is None:
            log.info(
                "account %s: first sync stored %.1f s after its claim (%.1f s waiting for a slot)",
                self.lease.account_id,
                stored - self._started,
                self._slot_at - self._started,
            )
            return False
        self._setting_up = asyncio.create_task(
            self._set_up(device, stored), name=f"setup-{self.lease.account_id}"
        )
        return True

    async def _set_up(self, device: selectors.Device, stored: float) -> None:
        async with self.startup.setup():
            set_up_at = time.monotonic()
            async with self._turn:
                await self.crypto.set_up(device)
                await self.crypto.retry_sealed(None)  # the backup may hold what we lack
        log.info(
            "account %s: first sync stored %.1f s after its claim (%.1f s waiting for a slot); "
            "set up %.1f s later (%.1f s of it waiting)",
            self.lease.account_id,
            stored - self._started,
            self._slot_at - self._started,
            time.monotonic() - stored,
            set_up_at - stored,
        )

    async def _ingest(
        self, own_user_id: str, batch: SyncBatch, *, initial: bool
    ) -> services.IngestResult:
        """Store one batch with its next_batch under the lease. A transient database error (the
        database restarting, a lock held too long) is retried with backoff on the same batch: the
        batches after it wait, none is skipped. A lost lease, or any other error (a bug), ends the
        loop as before; the next owner starts again from the last stored batch."""
        attempt = 0
        while True:
            try:
                return await sync_to_async(services.sync_ingest)(
                    lease=self.lease,
                    own_user_id=own_user_id,
                    batch=batch,
                    initial=initial,
                )
            except (OperationalError, InterfaceError) as error:
                delay = min(backoff_delay(attempt), self.INGEST_RETRY_CAP)
                log.warning(
                    "ingest for account %s failed: %s; retrying in %.1fs",
                    self.lease.account_id,
                    error,
                    delay,
                )
                attempt += 1
                await sync_to_async(_drop_broken_connection)()
                await asyncio.sleep(delay)
                self.crypto.fence.check()

    INGEST_RETRY_CAP = 5.0


def _drop_broken_connection() -> None:
    """After a database error: close this thread's connection if it is broken (the database
    restarted), so the next attempt opens a fresh one. Where the connection is shared with other
    threads (the tests' in-memory SQLite) closing is refused, and it is kept."""
    with contextlib.suppress(DatabaseError):
        connection.close_if_unusable_or_obsolete()


class EncryptionPending(Exception):
    """The room is encrypted and this account cannot encrypt yet; the send waits and retries."""


class SessionEnded(Exception):
    """The homeserver no longer accepts the account's token: the account stops until sign-in."""


# The send path's database work (reading the queue, recording each outcome) runs on a thread of its
# own: on asgiref's shared thread, an Enter would wait behind every account's ingest and rendering
# in this process (STACK-NOTES, "asgiref"). One thread: these are a few indexed statements.
_SEND_THREAD = ThreadPoolExecutor(max_workers=1, thread_name_prefix="outbox")


async def send_db[T](function: Callable[..., T], /, **kwargs) -> T:
    """Run send-path database work on the outbox thread (keyword arguments only)."""
    return await sync_to_async(
        run_on_own_connection, thread_sensitive=False, executor=_SEND_THREAD
    )(function, **kwargs)


class OutboxSender:
    """Sends the account's queued messages, each under its own transaction id, retrying safely.
    In encrypted rooms everything but redactions is encrypted first (redactions cannot be)."""

    IDLE_SECONDS = 15.0

    def __init__(
        self,
        lease: LeaseHandle,
        http: aiohttp.ClientSession,
        crypto: AccountCrypto | None = None,
    ) -> None:
        self.lease = lease
        self.http = http
        self.wake = asyncio.Event()
        self.crypto = crypto
        self.fence = crypto.fence if crypto is not None and crypto.fence else LeaseFence(lease)
        self.send_due = self.verify_due = self.sealed_due = False
        self.device: selectors.Device | None = None  # the account's token and homeserver
        self._side_requests: set[asyncio.Task] = set()  # typing notices on their way

    def nudged(self, kind: str = "") -> None:
        """A nudge arrived: note what it asks for and wake the loop. A send nudge (and one of an
        unknown kind) sends; verification and sealed-history work run only on their own nudges."""
        if kind == notify.NUDGE_VERIFICATION:
            self.verify_due = True
        elif kind == notify.NUDGE_HISTORY_SEALED:
            self.sealed_due = True
        else:
            self.send_due = True
        self.wake.set()

    async def run(self) -> None:
        log_context.bind(account=self.lease.account_id)
        try:
            await self._run()
        finally:
            for task in self._side_requests:
                task.cancel()
            with contextlib.suppress(Exception):  # its next use opens a fresh one
                await send_db(connection.close)

    async def _run(self) -> None:
        attempt = 0
        # The first round sends what waited for an owner and carries out answers given meanwhile.
        self.send_due, self.verify_due = True, True
        loop = asyncio.get_running_loop()
        due_at = loop.time()
        while True:
            if self.send_due:
                self.send_due = False
                try:
                    delay = await self.send_pending(attempt)
                except SessionEnded:
                    return  # the host drops the account; signing in again brings it back
                attempt = attempt + 1 if delay else 0
                due_at = loop.time() + (delay or self.IDLE_SECONDS)
                # "Send later": wake when the next scheduled message falls due, not after it.
                # Reminders are due on the same clock, and delivered under the same lease.
                await send_db(reminders.reminders_deliver_due, lease=self.lease)
                for next_due in (
                    scheduled.seconds_until_next_due,
                    reminders.seconds_until_next_reminder,
                ):
                    wait = await send_db(next_due, account_id=self.lease.account_id)
                    if wait is not None:
                        due_at = min(due_at, loop.time() + wait + 0.05)
            if self.verify_due:
                self.verify_due = False
                if self.crypto is not None and self.crypto.verifications is not None:
                    await self.crypto.verifications.perform()
            if self.sealed_due:
                self.sealed_due = False
                if self.crypto is not None and self.crypto.device is not None:
                    # History a page fetched arrives sealed and nudges us: read what we can.
                    await retry_sealed(self.lease, self.crypto.device, limit=100)
            try:
                await asyncio.wait_for(self.wake.wait(), timeout=max(0.0, due_at - loop.time()))
            except TimeoutError:
                # A retry is due, or the idle poll: send, and look at verifications as before.
                self.send_due = self.verify_due = True
            self.wake.clear()

    async def send_pending(self, attempt: int) -> float:
        """Send what is queued; return how long to back off (0 when nothing is left to retry).

        Each room's messages go in order: a transient failure holds back the rest of its room (and,
        when the homeserver cannot be reached at all, the rest of the round), never other rooms'
        messages; a refusal fails that message alone and the next one goes."""
        account_id = self.lease.account_id
        device = self.device
        if device is None:  # read once; again only after the homeserver refused its token
            device = self.device = await send_db(selectors.account_device, account_id=account_id)
        pending = await send_db(selectors.outbox_pending, account_id=account_id)
        held_rooms: set[str] = set()
        delay = 0.0
        for send in pending:
            if send.room_id in held_rooms:
                continue
            try:
                await self._send_one(send, device)
            except EncryptionPending as error:
                await self._record(send.txn_id, error=str(error))
            except TokenInvalid as error:
                await self._token_refused(device, send.txn_id, error)
            except MatrixError as error:
                if not is_transient(error):
                    await self._record(send.txn_id, error=error.message, permanent=True)
                    continue
                reached = not isinstance(error, HomeserverUnreachable) or error.reached
                await self._record(
                    send.txn_id,
                    error=self.WAITING,
                    maybe_delivered=reached and not isinstance(error, RateLimited),
                )
                log.warning("send %s in %s waits: %s", send.txn_id, send.room_id, error)
                retry_after = error.retry_after_ms if isinstance(error, RateLimited) else 0
                delay = max(delay, self._retry_delay(attempt, retry_after))
                if not reached:
                    return delay  # nothing answers: the other rooms would fail the same way
            else:
                continue
            held_rooms.add(send.room_id)
            delay = max(delay, self._retry_delay(attempt, 0))
        return delay

    WAITING = "Waiting for the homeserver: it will be sent when the server answers again."
    RETRY_CAP = 15.0  # a server back from an outage gets our queue within seconds

    def _retry_delay(self, attempt: int, retry_after_ms: int) -> float:
        return max(min(backoff_delay(attempt), self.RETRY_CAP), retry_after_ms / 1000)

    # The homeserver's transaction-id dedupe is trusted this long after a message was queued
    # (Synapse keeps it 30 minutes in memory); later, even a host that died mid-send and so left
    # no record of its attempt could post twice, so the echo is looked for first.
    TRUST_DEDUPE_MS = 10 * 60 * 1000

    async def _send_one(self, send: selectors.PendingSend, device: selectors.Device) -> None:
        """PUT one message, unless an earlier attempt already posted it; record the outcome."""
        queued_long_ago = time.time() * 1000 - send.queued_at_ms > self.TRUST_DEDUPE_MS
        if send.maybe_delivered or queued_long_ago:
            # The homeserver forgets transaction ids after a while: a late retry would post twice.
            echo = await send_db(
                outbox.outbox_echo_stored,
                room_id=send.room_id,
                sender=device.user_id,
                txn_id=send.txn_id,
            ) or await sync_api.find_own_event(
                self.http,
                homeserver_url=device.homeserver_url,
                access_token=device.access_token,
                room_id=send.room_id,
                user_id=device.user_id,
                txn_id=send.txn_id,
                not_before_ms=send.queued_at_ms - 60_000,  # the homeserver's clock may differ
            )
            if echo:
                await self._record(send.txn_id, event_id=echo)
                return
        event_type, content = await self._wire_form(send, device)
        await self.fence.verify()  # a host that lost the lease sends nothing
        event_id = await sync_api.send_event(
            self.http,
            homeserver_url=device.homeserver_url,
            access_token=device.access_token,
            room_id=send.room_id,
            event_type=event_type,
            txn_id=send.txn_id,
            content=content,
        )
        await self._record(send.txn_id, event_id=event_id)
        if send.event_type == "m.room.message" and "m.new_content" not in send.content:
            # In the background: the next queued message's PUT does not wait for it.
            task = asyncio.create_task(self._stop_typing(send.room_id, device))
            self._side_requests.add(task)
            task.add_done_callback(self._side_requests.discard)

    async def _stop_typing(self, room_id: str, device: selectors.Device) -> None:
        """The message the person was typing went: their typing notice ends now, not at its
        timeout (as other clients do)."""
        try:
            await sync_api.set_typing(
                self.http,
                homeserver_url=device.homeserver_url,
                access_token=device.access_token,
                room_id=room_id,
                user_id=device.user_id,
                typing=False,
            )
        except MatrixError as error:  # the notice times out by itself
            log.info("typing notice in %s not cleared: %s", room_id, error)

    async def _token_refused(
        self, device: selectors.Device, txn_id: str, error: TokenInvalid
    ) -> None:
        """A new sign-in may have replaced the token since we read it: then simply try again
        (with the device read afresh). Otherwise the homeserver ended the session: stop the
        account once and tell the person."""
        self.device = None
        ended = await send_db(
            sessions.session_ended,
            account_id=self.lease.account_id,
            rejected_token=device.access_token,
        )
        if ended:
            await self._record(txn_id, error=SESSION_ENDED)
            raise SessionEnded from error

    async def _wire_form(
        self, send: selectors.PendingSend, account_device: selectors.Device
    ) -> tuple[str, dict]:
        """The event type and content to put on the wire: encrypted where the room is (as our
        database or the crypto store knows it: either is enough)."""
        device = self.crypto.device if self.crypto is not None else None
        encrypted = send.encrypted or (device is not None and device.knows_encrypted(send.room_id))
        settings = send.encryption_settings
        if not encrypted and not send.state_known:
            # Just joined: our store cannot tell yet that the room is plain, so ask. A refusal
            # (not a member) is left to the send itself, which reports it.
            try:
                settings = await sync_api.room_encryption(
                    self.http,
                    homeserver_url=account_device.homeserver_url,
                    access_token=account_device.access_token,
                    room_id=send.room_id,
                )
            except (HomeserverUnreachable, RateLimited):
                raise
            except MatrixError:
                settings = None
            encrypted = settings is not None
        if not encrypted or send.event_type == "m.room.redaction":
            return send.event_type, send.content
        if self.crypto is None:
            raise EncryptionPending("Encryption is not available for this account.")
        await self.crypto.ready.wait()
        if self.crypto.device is None:
            raise EncryptionPending(
                f"Encryption is not available for this account: {self.crypto.unavailable}"
            )
        return await self.crypto.device.encrypt(
            send.room_id, send.event_type, send.content, settings
        )

    async def _record(self, txn_id: str, **outcome) -> None:
        await send_db(outbox.outbox_record_attempt, lease=self.lease, txn_id=txn_id, **outcome)


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
        self.layer = get_channel_layer()
        self.channel: str | None = None
        self.receiver: asyncio.Task | None = None
        self.claim_now = asyncio.Event()
        # The soonest another host's lease runs out: we may take its account then.
        self.next_expiry: datetime | None = None
        # Renews our leases on a thread of its own, whatever the loop is busy with.
        self.keeper = LeaseKeeper(
            host_id=self.host_id, seconds=self.lease_seconds, on_lost=self._lost_elsewhere
        )
        self.loop: asyncio.AbstractEventLoop | None = None
        self._joining: set[asyncio.Task] = set()  # accounts' outbox groups being joined
        # Accounts claimed together start a few at a time, first syncs before deferred setup.
        self.startup = StartupGate(
            first_rounds=settings.SYNC_FIRST_ROUNDS, setups=settings.SYNC_SETUPS
        )

    async def run(self, stop: asyncio.Event) -> None:
        self.loop = asyncio.get_running_loop()
        ticker = asyncio.create_task(self._tick(), name="host-ticker")
        self.keeper.start()
        async with sync_api.new_http_session() as http:
            try:
                await self._ensure_channel()
                while not stop.is_set():
                    await self.heartbeat(http)
                    await self._rejoin_groups()
                    await self._sleep_until_due(stop)
            finally:
                await self.release_all()
                ticker.cancel()
                await asyncio.to_thread(self.keeper.stop)
                await self._nudge_hosts()  # the others take our accounts now, not at expiry
                if self.layer is not None and self.channel is not None:
                    with contextlib.suppress(Exception):  # else the group keeps a dead channel
                        await self.layer.group_discard(notify.HOSTS_GROUP, self.channel)
                if self.receiver is not None:
                    self.receiver.cancel()
                    await asyncio.gather(self.receiver, return_exceptions=True)
                await lease_db(leases.host_stopped, host_id=self.host_id)
                await lease_db(connections.close_all)  # the lease thread's, like asgiref's

    async def heartbeat(self, http: aiohttp.ClientSession) -> None:
        """Renew our leases, drop what we lost or what was deactivated, claim our share of what has
        no owner, give back what is above our share (balance.py). Its database work runs on the
        lease thread, never queued behind any account's ingest."""
        await self._reap_finished()
        await self._renew()
        view = await lease_db(
            leases.balance_view, host_id=self.host_id, lease_seconds=self.lease_seconds
        )
        wanted = balance.claim_limit(
            capacity=self.capacity,
            owned=len(self.owned),
            free=view.free,
            active=view.active,
            peers=view.peers,
        )
        for _round in range(3):  # hosts claiming at the same moment take some: look once more
            if wanted <= 0:
                break
            claimed_at = time.monotonic()
            # A batch at a time: a claimed lease is renewed only once its account is started,
            # and starting a thousand takes longer than a lease (startup.py).
            batch = min(wanted, self.startup.claim_batch)
            tokens = await lease_db(
                leases.leases_claim, owner=self.host_id, seconds=self.lease_seconds, limit=batch
            )
            for account_id, token in tokens.items():
                await self._start(http, account_id, token, claimed_at)
            wanted = 0 if not tokens else wanted - len(tokens)
            if wanted > 0 and len(tokens) == batch and _round == 2:
                self.claim_now.set()  # more to claim: the next heartbeat comes at once
        surplus = balance.release_count(owned=len(self.owned), active=view.active, peers=view.peers)
        for account_id in list(self.owned)[len(self.owned) - surplus :]:
            log.info("%s gives account %s to a host with room", self.host_id, account_id)
            await self._drop(account_id)
        if surplus:
            await self._nudge_hosts()
        self.next_expiry = view.next_expiry
        await lease_db(
            leases.host_heartbeat,
            host_id=self.host_id,
            capacity=self.capacity,
            account_count=len(self.owned),
        )

    async def _start(
        self, http: aiohttp.ClientSession, account_id: int, token: int, claimed_at: float
    ) -> None:
        """Start the sync and outbox loops of an account we just claimed."""
        lease = LeaseHandle(account_id=account_id, owner=self.host_id, token=token)
        crypto = AccountCrypto(LeaseFence(lease, self.lease_seconds, since=claimed_at))
        sync = AccountSync(lease, http, crypto, self.startup)
        task = asyncio.create_task(sync.run(), name=f"sync-{account_id}")
        sender = OutboxSender(lease, http, crypto)
        outbox_task = asyncio.create_task(sender.run(), name=f"outbox-{account_id}")
        self.owned[account_id] = _Owned(lease, task, sender, outbox_task, crypto, sync)
        self.keeper.track(account_id, token, crypto.fence, sync.news)
        for loop in (task, outbox_task):
            loop.add_done_callback(partial(self._loop_ended, account_id))
        # Joined aside: awaited here, each a Redis round trip, they held up the next claims.
        await self._ensure_channel()
        joining = asyncio.create_task(self._listen_for_nudges(account_id))
        self._joining.add(joining)
        joining.add_done_callback(self._joining.discard)
        log.info("%s claimed account %s (token %s)", self.host_id, account_id, token)

    async def _nudge_hosts(self) -> None:
        """Accounts just became free: the other hosts claim them now, not at their heartbeat."""
        if self.layer is None:
            return
        with contextlib.suppress(Exception):  # a hint: heartbeats and lease expiry still work
            await self.layer.group_send(
                notify.HOSTS_GROUP, {"type": "hosts.claim", "from": self.host_id}
            )

    async def _renew(self) -> None:
        """Renew every lease we hold (one statement, on the keeper's thread: the keeper also does
        it on its own schedule); stop the accounts whose lease is lost or that were deactivated
        before anything else is done for them."""
        if not self.owned:
            return
        active = set(await lease_db(selectors.active_account_ids, ids=list(self.owned)))
        lost = await asyncio.wrap_future(self.keeper.renew_soon())
        for account_id in list(self.owned):
            if account_id in lost and account_id in active:
                log.warning(
                    "%s lost the lease of account %s: stopping it", self.host_id, account_id
                )
            if account_id in lost or account_id not in active:
                await self._drop(account_id)

    async def _tick(self) -> None:
        """Tell the keeper the loop is alive: a loop stuck for half a lease stops the renewals."""
        while True:
            self.keeper.loop_alive()
            await asyncio.sleep(min(1.0, self.lease_seconds / 10))

    def _lost_elsewhere(self, lost: set[int]) -> None:
        """The keeper (on its thread) found leases lost: stop those accounts on the loop now."""
        if self.loop is not None:
            self.loop.call_soon_threadsafe(self._stop_lost, lost)

    def _stop_lost(self, lost: set[int]) -> None:
        for account_id in lost:
            owned = self.owned.get(account_id)
            if owned is None:
                continue
            log.warning("%s lost the lease of account %s: stopping it", self.host_id, account_id)
            owned.crypto.fence.lost = owned.crypto.fence.lost or "another host took it"
            owned.task.cancel()
            owned.outbox_task.cancel()
        self.claim_now.set()  # the heartbeat reaps them and frees their room

    def _loop_ended(self, account_id: int, loop: asyncio.Task) -> None:
        """When the fence stopped one of an account's loops, the other stops now (it would be
        refused anyway) and the heartbeat runs at once to drop the account and free its room.
        Other endings are reaped by the next heartbeat, as before."""
        owned = self.owned.get(account_id)
        if owned is None or loop not in (owned.task, owned.outbox_task) or loop.cancelled():
            return
        if not isinstance(loop.exception(), LeaseLost):
            return
        log.warning(
            "%s lost the lease of account %s: stopping it (%s)",
            self.host_id,
            account_id,
            loop.exception(),
            exc_info=loop.exception() if log.isEnabledFor(logging.DEBUG) else None,
        )
        owned.task.cancel()
        owned.outbox_task.cancel()
        self.claim_now.set()

    async def _sleep_until_due(self, stop: asyncio.Event) -> None:
        """Until the next heartbeat, or earlier when stopping, when accounts want a host, or when
        another host's lease runs out (it died: its accounts are taken over the moment they may)."""
        timeout = self.lease_seconds / 3
        if self.next_expiry is not None:
            until_expiry = (self.next_expiry - timezone.now()).total_seconds() + 0.05
            timeout = max(0.05, min(timeout, until_expiry))
        stopping = asyncio.create_task(stop.wait())
        claiming = asyncio.create_task(self.claim_now.wait())
        await asyncio.wait(
            {stopping, claiming},
            timeout=timeout,
            return_when=asyncio.FIRST_COMPLETED,
        )
        for task in (stopping, claiming):
            task.cancel()
        self.claim_now.clear()

    async def _ensure_channel(self) -> None:
        if self.layer is not None and self.channel is None:
            self.channel = await self.layer.new_channel()
            self.receiver = asyncio.create_task(self._receive_nudges(), name="host-nudges")

    async def _listen_for_nudges(self, account_id: int) -> None:
        """Join the account's outbox group so a send wakes its sender at once."""
        if self.layer is None:
            return
        await self._ensure_channel()
        try:
            await self.layer.group_add(notify.outbox_group(account_id), self.channel)
        except Exception:  # Redis away: the idle poll still sends; the heartbeat joins again
            log.warning("%s could not join account %s's group", self.host_id, account_id)

    GROUPS_AT_ONCE = 50  # below redis-py's pool of 100 connections

    async def _rejoin_groups(self) -> None:
        """channels_redis forgets group members after group_expiry, and all of them when Redis
        restarts: on every heartbeat, join the hosts group and each owned account's outbox group
        again, or sends wait for the idle poll and new accounts for the next heartbeat."""
        if self.layer is None or self.channel is None:
            return
        groups = [notify.HOSTS_GROUP, *(notify.outbox_group(a) for a in self.owned)]
        try:
            # A few dozen at a time: one after the other, a thousand accounts' groups took most
            # of a heartbeat under load, and claims waited behind them.
            for start in range(0, len(groups), self.GROUPS_AT_ONCE):
                chunk = groups[start : start + self.GROUPS_AT_ONCE]
                await asyncio.gather(*(self.layer.group_add(g, self.channel) for g in chunk))
        except Exception:  # Redis away: the idle poll still sends; try again next heartbeat
            log.warning("%s could not re-join its channel groups", self.host_id, exc_info=True)

    async def _receive_nudges(self) -> None:
        while True:
            try:
                message = await self.layer.receive(self.channel)
            except asyncio.CancelledError:
                raise
            except Exception:  # the periodic sweep still sends; keep listening
                log.warning("outbox nudge receive failed", exc_info=True)
                await asyncio.sleep(1)
                continue
            if message.get("type") == "hosts.claim":
                if message.get("from") != self.host_id:  # our own release is not for us
                    self.claim_now.set()
                continue
            owned = self.owned.get(message.get("account_id"))
            if owned is not None:
                owned.outbox.nudged(message.get("kind", ""))

    async def _reap_finished(self) -> None:
        for account_id, owned in list(self.owned.items()):
            finished = next((t for t in (owned.task, owned.outbox_task) if t.done()), None)
            if finished is None:
                continue
            lost = not finished.cancelled() and isinstance(finished.exception(), LeaseLost)
            error = "" if finished.cancelled() or lost else repr(finished.exception() or "")
            if error:
                log.error("loop for account %s ended: %s", account_id, error)
            await self._drop(account_id, error=error)

    async def _drop(self, account_id: int, *, error: str = "") -> None:
        """Stop the account's loops and give its lease back (a no-op if it is no longer ours)."""
        owned = self.owned.pop(account_id)
        self.keeper.forget(account_id)
        for task in (owned.task, owned.outbox_task):
            task.cancel()
        await asyncio.gather(owned.task, owned.outbox_task, return_exceptions=True)
        with contextlib.suppress(Exception):
            await owned.crypto.close()
        if self.layer is not None and self.channel is not None:
            with contextlib.suppress(Exception):
                await self.layer.group_discard(notify.outbox_group(account_id), self.channel)
        await lease_db(
            leases.lease_release,
            account_id=account_id,
            owner=self.host_id,
            token=owned.lease.token,
            error=error,
        )
        log.info("%s dropped account %s", self.host_id, account_id)

    async def release_all(self) -> None:
        for account_id in list(self.owned):
            await self._drop(account_id)
