"""A new person (from the admin console, a CSV import or a first sign-in) gets their joins."""

import logging

from django.db import transaction
from django.db.models.signals import post_save
from django.dispatch import receiver

from accounts.models import MatrixAccount
from console import joiners

log = logging.getLogger(__name__)


@receiver(post_save, sender=MatrixAccount, dispatch_uid="console.queue_joins")
def queue_joins(sender, instance: MatrixAccount, created: bool, **kwargs) -> None:
    if not created or not instance.is_active:
        return
    if joiners.joins_queue(account=instance):
        transaction.on_commit(_run_soon)


def _run_soon() -> None:
    """A hint: beat runs the joins anyway, so a broker that is away only delays them."""
    from console.tasks import joins_run

    try:
        joins_run.delay()
    except Exception:
        log.warning("could not queue the joins job; beat will run it", exc_info=True)
