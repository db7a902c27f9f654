"""How a sync host starts many accounts at once: a few at a time, first syncs before the rest.

A host that claims hundreds of accounts used to start them all together: every account opened its
crypto store, published its keys, made cross-signing keys and a key backup and ran its first
/sync on the same two threads, so they all finished late (the first after most of the wait). Here
an account's *first round* (its crypto device opened and, for a new account, its first sync stored)
takes one of a few slots, so the first accounts are synced within seconds and the rest follow in
order; the *setup* that can wait (cross-signing, key backup, devices exported for the indicators)
runs once no first round is waiting, or after `SETUP_PATIENCE` seconds whatever happens.
"""

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator


class FirstRound:
    """An account's place among the first rounds: held until released, once, or until the gate's
    `HOLD_LIMIT` ran out (an account whose first sync keeps failing must not keep others out)."""

    def __init__(self, gate: "StartupGate | None", hold_limit: float) -> None:
        self._gate = gate
        self._expiry = asyncio.get_running_loop().call_later(hold_limit, self.release)

    def release(self) -> None:
        self._expiry.cancel()
        gate, self._gate = self._gate, None
        if gate is not None:
            gate._first_round_done()


class StartupGate:
    """The host's slots for first rounds and for deferred setup (one gate per host)."""

    # A setup waits for first rounds at most this long, so a steady trickle of new accounts never
    # keeps an account's key backup and cross-signing away for good.
    SETUP_PATIENCE = 30.0
    # The longest one account keeps a first-round slot (a first sync failing again and again).
    HOLD_LIMIT = 60.0

    def __init__(self, *, first_rounds: int, setups: int) -> None:
        # How many accounts the host claims in one go: twice what starts at once, so the next
        # are ready when slots free up, and few enough to be started well within a lease.
        self.claim_batch = 2 * max(1, first_rounds)
        self._first_slots = asyncio.Semaphore(max(1, first_rounds))
        self._setup_slots = asyncio.Semaphore(max(1, setups))
        self._first_pending = 0  # first rounds waiting for a slot or running
        self._idle = asyncio.Event()
        self._idle.set()

    async def first_round(self) -> FirstRound:
        """Wait for a slot; the caller releases it once its first round is over (and in any case
        when its loop ends)."""
        self._first_pending += 1
        self._idle.clear()
        try:
            await self._first_slots.acquire()
        except BaseException:
            self._first_pending -= 1
            self._set_idle_if_done()
            raise
        return FirstRound(self, self.HOLD_LIMIT)

    def _first_round_done(self) -> None:
        self._first_slots.release()
        self._first_pending -= 1
        self._set_idle_if_done()

    def _set_idle_if_done(self) -> None:
        if self._first_pending == 0:
            self._idle.set()

    @contextlib.asynccontextmanager
    async def setup(self) -> AsyncIterator[None]:
        """A slot for work that may wait: after the first rounds in progress (or the patience)."""
        deadline = time.monotonic() + self.SETUP_PATIENCE
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), max(0.0, deadline - time.monotonic()))
        async with self._setup_slots:
            yield


def unbounded() -> StartupGate:
    """A gate that never makes anyone wait (an account loop run on its own, as in tests)."""
    return StartupGate(first_rounds=1_000_000, setups=1_000_000)
