"""The lease fence of one owned account: its crypto-store writes, and what no database transaction
covers, everything the device sends to the homeserver.

A host that was frozen (SIGSTOP, a paused VM, a long GC) past its lease must do no harm when it
wakes, even before its next heartbeat. Three checks, all refusing once the lease may be someone else's:

- `check()` costs nothing (no I/O): by this host's own clock the lease has not run out since it was
  last claimed or renewed (timed from before the request, so never later than the expiry the
  database holds). A host frozen past its lease fails it at once, whoever holds the lease now.
- `hold()` runs inside every crypto-store write's own transaction (rooms/sync/crypto_records.py):
  `check()`, then it locks the lease row, still ours, unexpired, as ingest does; so a stale
  owner's store write is refused and rolled back, however long it was frozen before it.
- `verify()` adds one indexed read: the lease row still names us, with our token, unexpired. It runs
  before every request the crypto device makes, before the device absorbs a sync or encrypts, and
  before every send.

Once one fails the fence stays shut and raises LeaseLost; the host stops the account.

Lease database work (`verify` and the heartbeat's) runs on a thread of its own, `lease_db`, so it
never queues behind other accounts' ingest on asgiref's shared thread (see STACK-NOTES "asgiref").
"""

import math
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import sync_to_async
from django.db import DatabaseError, connection

from rooms.services import LeaseHandle
from rooms.sync import leases
from rooms.sync.leases import LeaseLost

# One thread: lease work is a few indexed statements, and one connection serves them all.
_LEASE_THREAD = ThreadPoolExecutor(max_workers=1, thread_name_prefix="leases")


async def lease_db[T](function: Callable[..., T], /, **kwargs) -> T:
    """Run a lease function on the lease thread (keyword arguments only, like the functions)."""
    return await sync_to_async(
        run_on_own_connection, thread_sensitive=False, executor=_LEASE_THREAD
    )(function, **kwargs)


def run_on_own_connection[T](function: Callable[..., T], /, **kwargs) -> T:
    """Run database work on a dedicated thread's long-lived connection (the lease thread here,
    the crypto store's thread in crypto_records.py), dropping that connection on a database
    error."""
    try:
        return function(**kwargs)
    except DatabaseError:
        connection.close()  # the next call opens a fresh one (the database may have restarted)
        raise


class LeaseFence:
    """The fence of one lease; `seconds` None means no local clock (only the database decides)."""

    def __init__(
        self, lease: LeaseHandle, seconds: float | None = None, *, since: float | None = None
    ) -> None:
        self.lease = lease
        self.seconds = seconds
        start = time.monotonic() if since is None else since
        self.deadline = math.inf if seconds is None else start + seconds
        self.lost = ""

    def renewed(self, since: float) -> None:
        """The heartbeat renewed the lease with a request sent at monotonic time `since`."""
        if self.seconds is not None and not self.lost:  # renewals may finish out of order
            self.deadline = max(self.deadline, since + self.seconds)

    def check(self) -> None:
        """Raise LeaseLost when the lease was lost or has run out by our clock (no I/O)."""
        now = time.monotonic()
        if not self.lost and now >= self.deadline:
            late = now - self.deadline
            self.lost = (
                f"it ran out {late:.1f} s ago (lease {self.seconds} s) before this host renewed it"
            )
        if self.lost:
            raise LeaseLost(
                f"account {self.lease.account_id}: lease {self.lease.token} of "
                f"{self.lease.owner} is lost: {self.lost}"
            )

    def hold(self) -> None:
        """Inside a transaction: `check`, then lock our lease row or raise LeaseLost (the crypto
        store's writes, rooms/sync/crypto_records.py). A takeover waits for our commit."""
        self.check()
        try:
            leases.lease_check(
                account_id=self.lease.account_id, owner=self.lease.owner, token=self.lease.token
            )
        except LeaseLost:
            self.lost = self.lost or "another host took it, or it ran out"
            raise

    async def verify(self) -> None:
        """`check`, then ask the database whether the lease is still ours (one indexed read)."""
        self.check()
        held = await lease_db(
            leases.lease_held,
            account_id=self.lease.account_id,
            owner=self.lease.owner,
            token=self.lease.token,
        )
        if not held and not self.lost:
            self.lost = "another host took it, or it ran out"
        self.check()
