"""Renews a sync host's leases from a thread of its own, so they never lapse because the host's
event loop or its shared threads are busy.

Before, renewals ran in the host's asyncio heartbeat and on the thread every lease check shares:
under load (a first sync of many accounts, a CPU-starved machine) they waited behind other work
until leases ran out on a healthy host, and the other hosts took its accounts (issue 9). The keeper
renews every `seconds / 3` on its own thread and connection, whatever the loop is doing, as long as
the loop shows life: a loop that has not ticked for half a lease is wedged, and its host must lose
its accounts as a frozen one does. A process that is frozen (SIGSTOP, a paused VM) renews nothing,
since its threads stop too. What was lost is handed to the loop to stop the accounts.
"""

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime

from django.db import connections

from rooms.sync import leases
from rooms.sync.fence import LeaseFence, run_on_own_connection

log = logging.getLogger(__name__)


@dataclass
class _Held:
    token: int
    fence: LeaseFence
    news: Callable[[], tuple[datetime | None, tuple[datetime, str] | None]] | None


class LeaseKeeper:
    """The leases of one host: `track` on claim, `forget` on drop, `renew` from anywhere."""

    def __init__(
        self,
        *,
        host_id: str,
        seconds: float,
        on_lost: Callable[[set[int]], None],
    ) -> None:
        self.host_id = host_id
        self.seconds = seconds
        self.on_lost = on_lost  # called on the keeper's thread: hand over to the loop
        self._held: dict[int, _Held] = {}
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lease-keeper")
        self._stopped = threading.Event()
        self._timer: threading.Thread | None = None
        self.loop_seen = time.monotonic()

    def track(self, account_id: int, token: int, fence: LeaseFence, news=None) -> None:
        with self._lock:
            self._held[account_id] = _Held(token, fence, news)

    def forget(self, account_id: int) -> None:
        with self._lock:
            self._held.pop(account_id, None)

    def loop_alive(self) -> None:
        """The host's loop ran just now (its ticker calls this)."""
        self.loop_seen = time.monotonic()

    def start(self) -> None:
        self._timer = threading.Thread(target=self._run, name="lease-timer", daemon=True)
        self._timer.start()

    def stop(self) -> None:
        self._stopped.set()
        if self._timer is not None:
            self._timer.join(timeout=self.seconds)
        self._executor.submit(connections.close_all).result(timeout=10)  # the keeper thread's
        self._executor.shutdown(wait=False)

    def renew_soon(self) -> Future:
        """Renew now on the keeper's thread; the future gives the accounts whose lease is lost."""
        return self._executor.submit(run_on_own_connection, self._renew)

    def _run(self) -> None:
        while not self._stopped.wait(self.seconds / 3):
            if time.monotonic() - self.loop_seen > self.seconds / 2:
                log.warning("%s: event loop unresponsive, leases not renewed", self.host_id)
                continue
            try:
                lost = self.renew_soon().result()
            except Exception:  # the database is away: the fences run out by their own clock
                log.warning("%s: lease renewal failed", self.host_id, exc_info=True)
                continue
            if lost:
                self.on_lost(lost)

    def _renew(self) -> set[int]:
        """One statement for every lease held; returns the accounts whose lease is lost."""
        with self._lock:
            held = dict(self._held)
        if not held:
            return set()
        synced: dict[int, datetime] = {}
        failed: dict[int, tuple[datetime, str]] = {}
        for account_id, lease in held.items():
            if lease.news is None:
                continue
            synced_at, failure = lease.news()
            if synced_at is not None:
                synced[account_id] = synced_at
            if failure is not None:
                failed[account_id] = failure
        asked_at = time.monotonic()
        renewed = leases.leases_renew(
            owner=self.host_id,
            tokens={account_id: lease.token for account_id, lease in held.items()},
            seconds=self.seconds,
            synced=synced,
            failed=failed,
        )
        for account_id in renewed:
            held[account_id].fence.renewed(asked_at)
        with self._lock:  # dropped meanwhile: not lost, just gone
            return {a for a in held if a not in renewed and a in self._held}
