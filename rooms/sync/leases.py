"""Leases with fencing tokens: exactly one sync host uses an account's device at a time.

Claiming bumps the fencing token; every ingest checks (owner, token) inside its own transaction, so a
host that was paused past its lease and wakes up finds its writes refused instead of corrupting state.
A lease whose expiry has passed is nobody's, even before another host takes it: every check refuses
it. What the database transaction cannot cover (the crypto store, sends) is fenced in fence.py.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Case, F, Min, Q, QuerySet, Value, When
from django.utils import timezone

from accounts.models import MatrixAccount
from rooms.models import SyncHostRecord, SyncLease
from rooms.sync.balance import Peer


class LeaseLost(Exception):
    """This host no longer owns the account; it must stop touching it."""


def lease_claim(*, account_id: int, owner: str, seconds: float) -> int | None:
    """Take the account if its lease is free or expired; return the new fencing token or None."""
    now = timezone.now()
    with transaction.atomic():
        lease, _ = SyncLease.objects.select_for_update().get_or_create(account_id=account_id)
        held_by_other = lease.owner and lease.owner != owner
        if held_by_other and lease.expires_at and lease.expires_at > now:
            return None
        lease.owner = owner
        lease.fencing_token += 1
        lease.expires_at = now + timedelta(seconds=seconds)
        lease.last_error = ""
        lease.save()
        return lease.fencing_token


def leases_claim(*, owner: str, seconds: float, limit: int) -> dict[int, int]:
    """Take up to `limit` accounts without an owner in one transaction, each lease's fencing token
    bumped; return {account: token} of those taken. A host claiming at the same moment takes
    others or none: the update re-checks that each lease is still free as it writes it."""
    if limit <= 0:
        return {}
    now = timezone.now()
    expires_at = now + timedelta(seconds=seconds)
    with transaction.atomic():
        ids = accounts_without_owner(limit=limit)
        if not ids:
            return {}
        SyncLease.objects.bulk_create(
            [SyncLease(account_id=account_id) for account_id in ids], ignore_conflicts=True
        )
        free = Q(owner="") | Q(expires_at__isnull=True) | Q(expires_at__lte=now)
        SyncLease.objects.filter(free, account_id__in=ids).update(
            owner=owner, fencing_token=F("fencing_token") + 1, expires_at=expires_at
        )
        taken = SyncLease.objects.filter(account_id__in=ids, owner=owner, expires_at=expires_at)
        return dict(taken.values_list("account_id", "fencing_token"))


def leases_renew(
    *,
    owner: str,
    tokens: dict[int, int],
    seconds: float,
    synced: dict[int, datetime] | None = None,
    failed: dict[int, tuple[datetime, str]] | None = None,
) -> set[int]:
    """Extend every lease a host holds in one statement; return the accounts renewed. The rest
    (taken by another host, released, or run out) are lost: the host must stop them.

    The same statement records when each account last synced or failed since the last heartbeat
    (`synced`, `failed`), so showing it to an operator costs no write of its own."""
    if not tokens:
        return set()
    now = timezone.now()
    expires_at = now + timedelta(seconds=seconds)
    held = SyncLease.objects.filter(owner=owner, account_id__in=list(tokens))
    failed = failed or {}
    columns = {
        "last_synced_at": synced or {},
        "last_error_at": {a: at for a, (at, _) in failed.items()},
        "last_error": {a: error[:2000] for a, (_, error) in failed.items()},
    }
    stamps = {
        field: Case(
            *(When(account_id=a, then=Value(v)) for a, v in values.items()),
            default=F(field),
            output_field=SyncLease._meta.get_field(field),
        )
        for field, values in columns.items()
        if values
    }
    with transaction.atomic():
        held.filter(fencing_token__in=set(tokens.values()), expires_at__gt=now).update(
            expires_at=expires_at, **stamps
        )
        # Read back which were renewed: ours and stamped with this very expiry, token for token.
        renewed = held.filter(expires_at=expires_at).values_list("account_id", "fencing_token")
        return {account_id for account_id, token in renewed if tokens[account_id] == token}


def lease_release(*, account_id: int, owner: str, token: int, error: str = "") -> None:
    """Give the lease back; an error the account's loop ended with stays for the operator (until
    a later one replaces it), with its time."""
    errors = {"last_error": error[:2000], "last_error_at": timezone.now()} if error else {}
    SyncLease.objects.filter(account_id=account_id, owner=owner, fencing_token=token).update(
        owner="", expires_at=None, **errors
    )


def lease_check(*, account_id: int, owner: str, token: int) -> None:
    """Inside a transaction: lock our lease row or raise LeaseLost."""
    held = SyncLease.objects.select_for_update().filter(_held(account_id, owner, token)).exists()
    if not held:
        raise LeaseLost(f"account {account_id}: lease {token} no longer held by {owner}")


def lease_held(*, account_id: int, owner: str, token: int) -> bool:
    """Whether the lease is still ours: one indexed read, for what no transaction covers."""
    return SyncLease.objects.filter(_held(account_id, owner, token)).exists()


def _held(account_id: int, owner: str, token: int) -> Q:
    return Q(account_id=account_id, owner=owner, fencing_token=token, expires_at__gt=timezone.now())


def _syncable() -> QuerySet[MatrixAccount]:
    return MatrixAccount.objects.filter(is_active=True).exclude(access_token="")


def _without_owner(now: datetime) -> QuerySet[MatrixAccount]:
    return _syncable().filter(
        Q(sync_lease__isnull=True)
        | Q(sync_lease__owner="")
        | Q(sync_lease__expires_at__lte=now)
        | Q(sync_lease__expires_at__isnull=True)
    )


def accounts_without_owner(*, limit: int) -> list[int]:
    """Active accounts whose lease is missing, released or expired."""
    return list(_without_owner(timezone.now()).order_by("id").values_list("id", flat=True)[:limit])


def live_hosts(*, lease_seconds: float, now: datetime | None = None) -> QuerySet[SyncHostRecord]:
    """Hosts running now: not stopped, and heard from within one lease period. A host silent for
    longer has lost every lease it held (it renews them with the heartbeat), so whatever room its
    record shows is not real: it died, hangs, or never started."""
    return SyncHostRecord.objects.filter(
        stopped=False, heartbeat_at__gte=live_since(lease_seconds, now)
    )


def live_since(lease_seconds: float, now: datetime | None = None) -> datetime:
    """A host heard from at or after this time is live (see live_hosts)."""
    return (now or timezone.now()) - timedelta(seconds=lease_seconds)


@dataclass(frozen=True)
class BalanceView:
    """What a heartbeat needs to decide how many accounts to claim or give back."""

    active: int  # accounts that need an owner, held or not
    free: int  # of those, the ones nobody holds now
    peers: list[Peer]  # the other live hosts
    next_expiry: datetime | None  # the soonest another host's lease runs out, if any


def balance_view(*, host_id: str, lease_seconds: float) -> BalanceView:
    now = timezone.now()
    # Only hosts that beat themselves: reconcile's placeholder for a task still queued would
    # otherwise take a share that nobody syncs (and a busy host would give accounts to it).
    peers = live_hosts(lease_seconds=lease_seconds, now=now).filter(running=True)
    peers = peers.exclude(host_id=host_id)
    soonest = (
        SyncLease.objects.filter(account__in=_syncable(), expires_at__gt=now)
        .exclude(owner__in=["", host_id])
        .aggregate(soonest=Min("expires_at"))["soonest"]
    )
    return BalanceView(
        active=_syncable().count(),
        free=_without_owner(now).count(),
        peers=[
            Peer(capacity, count)
            for capacity, count in peers.values_list("capacity", "account_count")
        ],
        next_expiry=soonest,
    )


def host_heartbeat(*, host_id: str, capacity: int, account_count: int) -> None:
    """Record that a host is alive and how full it is (read by `sync reconcile`)."""
    SyncHostRecord.objects.update_or_create(
        host_id=host_id,
        defaults={
            "capacity": capacity,
            "account_count": account_count,
            "heartbeat_at": timezone.now(),
            "stopped": False,
            "running": True,
        },
    )


def host_stopped(*, host_id: str) -> None:
    SyncHostRecord.objects.filter(host_id=host_id).update(stopped=True, account_count=0)
