"""What a signed-in session holds for the pages, written only when it changes.

Page loads used to save the session every time (the account id was set on every shell page), a
database write per page. Now the session is written when the account id changes, and once a day to
keep sign-in expiry sliding as it was: a session still ends SESSION_COOKIE_AGE after the person
last used it (to within a day), never in the middle of a working week. The account's "last seen"
(shown to admins) is stamped at most every few minutes per process, in the account's row."""

import time

from django.core.cache import cache
from django.http import HttpRequest
from django.utils import timezone

from accounts.models import MatrixAccount

ACCOUNT_KEY = "matrix_account_id"  # read by the websocket consumer
SEEN_KEY = "seen_at"
REFRESH_SECONDS = 24 * 3600
# "Last seen" for the admin console: one UPDATE per account at most this often per process (the
# cache remembers the last one), never a session write.
LAST_SEEN_EVERY_SECONDS = 300


def _now() -> int:
    return int(time.time())


def session_keep(request: HttpRequest, *, account_id: int) -> None:
    """Record the account the pages belong to; extend the session at most once a day."""
    session = request.session
    if session.get(ACCOUNT_KEY) != account_id:
        session[ACCOUNT_KEY] = account_id
    now = _now()
    seen = session.get(SEEN_KEY)
    if not isinstance(seen, int) or now - seen >= REFRESH_SECONDS:
        session[SEEN_KEY] = now  # saving the session moves its expiry on
    seen_mark(account_id)


def seen_mark(account_id: int) -> None:
    """Stamp the account's last_seen_at unless this process did so in the last few minutes."""
    if cache.add(f"accounts.seen.{account_id}", 1, LAST_SEEN_EVERY_SECONDS):
        MatrixAccount.objects.filter(pk=account_id).update(last_seen_at=timezone.now())
