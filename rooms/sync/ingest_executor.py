"""The sync host's ingest threads: every account's /sync responses are stored here, in groups.

Before, ingest ran on asgiref's one `sync_to_async` thread, which every other piece of database
work of the process shares (crypto bookkeeping, gap filling, a web request's in a web process):
at 200 accounts in one room each message queued ~1.4 s of work there, and everything else of the
host waited behind it (issue 9; STACK-NOTES "asgiref"). Now ingest has threads of its own, each
with its own database connection:

- one thread on SQLite (a single writer anyway), SYNC_INGEST_THREADS (default 2) on PostgreSQL,
  where a thread mostly waits for the server's round trips;
- a thread takes every response queued when it becomes free (at most SYNC_INGEST_GROUP, one per
  account) and stores them in one transaction (rooms/ingest_group.py): the busier the host, the
  bigger the groups and the cheaper each account's share. An idle host stores a response as soon
  as it arrives, alone; nothing waits for a group to fill.

An account's responses still go in one at a time and in order (its loop awaits each), so a crash
resumes from the last one stored, as before.
"""

import asyncio
import contextlib
import logging
import threading
from collections import deque
from dataclasses import dataclass

from django.conf import settings
from django.db import DatabaseError, connection, connections

from rooms.ingest_group import IngestItem, Outcome, sync_ingest_group
from rooms.services import IngestResult

log = logging.getLogger(__name__)

# A group stops growing at this many events (state and timeline) in its syncs: one transaction
# stays short, so the lease keeper and the outbox never wait long for the database (SQLite has
# one writer; PostgreSQL holds the group's lease rows locked until it commits). An account's
# first sync, which may carry whole rooms, counts as full and is stored alone.
GROUP_EVENTS = 1000

# A thread idle this long gives its connection back (to PostgreSQL's pool, or closes SQLite's).
IDLE_CLOSE_SECONDS = 5.0


@dataclass
class _Waiting:
    item: IngestItem
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop


def default_threads() -> int:
    if connection.vendor == "sqlite":
        return 1
    return max(1, settings.SYNC_INGEST_THREADS)


class IngestExecutor:
    """Queue of responses to store, and the threads that store them in groups."""

    def __init__(self, threads: int | None = None, max_group: int | None = None) -> None:
        self.threads = threads
        self.max_group = max_group or settings.SYNC_INGEST_GROUP
        self._queue: deque[_Waiting] = deque()
        self._ready = threading.Condition()
        self._workers: list[threading.Thread] = []
        self._release_asked = 0  # release_connections() calls, and the threads that obeyed
        self._released: dict[str, int] = {}
        self.groups_stored = 0  # for tests and benches: how many groups, how many syncs in them
        self.syncs_stored = 0

    async def ingest(self, item: IngestItem) -> IngestResult:
        """Store one account's response (with its next_batch); raises what its ingest raised."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        with self._ready:
            self._start_workers()
            self._queue.append(_Waiting(item, future, loop))
            self._ready.notify()
        return await future

    def _start_workers(self) -> None:
        if self._workers:
            return
        for n in range(self.threads or default_threads()):
            worker = threading.Thread(target=self._work, name=f"ingest-{n}", daemon=True)
            worker.start()
            self._workers.append(worker)

    def release_connections(self, timeout: float = 10.0) -> None:
        """Have every idle ingest thread give its database connection back now, and wait until
        they did (a sync host stopping: nothing of its work should keep the database open)."""
        with self._ready:
            self._release_asked += 1
            asked = self._release_asked
            self._ready.notify_all()
            self._ready.wait_for(
                lambda: all(self._released.get(w.name) == asked for w in self._workers),
                timeout=timeout,
            )

    def _take(self) -> list[_Waiting]:
        """Wait for work; take what is queued, oldest first, one response per account."""
        name = threading.current_thread().name
        with self._ready:
            while not self._queue:
                if self._released.get(name, 0) != self._release_asked:
                    _give_back_connection()
                    self._released[name] = self._release_asked
                    self._ready.notify_all()
                if not self._ready.wait(timeout=IDLE_CLOSE_SECONDS):
                    _give_back_connection()
            taken: list[_Waiting] = []
            accounts: set[int] = set()
            kept: deque[_Waiting] = deque()
            events = 0
            while self._queue and len(taken) < self.max_group:
                waiting = self._queue.popleft()
                if waiting.future.cancelled():
                    continue  # the account was stopped while it waited: store nothing for it
                size = _size(waiting.item)
                if waiting.item.lease.account_id in accounts or (
                    taken and events + size > GROUP_EVENTS
                ):
                    kept.append(waiting)
                    continue
                accounts.add(waiting.item.lease.account_id)
                taken.append(waiting)
                events += size
            self._queue.extendleft(reversed(kept))
            return taken

    def _work(self) -> None:
        while True:
            taken = self._take()
            if not taken:
                continue
            try:
                outcomes = sync_ingest_group([waiting.item for waiting in taken])
            except Exception as error:  # a bug in the group code: each account's loop decides
                log.exception("ingest group failed")
                outcomes = [error] * len(taken)
            self.groups_stored += 1
            self.syncs_stored += len(taken)
            if any(isinstance(outcome, DatabaseError) for outcome in outcomes):
                with contextlib.suppress(DatabaseError):  # the database may have restarted
                    connection.close_if_unusable_or_obsolete()
            for waiting, outcome in zip(taken, outcomes, strict=True):
                with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
                    waiting.loop.call_soon_threadsafe(_resolve, waiting.future, outcome)


def _size(item: IngestItem) -> int:
    if item.initial:
        return GROUP_EVENTS
    batch = item.batch
    rooms = (*batch.joined, *batch.left)
    return sum(len(r.timeline) + len(r.state) for r in rooms) + len(batch.invited)


def _resolve(future: asyncio.Future, outcome: Outcome) -> None:
    if future.done():  # cancelled: the account stopped meanwhile
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)


def _give_back_connection() -> None:
    if connection.connection is not None:
        with contextlib.suppress(DatabaseError):
            connections.close_all()


# One per process, like asgiref's thread it replaces for ingest: every host of the process (tests
# run several) shares its threads and groups.
EXECUTOR = IngestExecutor()
