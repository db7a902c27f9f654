"""Reactions of the rooms app to changes in accounts (accounts never import rooms)."""

from django.db import transaction
from django.db.models.signals import post_save
from django.dispatch import receiver
from django.utils import timezone

from accounts.models import MatrixAccount
from rooms import notify
from rooms.models import SyncLease


@receiver(post_save, sender=MatrixAccount, dispatch_uid="rooms.claim_new_accounts")
def claim_new_accounts(sender, instance: MatrixAccount, created: bool, **kwargs) -> None:
    """A new or re-linked account is synced right away instead of at the next heartbeat. One a
    host owns already (a returning sign-in: its host picks the new token up by itself) needs no
    nudge, which would cost the sign-in a Redis round trip and every host a claim."""
    if not (instance.is_active and instance.access_token):
        return
    if (
        not created
        and SyncLease.objects.filter(account_id=instance.pk, expires_at__gt=timezone.now())
        .exclude(owner="")
        .exists()
    ):
        return
    transaction.on_commit(notify.hosts_claim_now)
