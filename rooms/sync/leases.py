"""Leases with fencing tokens: exactly one sync host uses an account's device at a time.

Claiming bumps the fencing token; every ingest checks (owner, token) inside its own transaction, so a
host that was paused past its lease and wakes up finds its writes refused instead of corrupting state.
A lease whose expiry has passed is nobody's, even before another host takes it: every check refuses
it. What the database transaction cannot cover (the crypto store, sends) is fenced in fence.py.
"""

from datetime import timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import MatrixAccount
from rooms.models import SyncHostRecord, SyncLease


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


def leases_renew(*, owner: str, tokens: dict[int, int], seconds: float) -> set[int]:
    """Extend every lease a host holds in one statement; return the accounts renewed. The rest
    (taken by another host, released, or run out) are lost: the host must stop them."""
    if not tokens:
        return set()
    now = timezone.now()
    expires_at = now + timedelta(seconds=seconds)
    held = SyncLease.objects.filter(owner=owner, account_id__in=list(tokens))
    with transaction.atomic():
        held.filter(fencing_token__in=set(tokens.values()), expires_at__gt=now).update(
            expires_at=expires_at
        )
        # Read back which were renewed: ours and stamped with this very expiry, token for token.
        renewed = held.filter(expires_at=expires_at).values_list("account_id", "fencing_token")
        return {account_id for account_id, token in renewed if tokens[account_id] == token}


def lease_release(*, account_id: int, owner: str, token: int, error: str = "") -> None:
    SyncLease.objects.filter(account_id=account_id, owner=owner, fencing_token=token).update(
        owner="", expires_at=None, last_error=error[:2000]
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


def accounts_without_owner(*, limit: int) -> list[int]:
    """Active accounts whose lease is missing, released or expired."""
    now = timezone.now()
    return list(
        MatrixAccount.objects.filter(is_active=True)
        .exclude(access_token="")
        .filter(
            Q(sync_lease__isnull=True)
            | Q(sync_lease__owner="")
            | Q(sync_lease__expires_at__lt=now)
            | Q(sync_lease__expires_at__isnull=True)
        )
        .order_by("id")
        .values_list("id", flat=True)[:limit]
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
        },
    )


def host_stopped(*, host_id: str) -> None:
    SyncHostRecord.objects.filter(host_id=host_id).update(stopped=True, account_count=0)
