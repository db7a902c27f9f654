"""Who opens a websocket: the session and the person behind its cookie, looked up on threads of
their own.

Channels' AuthMiddlewareStack loads the session and the user on asgiref's one thread-sensitive
thread, the thread every Django view of the process (daphne serves pages too) and every other
`sync_to_async` call waits for. A restart's reconnect storm of thousands of pages then queued
handshake after handshake behind page loads, and daphne refused those not accepted within its 5 s
(issue 9, bench/websockets.py). A handshake only reads the session and the user, so a few threads
of its own can serve them side by side.

The scope gets what Channels' stack gives the consumer: `cookies`, `session` (already loaded, so
reading it in the consumer's async code touches no database) and `user` (AnonymousUser when the
cookie is missing, expired, or its password hash no longer matches).
"""

from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

from asgiref.sync import sync_to_async
from channels.auth import CookieMiddleware
from django.conf import settings
from django.contrib import auth
from django.contrib.sessions.backends.base import SessionBase
from django.db import connection
from django.utils.module_loading import import_string

_THREADS = ThreadPoolExecutor(max_workers=4, thread_name_prefix="websocket-auth")


def _signed_in(session_key: str | None) -> tuple[SessionBase, object]:
    """The session (loaded) and its user, as Django's own request would see them."""
    try:
        session = import_string(settings.SESSION_ENGINE).SessionStore(session_key)
        # Reading it loads and caches it here (no key: an empty session, no query), and so does
        # get_user, which also checks the password hash the session was signed in with.
        user = auth.get_user(SimpleNamespace(session=session))
        return session, user
    finally:
        # As at the end of a request: back to the pool (PostgreSQL) or closed (SQLite, cheap to
        # open), so an idle thread holds no connection and a restarted database costs nothing.
        connection.close()


class LiveAuthMiddleware:
    """Puts `session` and `user` in a websocket's scope (after CookieMiddleware's `cookies`)."""

    def __init__(self, inner) -> None:
        self.inner = inner

    async def __call__(self, scope, receive, send):
        session_key = scope.get("cookies", {}).get(settings.SESSION_COOKIE_NAME)
        session, user = await sync_to_async(_signed_in, thread_sensitive=False, executor=_THREADS)(
            session_key
        )
        return await self.inner({**scope, "session": session, "user": user}, receive, send)


def live_auth_stack(inner):
    """Drop-in for Channels' AuthMiddlewareStack on the websocket route."""
    return CookieMiddleware(LiveAuthMiddleware(inner))
