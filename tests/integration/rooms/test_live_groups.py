"""Live updates keep flowing for days: channels_redis forgets group members after group_expiry (and
all of them when Redis restarts), so sync hosts and open pages re-join on a heartbeat.

The group expiry here is two seconds and the outbox's idle poll two minutes: a send that goes out
within a few seconds (typically 0.1-0.2 s) can only have been woken by a nudge through the host's
outbox group. A Redis restart is played by flushing the channel layer (every key under its prefix
deleted, its connections dropped) rather than FLUSHDB, which would hit whatever else shares the
database."""

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterator

import pytest
import redis.asyncio as aioredis
from asgiref.sync import sync_to_async
from channels.layers import channel_layers, get_channel_layer
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.db import connections

from accounts import live
from rooms import notify, services
from rooms.models import OutboxMessage
from rooms.sync.host import OutboxSender, SyncHost
from tests.integration.rooms.test_outbox import shared_room
from webclient.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)

EXPIRY = 2  # seconds; a member is dropped between 2 and 3 s after it (re-)joined
HOST_LEASE = 3.0  # the host's heartbeat (and so its re-join) comes every second
NUDGED = 5.0  # far below the idle poll: a send this fast was woken by its nudge


@pytest.fixture
def group_expiry(settings) -> Iterator[Callable[[int], None]]:
    """Set channels_redis's group expiry (and the setting the re-join timers derive from)."""
    config = settings.CHANNEL_LAYERS["default"]["CONFIG"]
    before = config.get("group_expiry")

    def use(seconds: int) -> None:
        settings.CHANNEL_GROUP_EXPIRY_SECONDS = seconds
        config["group_expiry"] = seconds
        channel_layers.backends.clear()

    yield use
    if before is None:
        config.pop("group_expiry", None)
    else:
        config["group_expiry"] = before
    channel_layers.backends.clear()


@pytest.fixture
def idle_poll_of_two_minutes(monkeypatch) -> None:
    monkeypatch.setattr(OutboxSender, "IDLE_SECONDS", 120.0)


async def open_page(client) -> WebsocketCommunicator:
    await sync_to_async(client.get)("/")  # the shell stores the account in the session
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


async def close_page(socket: WebsocketCommunicator) -> None:
    # A receive that timed out has already cancelled the consumer.
    with contextlib.suppress(Exception, asyncio.CancelledError):
        await socket.disconnect()


async def wait_until(condition, *, timeout: float, what: str) -> float:
    """Poll a sync ORM check; return how long it took, fail saying what never happened."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if await sync_to_async(condition)():
            return time.monotonic() - started
        await asyncio.sleep(0.02)
    raise AssertionError(f"{what}: not within {timeout} s")


async def send_and_time(account, room, body: str) -> float:
    """Queue a message as the composer does; seconds until the host has PUT it."""
    started = time.monotonic()
    message = await sync_to_async(services.message_send)(
        account_id=account.pk, room=room, body=body
    )

    def sent() -> bool:
        return OutboxMessage.objects.get(pk=message.pk).status == OutboxMessage.SENT

    await wait_until(sent, timeout=10, what=f"{body!r} sent")
    return time.monotonic() - started


async def pushed(socket: WebsocketCommunicator, text: str, *, timeout: float = 10) -> None:
    """The open page receives a live fragment containing `text`."""
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        try:
            if text in await socket.receive_from(timeout=left):
                return
        except TimeoutError:
            break
    raise AssertionError(f"no live push with {text!r} within {timeout} s")


async def group_keys(pattern: str) -> list[bytes]:
    prefix = settings.CHANNEL_LAYERS["default"]["CONFIG"]["prefix"]
    redis = aioredis.from_url(settings.REDIS_URL)
    try:
        return sorted(await redis.keys(f"{prefix}:group:{pattern}"))
    finally:
        await redis.aclose()


async def start_host(account) -> tuple[SyncHost, asyncio.Event, asyncio.Task]:
    host = SyncHost(capacity=5, lease_seconds=HOST_LEASE)
    stop = asyncio.Event()
    task = asyncio.create_task(host.run(stop))
    await wait_until(lambda: account.pk in host.owned, timeout=20, what="host claimed the account")
    return host, stop, task


async def stop_host(stop: asyncio.Event, task: asyncio.Task) -> None:
    stop.set()
    await task
    await sync_to_async(connections.close_all)()


async def test_sends_and_pushes_keep_flowing_over_many_group_expiries(
    group_expiry, idle_poll_of_two_minutes, client, matrix_user_factory, nio_peer_factory
):
    group_expiry(EXPIRY)
    account, room, _peer = await shared_room(client, matrix_user_factory, nio_peer_factory)
    socket = await open_page(client)
    _host, stop, task = await start_host(account)
    try:
        started, latencies = time.monotonic(), []
        while time.monotonic() - started < 8 * EXPIRY:  # many expiries
            await asyncio.sleep(EXPIRY + 1)  # every join made so far has now expired
            body = f"still live {len(latencies)}"
            latencies.append(await send_and_time(account, room, body))
            await pushed(socket, body)
        assert len(latencies) >= 4
        assert max(latencies) < NUDGED, latencies
    finally:
        await stop_host(stop, task)
        await close_page(socket)


async def test_nudges_and_pushes_come_back_after_redis_forgets_everything(
    group_expiry, idle_poll_of_two_minutes, client, matrix_user_factory, nio_peer_factory
):
    group_expiry(9)  # longer than the test: only re-joining brings the members back
    account, room, _peer = await shared_room(client, matrix_user_factory, nio_peer_factory)
    socket = await open_page(client)
    _host, stop, task = await start_host(account)
    groups = [
        notify.HOSTS_GROUP,
        notify.outbox_group(account.pk),
        notify.account_group(account.pk),
    ]
    try:
        assert await send_and_time(account, room, "before the restart") < NUDGED
        await pushed(socket, "before the restart")

        # What a Redis restart does to the layer: every key gone, every connection dropped.
        await get_channel_layer().flush()
        assert await group_keys("*") == []

        # Within a heartbeat (the host's, every second; the page's, a third of the expiry) all
        # are back.
        async def rejoined() -> bool:
            keys = await group_keys("*")
            return all(f":group:{group}".encode() in b"|".join(keys) for group in groups)

        started = time.monotonic()
        while not await rejoined():
            present = await group_keys("*")
            within = HOST_LEASE / 3 + live.group_rejoin_seconds() + 2
            assert time.monotonic() - started < within, f"not re-joined: {present}"
            await asyncio.sleep(0.05)
        assert await send_and_time(account, room, "after the restart") < NUDGED
        await pushed(socket, "after the restart")
    finally:
        await stop_host(stop, task)
        await close_page(socket)
