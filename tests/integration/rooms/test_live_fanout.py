"""A push reaches every open page without waiting for the process's one `sync_to_async` thread.

Channels' consumers close stale database connections before every message they handle, a hop to that
thread per message and page: a push to 500 pages queued 500 hops, behind whatever else the thread
was doing (handshakes' session lookups, views' database work). The live consumer never touches the
database and skips the hop (bench/websockets.py measures the whole fan-out)."""

import asyncio
import contextlib
import time

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer

from accounts import live
from tests.integration.accounts.test_closing_pages import browser, open_page, person

pytestmark = pytest.mark.django_db(transaction=True)

PAGES = 20
BUSY = 3.0  # seconds the sync thread is held


async def test_a_push_reaches_every_page_while_the_sync_thread_is_busy():
    account = await sync_to_async(person)("fanout")
    client = await sync_to_async(browser)(account)
    sockets = [await open_page(client) for _ in range(PAGES)]
    try:
        busy = asyncio.ensure_future(sync_to_async(time.sleep)(BUSY))  # the one sync thread
        await asyncio.sleep(0.1)
        started = time.monotonic()
        await get_channel_layer().group_send(
            live.account_group(account.pk), {"type": "live.hint", "html": "<p>pushed</p>"}
        )
        received = await asyncio.gather(*(s.receive_from(timeout=BUSY / 2) for s in sockets))
        took = time.monotonic() - started
        assert received == ["<p>pushed</p>"] * PAGES
        assert took < BUSY / 2, took
        await busy
    finally:
        for socket in sockets:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await socket.disconnect()
