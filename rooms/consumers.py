"""Websockets: authenticate, join the account's and the sign-in's groups, forward what notify
rendered, close when told to (signed out, deactivated). No ORM here."""

import asyncio
import contextlib
import logging

from channels.generic.websocket import AsyncWebsocketConsumer

from accounts import live
from rooms import open_pages
from rooms.metrics import WEBSOCKETS

log = logging.getLogger(__name__)


class LiveConsumer(AsyncWebsocketConsumer):
    joined: tuple[str, ...] = ()
    account_id: int | None = None
    rejoining: asyncio.Task | None = None

    async def __call__(self, scope, receive, send) -> None:
        WEBSOCKETS.inc()
        try:
            await super().__call__(scope, receive, send)
        finally:  # however the connection ends, stop re-joining for it
            WEBSOCKETS.dec()
            await self._stop_rejoining()

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
        self.rejoining = asyncio.create_task(self._keep_joined())

    async def _join(self) -> None:
        """Join the groups and say the page is open (before it is accepted, so nothing rendered
        after the page's catch-up is skipped for want of an open page)."""
        for group in self.joined:
            await self.channel_layer.group_add(group, self.channel_name)
        if self.account_id is not None:
            try:
                await open_pages.page_seen(self.account_id, self.channel_name)
            except Exception:  # Redis away: notify renders anyway when it cannot tell
                log.warning("websocket could not mark its page open", exc_info=True)

    async def _keep_joined(self) -> None:
        """channels_redis forgets members after group_expiry, and all of them when Redis restarts:
        re-join on a heartbeat so a page open for days keeps receiving."""
        while True:
            await asyncio.sleep(live.group_rejoin_seconds())
            try:
                await self._join()
            except Exception:  # Redis away: try again at the next beat
                log.warning("websocket could not re-join its groups", exc_info=True)

    async def _stop_rejoining(self) -> None:
        task, self.rejoining = self.rejoining, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _leave(self) -> None:
        await self._stop_rejoining()
        groups, self.joined = self.joined, ()
        for group in groups:
            with contextlib.suppress(Exception):  # expiry removes what Redis could not
                await self.channel_layer.group_discard(group, self.channel_name)
        account_id, self.account_id = self.account_id, None
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
