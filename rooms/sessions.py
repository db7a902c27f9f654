"""When the homeserver ends an account's session (its access token revoked: signed out elsewhere,
password reset by an admin), the account stops once and its person is told to sign in again.

Without this, the host would drop the account, `sync reconcile` would claim it again and the new
loop would fail the same way, forever. Clearing the token takes the account out of reconcile's
reach until a sign-in stores a new one, which resumes it (same device, same keys)."""

from django.db import transaction

from accounts.services import account_session_end
from rooms import notify

SESSION_ENDED = "Your session on the homeserver ended; sign in again."


def session_ended(*, account_id: int, rejected_token: str) -> bool:
    """True when the account must stop: the homeserver refused the token we still hold (or the
    session had already ended). False when a sign-in has stored a new token meanwhile."""
    with transaction.atomic():
        stop, cleared = account_session_end(account_id=account_id, rejected_token=rejected_token)
        if cleared:
            transaction.on_commit(lambda: notify.session_ended(account_id=account_id))
    return stop
