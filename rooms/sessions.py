"""When the homeserver ends an account's session (its access token revoked: signed out elsewhere,
password reset by an admin), the account stops once and its person is told to sign in again.

Without this, the host would drop the account, `sync reconcile` would claim it again and the new
loop would fail the same way, forever. Clearing the token takes the account out of reconcile's
reach until a sign-in stores a new one, which resumes it (same device, same keys)."""

from django.db import transaction

from accounts.services import account_session_end
from rooms import notify
from rooms.models import OutboxMessage

SESSION_ENDED = "Your session on the homeserver ended; sign in again."


def session_ended(*, account_id: int, rejected_token: str) -> bool:
    """True when the account must stop: the homeserver refused the token we still hold (or the
    session had already ended). False when a sign-in has stored a new token meanwhile."""
    with transaction.atomic():
        stop, cleared = account_session_end(account_id=account_id, rejected_token=rejected_token)
        if cleared:
            # What is still queued waits for the sign-in, and says so.
            waiting = OutboxMessage.objects.filter(
                account_id=account_id, status=OutboxMessage.PENDING
            )
            txn_ids = list(waiting.values_list("txn_id", flat=True))
            waiting.update(error=SESSION_ENDED)
            transaction.on_commit(lambda: _announce(account_id, txn_ids))
    return stop


def _announce(account_id: int, txn_ids: list[str]) -> None:
    notify.session_ended(account_id=account_id)
    for txn_id in txn_ids:
        notify.outbox_status(account_id=account_id, txn_id=txn_id)
