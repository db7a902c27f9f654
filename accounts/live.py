"""The channel-layer groups that reach a person's open pages, and the typed message that closes them.

It lives in accounts because signing out and deactivating must close those pages, and accounts never
imports rooms; rooms (notify, the websocket consumer) builds on these names.

channels_redis forgets a group member `group_expiry` seconds after it joined (and every member when
Redis restarts), so whoever joins a group re-joins it every `group_rejoin_seconds()`.
"""

import asyncio
import hashlib
import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings

log = logging.getLogger(__name__)

# The close code that tells a page its sign-in is gone: it goes to the login page, never reconnects.
SIGNED_OUT = 4401
# Re-join at least this often, however long the expiry, so a Redis restart heals within a minute.
REJOIN_CAP_SECONDS = 60.0

_pending_sends: set[asyncio.Task] = set()


def account_group(account_id: int) -> str:
    """Every open page of one Matrix account, in any browser."""
    return f"account.{account_id}"


def session_group(session_key: str) -> str:
    """The open pages of one sign-in. Hashed: a session key is a credential and has no place in
    Redis key names."""
    return "session." + hashlib.sha256(session_key.encode()).hexdigest()[:40]


def group_rejoin_seconds() -> float:
    """How often a group member re-joins: well inside the expiry, at most every minute."""
    return min(settings.CHANNEL_GROUP_EXPIRY_SECONDS / 3, REJOIN_CAP_SECONDS)


def close_message(code: int = SIGNED_OUT) -> dict:
    """The typed message that makes every consumer receiving it close its websocket with `code`."""
    return {"type": "live.close", "code": code}


def pages_close_for_account(account_id: int, *, code: int = SIGNED_OUT) -> None:
    """Close every open page of the account (deactivated: none of its sign-ins may stay live)."""
    group_send(account_group(account_id), close_message(code))


def pages_close_for_session(session_key: str, *, code: int = SIGNED_OUT) -> None:
    """Close the open pages of one sign-in; the person's other sign-ins stay open."""
    group_send(session_group(session_key), close_message(code))


def group_send(group: str, message: dict) -> None:
    """Send to a group from sync code or from inside a running event loop. Best effort: pages are
    hints that catch up on (re)connect, so a layer failure is logged, never raised."""
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            async_to_sync(layer.group_send)(group, message)
        else:
            task = loop.create_task(layer.group_send(group, message))
            _pending_sends.add(task)
            task.add_done_callback(_pending_sends.discard)
    except Exception:
        log.warning("live message to %s not sent", group, exc_info=True)
