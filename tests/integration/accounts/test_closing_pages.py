"""Signing out closes that sign-in's open pages; deactivating closes every page of the account.

Real websockets through the ASGI application (origin, session and auth middleware, the consumer) and
the real Redis channel layer. A page told "signed out" (4401) goes to the login page (app.js)."""

import asyncio
import contextlib

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client

from accounts import live, services
from accounts.models import MatrixAccount
from rooms import notify
from webclient.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)


def person(name: str) -> MatrixAccount:
    user = get_user_model().objects.create_user(username=name)
    return MatrixAccount.objects.create(
        user=user,
        homeserver_url="http://127.0.0.1:9",
        mxid=f"@{name}:hs",
        device_id="D",
        access_token="syt_secret",
    )


def browser(account: MatrixAccount) -> Client:
    """A browser signed in as the account (its own session), with a page open."""
    client = Client()
    client.force_login(account.user)
    assert client.get("/").status_code == 200  # the shell stores the account in the session
    return client


async def open_page(client: Client) -> WebsocketCommunicator:
    cookie = f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"
    socket = WebsocketCommunicator(
        application,
        "/ws/live/",
        headers=[
            (b"origin", b"http://localhost"),
            (b"host", b"localhost"),
            (b"cookie", cookie.encode()),
        ],
    )
    connected, _ = await socket.connect()
    assert connected
    return socket


async def closed_with(socket: WebsocketCommunicator) -> int | None:
    """The close code the server sent, or None if the socket is still open and quiet."""
    try:
        output = await socket.receive_output(timeout=3)
    except TimeoutError:
        return None
    assert output["type"] == "websocket.close", output
    return output.get("code")


async def still_live(socket: WebsocketCommunicator, account: MatrixAccount) -> bool:
    await sync_to_async(notify.room_list_changed)(account_id=account.pk)
    try:
        return "live-signal" in await socket.receive_from(timeout=3)
    except TimeoutError:
        return False


async def close_all(*sockets: WebsocketCommunicator) -> None:
    for socket in sockets:
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await socket.disconnect()


async def test_signing_out_closes_that_sign_in_s_pages_only(redis_url):
    account = await sync_to_async(person)("hana")
    laptop, phone = await sync_to_async(browser)(account), await sync_to_async(browser)(account)
    laptop_tabs = [await open_page(laptop), await open_page(laptop)]
    phone_tab = await open_page(phone)
    try:
        response = await sync_to_async(laptop.post)("/accounts/logout/")
        assert response.status_code == 302
        for tab in laptop_tabs:
            assert await closed_with(tab) == live.SIGNED_OUT
        # The same person's other sign-in keeps its live updates.
        assert await still_live(phone_tab, account)
        # The signed-out tab's reconnect is told the same, so the page goes to the login page.
        reconnect = await open_page(laptop)
        assert await closed_with(reconnect) == live.SIGNED_OUT
    finally:
        await close_all(*laptop_tabs, phone_tab)


async def test_deactivating_closes_every_page_of_the_account(redis_url):
    account = await sync_to_async(person)("ines")
    other = await sync_to_async(person)("jun")
    laptop, phone = await sync_to_async(browser)(account), await sync_to_async(browser)(account)
    tabs = [await open_page(laptop), await open_page(phone)]
    colleague = await open_page(await sync_to_async(browser)(other))
    try:
        # The local half of every deactivation (admin action, unticking Active, a revoked token).
        await sync_to_async(services.account_mark_deactivated)(account=account)
        for tab in tabs:
            assert await closed_with(tab) == live.SIGNED_OUT
        assert await still_live(colleague, other)
        reconnect = await open_page(phone)
        assert await closed_with(reconnect) == live.SIGNED_OUT
    finally:
        await close_all(*tabs, colleague)
