"""Reactions of the rooms app to changes in accounts (accounts never import rooms)."""

from django.db import transaction
from django.db.models.signals import post_save
from django.dispatch import receiver

from accounts.models import MatrixAccount
from rooms import notify


@receiver(post_save, sender=MatrixAccount, dispatch_uid="rooms.claim_new_accounts")
def claim_new_accounts(sender, instance: MatrixAccount, created: bool, **kwargs) -> None:
    """A new or re-linked account is synced right away instead of at the next heartbeat."""
    if instance.is_active and instance.access_token:
        transaction.on_commit(notify.hosts_claim_now)
