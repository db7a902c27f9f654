"""Group commit: the /sync responses of several accounts of one sync host stored in one transaction.

At 200 accounts in one room every message arrives 200 times, once in each account's /sync, and
each of those was its own transaction: a lease check, the event looked up, the membership read,
the timeline row, the since-token, a commit (issue 9: ~1.4 s of database work per message). Here
the responses that wait for the ingest thread together are stored together:

- one query finds the leases that are still ours (owner, token, unexpired): an account whose
  lease is not gets LeaseLost and writes nothing, the others go on;
- each account's rows are written as before (`services.sync_apply`), its own timeline rows only
  (the isolation rule), helped by what the accounts before it in the group already looked up
  (rooms/ingest_memo.py);
- one statement stores every since-token;
- one query locks the leases again, last, as `sync_ingest` does: a takeover waits for our commit,
  and the lease keeper's renewal never queues behind a whole group (if a lease was lost while
  the group ran, the group is rolled back and stored account by account, which refuses it);
- one commit, after which each account's pushes run as before (their open-page checks asked in
  one Redis round trip).

If anything but a lost lease fails inside the group, the group is rolled back and each account is
stored alone (`services.sync_ingest`), so one account's trouble stays that account's error.
"""

import logging
import time
from dataclasses import dataclass

from django.db import connection, transaction
from django.utils import timezone

from rooms import ingest_memo, open_pages, services
from rooms.metrics import INGEST_FAILURES, INGEST_SECONDS, ingest_succeeded
from rooms.models import SyncLease, SyncState
from rooms.services import IngestResult, LeaseHandle
from rooms.sync.batch import SyncBatch
from rooms.sync.leases import LeaseLost

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IngestItem:
    """One account's /sync response, waiting to be stored."""

    lease: LeaseHandle
    own_user_id: str
    batch: SyncBatch
    initial: bool = False


type Outcome = IngestResult | Exception


def sync_ingest_group(items: list[IngestItem]) -> list[Outcome]:
    """Store each item's batch with its next_batch, in one transaction where possible; returns,
    item for item, its IngestResult or the exception it failed with (LeaseLost for a stale
    owner's). At most one item per account (an account's batches are stored in order, one at a
    time)."""
    if len(items) == 1:
        return [_alone(items[0])]
    if len({item.lease.account_id for item in items}) != len(items):
        raise ValueError("A group holds at most one sync per account.")
    started = time.monotonic()
    try:
        outcomes = _together(items)
    except Exception:
        log.warning("group ingest of %d accounts failed: storing each alone", len(items))
        log.debug("group ingest failure", exc_info=True)
        return [_alone(item) for item in items]
    per_item = (time.monotonic() - started) / len(items)
    for item, outcome in zip(items, outcomes, strict=True):
        if isinstance(outcome, IngestResult):
            INGEST_SECONDS.observe(per_item)
            ingest_succeeded(item.lease, item.batch)
        else:
            INGEST_FAILURES.inc()
    return outcomes


def _alone(item: IngestItem) -> Outcome:
    try:
        return services.sync_ingest(
            lease=item.lease, own_user_id=item.own_user_id, batch=item.batch, initial=item.initial
        )
    except Exception as error:  # handed to the account's own loop, which decides
        return error


def _together(items: list[IngestItem]) -> list[Outcome]:
    outcomes: list[Outcome] = []
    with ingest_memo.group() as memo, transaction.atomic():
        held = leases_held(items, lock=False)
        joined = [
            room for item in items if item.lease.account_id in held for room in item.batch.joined
        ]
        memo.prefetch_memberships(held, {room.room_id for room in joined})
        memo.prefetch_entries(
            held,
            {
                event["event_id"]
                for item in items
                if item.lease.account_id in held
                for room in (*item.batch.joined, *item.batch.left)
                for event in room.timeline
            },
        )
        # The pushes run after commit (on_commit, in the order registered): first learn, in one
        # round trip, which of these accounts have a page open.
        transaction.on_commit(lambda: memo.open_pages.update(open_pages.which_open(sorted(held))))
        next_batches: dict[int, str] = {}
        for item in items:
            account_id = item.lease.account_id
            if account_id not in held:
                outcomes.append(
                    LeaseLost(
                        f"account {account_id}: lease {item.lease.token} no longer held by "
                        f"{item.lease.owner}"
                    )
                )
                continue
            outcomes.append(
                services.sync_apply(
                    account_id=account_id,
                    own_user_id=item.own_user_id,
                    batch=item.batch,
                    initial=item.initial,
                )
            )
            next_batches[account_id] = item.batch.next_batch
        memo.flush_saves()
        next_batches_save(next_batches)
        if leases_held([i for i in items if i.lease.account_id in held], lock=True) != held:
            raise LeaseLost("a lease was lost while its group was stored")
    return outcomes


def leases_held(items: list[IngestItem], *, lock: bool) -> set[int]:
    """The accounts of the items whose lease is still ours (owner and token, unexpired), in one
    query; `lock`: and lock those lease rows until the caller's transaction ends, as lease_check
    does for one."""
    expected = {item.lease.account_id: (item.lease.owner, item.lease.token) for item in items}
    leases = SyncLease.objects.select_for_update() if lock else SyncLease.objects
    rows = leases.filter(
        account_id__in=list(expected),
        owner__in={owner for owner, _ in expected.values()},
        expires_at__gt=timezone.now(),
    ).values_list("account_id", "owner", "fencing_token")
    return {account_id for account_id, *held in rows if tuple(held) == expected[account_id]}


def next_batches_save(next_batches: dict[int, str]) -> None:
    """Every account's since-token in one UPDATE; the rows an account's first sync needs are
    created one by one, as sync_ingest does."""
    if not next_batches:
        return
    # Plain SQL: Django's Case() of a few dozen When()s costs more to build than the statement.
    table = connection.ops.quote_name(SyncState._meta.db_table)
    whens = " ".join(["WHEN %s THEN %s"] * len(next_batches))
    marks = ", ".join(["%s"] * len(next_batches))
    params = [value for pair in next_batches.items() for value in pair]
    with connection.cursor() as cursor:
        now = connection.ops.adapt_datetimefield_value(timezone.now())
        cursor.execute(  # only placeholders and the quoted table name are formatted in
            f"UPDATE {table} SET next_batch = CASE account_id {whens} END, "  # noqa: S608
            f"updated_at = %s WHERE account_id IN ({marks})",
            [*params, now, *next_batches],
        )
        if cursor.rowcount == len(next_batches):
            return
    rows = SyncState.objects.filter(account_id__in=list(next_batches))
    existing = set(rows.values_list("account_id", flat=True))
    for account_id in next_batches.keys() - existing:
        SyncState.objects.create(account_id=account_id, next_batch=next_batches[account_id])
