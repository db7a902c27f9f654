"""Colleagues' cross-signing identities, pinned per account on first sight (trust on first use).

A master key that later differs means the person reset their identity, or someone is posing as
them: the person is warned in the rooms they share and on the Security page until they
acknowledge the new identity, which pins it."""

from django.db import transaction
from django.utils import timezone

from accounts.models import MatrixAccount
from rooms.models import PinnedIdentity
from rooms.services import LeaseHandle, MessageRejected, check_user_id
from rooms.sync.leases import lease_check


def identities_pin(*, lease: LeaseHandle, master_keys: dict[str, str]) -> list[str]:
    """Record the master keys a /keys/query showed: pin the new, note the changed. Returns the
    users whose identity changed since pinned (and was not acknowledged yet)."""
    if not master_keys:
        return []
    with transaction.atomic():
        lease_check(account_id=lease.account_id, owner=lease.owner, token=lease.token)
        known = {
            row.user_id: row
            for row in PinnedIdentity.objects.filter(
                account_id=lease.account_id, user_id__in=list(master_keys)
            )
        }
        fresh = []
        for user_id, key in master_keys.items():
            row = known.get(user_id)
            if row is None:
                fresh.append(
                    PinnedIdentity(
                        account_id=lease.account_id,
                        user_id=user_id,
                        pinned_master_key=key,
                        seen_master_key=key,
                    )
                )
            elif row.seen_master_key != key:
                row.seen_master_key = key
                row.changed_at = timezone.now() if row.pinned_master_key != key else None
                row.save(update_fields=["seen_master_key", "changed_at"])
        PinnedIdentity.objects.bulk_create(fresh, ignore_conflicts=True)
    return sorted(
        user_id for user_id, row in known.items() if row.pinned_master_key != row.seen_master_key
    )


def identity_acknowledge(*, account: MatrixAccount, user_id: str) -> None:
    """The person saw that a colleague's identity changed: pin the new one, end the warning."""
    user_id = check_user_id(user_id)
    row = PinnedIdentity.objects.filter(account=account, user_id=user_id).first()
    if row is None or not row.changed:
        raise MessageRejected("There is no identity change to acknowledge for that person.")
    # Only the key the person was shown: a newer change keeps its own warning.
    PinnedIdentity.objects.filter(pk=row.pk, seen_master_key=row.seen_master_key).update(
        pinned_master_key=row.seen_master_key, changed_at=None
    )
