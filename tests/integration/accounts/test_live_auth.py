"""A websocket's handshake finds its person on threads of its own: it neither waits behind the
process's shared `sync_to_async` thread (page loads, other work) nor lets in a stale sign-in."""

import asyncio
import threading

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings

from accounts import live
from tests.integration.accounts.test_closing_pages import (
    browser,
    close_all,
    closed_with,
    person,
    still_live,
)
from webclient.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)


def socket_for(cookie: str | None) -> WebsocketCommunicator:
    headers = [(b"origin", b"http://localhost"), (b"host", b"localhost")]
    if cookie is not None:
        headers.append((b"cookie", f"{settings.SESSION_COOKIE_NAME}={cookie}".encode()))
    return WebsocketCommunicator(application, "/ws/live/", headers=headers)


async def test_a_handshake_does_not_wait_for_the_shared_thread():
    account = await sync_to_async(person)("handshake")
    client = await sync_to_async(browser)(account)
    cookie = client.cookies[settings.SESSION_COOKIE_NAME].value

    # Something else (a slow page, say) holds asgiref's one thread-sensitive thread.
    release = threading.Event()
    busy = asyncio.create_task(sync_to_async(release.wait)())
    socket = socket_for(cookie)
    try:
        connected, _ = await asyncio.wait_for(socket.connect(), timeout=10)
        assert connected
        assert not busy.done()
        release.set()
        await busy
        assert await still_live(socket, account)  # signed in as that person, in their group
    finally:
        release.set()
        await busy
        await close_all(socket)


async def test_no_cookie_a_stale_cookie_or_a_changed_password_is_signed_out():
    account = await sync_to_async(person)("stale")
    client = await sync_to_async(browser)(account)
    cookie = client.cookies[settings.SESSION_COOKIE_NAME].value
    sockets = [socket_for(None), socket_for("no-such-session")]

    def change_password() -> None:
        account.user.set_password("a new one")
        account.user.save()

    await sync_to_async(change_password)()
    sockets.append(socket_for(cookie))  # signed in before the password changed
    try:
        for socket in sockets:
            connected, _ = await socket.connect()
            assert connected  # accepted, then closed with the code the page understands
            assert await closed_with(socket) == live.SIGNED_OUT
    finally:
        await close_all(*sockets)
