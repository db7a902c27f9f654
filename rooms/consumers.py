"""Websockets: authenticate, join the account's and the sign-in's groups, forward what notify
rendered, close when told to (signed out, deactivated). No ORM here.

One daphne process holds thousands of these. Two things keep that cheap (bench/websockets.py):
- Their Redis work (joins, re-joins, leaves) takes a slot of a small per-process pool first. The
  channel layer's connection pool is bounded (redis-py: 100 connections) and fails at once when
  empty, so a burst of pages (a restart's reconnect storm, or thousands of re-joins in step) used
  to fail joins and the layer's own receive clean-ups with "Too many connections"; now they queue.
- Messages are dispatched without Channels' `aclose_old_connections()`: that is a hop to the
  process's one `sync_to_async` thread for every message of every socket, so a push to 500 pages
  queued 500 hops behind each other (and behind every handshake's session lookup). This consumer
  never touches the database.
- Re-joins are batched: one task per process re-joins all its pages in one pipeline per beat
  (rooms/page_rejoin.py). Page by page it was three Redis round trips per page per beat, most of
  daphne's CPU with a few thousand pages open.
"""

import asyncio
import contextlib
import logging
import weakref

from channels.consumer import get_handler_name
from channels.generic.websocket import AsyncWebsocketConsumer

from accounts import live
from rooms import open_pages, page_rejoin
from rooms.metrics import WEBSOCKETS

log = logging.getLogger(__name__)

# Redis commands in flight for the pages' joins, per process: well inside the layer's connection
# pool, leaving room for its receive loop, its clean-ups and the pushes themselves.
REDIS_WORK_SLOTS = 24
_slots: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore]" = (
    weakref.WeakKeyDictionary()
)


def _redis_slot() -> asyncio.Semaphore:
    """The process's slots (one set per event loop: a semaphore belongs to the loop using it)."""
    loop = asyncio.get_running_loop()
    slots = _slots.get(loop)
    if slots is None:
        slots = _slots[loop] = asyncio.Semaphore(REDIS_WORK_SLOTS)
    return slots


class LiveConsumer(AsyncWebsocketConsumer):
    joined: tuple[str, ...] = ()
    account_id: int | None = None

    async def __call__(self, scope, receive, send) -> None:
        WEBSOCKETS.inc()
        try:
            await super().__call__(scope, receive, send)
        finally:  # however the connection ends, stop re-joining for it
            WEBSOCKETS.dec()
            self._stop_rejoining()

    async def connect(self) -> None:
        user = self.scope.get("user")
        session = self.scope.get("session")
        account_id = session.get("matrix_account_id") if session is not None else None
        if user is None or not user.is_authenticated or not isinstance(account_id, int):
            # Accept, then close with a code the page understands: a refused handshake reaches the
            # browser as 1006, which it cannot tell from a network failure.
            await self.accept()
            await self.close(code=live.SIGNED_OUT)
            return
        groups = [live.account_group(account_id)]
        if session.session_key:
            groups.append(live.session_group(session.session_key))
        self.joined = tuple(groups)
        self.account_id = account_id
        await self._join()
        await self.accept()
        page_rejoin.rejoiner().add(self)  # channels_redis forgets members after group_expiry

    async def dispatch(self, message: dict) -> None:
        """Channels' dispatch without the database clean-up before each handler (see above)."""
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def _join(self) -> None:
        """Join the groups and say the page is open (before it is accepted, so nothing rendered
        after the page's catch-up is skipped for want of an open page)."""
        async with _redis_slot():
            for group in self.joined:
                await self.channel_layer.group_add(group, self.channel_name)
            if self.account_id is not None:
                try:
                    await open_pages.page_seen(self.account_id, self.channel_name)
                except Exception:  # Redis away: notify renders anyway when it cannot tell
                    log.warning("websocket could not mark its page open", exc_info=True)

    def _stop_rejoining(self) -> None:
        if self.channel_layer is not None and getattr(self, "channel_name", None):
            page_rejoin.rejoiner().discard(self)

    async def _leave(self) -> None:
        self._stop_rejoining()
        groups, self.joined = self.joined, ()
        account_id, self.account_id = self.account_id, None
        async with _redis_slot():
            for group in groups:
                with contextlib.suppress(Exception):  # expiry removes what Redis could not
                    await self.channel_layer.group_discard(group, self.channel_name)
            if account_id is not None:
                with contextlib.suppress(Exception):  # the page lapses by itself
                    await open_pages.page_closed(account_id, self.channel_name)

    async def disconnect(self, code: int) -> None:
        await self._leave()

    async def live_hint(self, message: dict) -> None:
        if self.joined:  # nothing more after a close
            await self.send(text_data=message["html"])

    async def live_close(self, message: dict) -> None:
        """Signed out or deactivated: the page stops receiving at once and is told why."""
        await self._leave()
        code = message.get("code")
        await self.close(code=code if isinstance(code, int) else live.SIGNED_OUT)
