"""Django's database sessions, without writing the same session twice in one request.

Signing in wrote the session row twice (Django's `cycle_key` inserts an empty row, the session
middleware then updates it with the sign-in's data) and took the database's write lock for each
of half a dozen small transactions. The sign-in view now writes everything in one transaction,
the session included (accounts/views.py); the middleware's save after it would write the very same
data again, and is skipped. Any other change to the session is saved as before.
"""

from django.contrib.sessions.backends.db import SessionStore as DatabaseSessionStore


class SessionStore(DatabaseSessionStore):
    def save(self, must_create: bool = False) -> None:
        if not must_create and self._written == (self.session_key, self._get_session()):
            return  # the row already holds exactly this
        super().save(must_create=must_create)
        if self.session_key is not None:
            self._written = (self.session_key, dict(self._get_session(no_load=True)))

    _written: tuple[str | None, dict] | None = None
