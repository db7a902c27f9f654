"""Sends under outages, against a real Synapse behind a proxy that misbehaves on demand: messages
wait for a homeserver that is down (in order, never given up on quickly), a refusal fails only its
own message, a send whose answer was lost is never posted twice, typing ends with the send, and a
revoked token stops the account once until the person signs in again."""

import asyncio
import contextlib
import time
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.db import connections
from django.template.loader import render_to_string
from django.utils import timezone
from nio import RoomCreateResponse

from accounts.matrix import client_api
from accounts.matrix.http import matrix_request, quote
from accounts.models import MatrixAccount
from rooms import services
from rooms.models import OutboxMessage, Room, SyncHostRecord, SyncLease, SyncState
from rooms.sync.host import OutboxSender, SyncHost
from tests.integration.rooms.helpers import join, signed_in_account
from tests.integration.rooms.proxy import HomeserverProxy

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
async def proxy(synapse, settings):
    """The proxy in front of the session's Synapse; accounts signed in now live behind it."""
    server = await HomeserverProxy(synapse.url).start()
    settings.MATRIX_HOMESERVER_URL = server.url
    yield server
    await server.stop()


@contextlib.asynccontextmanager
async def running_host(lease_seconds: float = 6):
    host = SyncHost(capacity=10, lease_seconds=lease_seconds)
    stop = asyncio.Event()
    task = asyncio.create_task(host.run(stop))
    try:
        yield host
    finally:
        stop.set()
        await task
        await sync_to_async(connections.close_all)()


async def until(condition, timeout: float = 30.0) -> bool:
    """Wait for `condition()` (a sync ORM check) to hold."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await sync_to_async(condition)():
            return True
        await asyncio.sleep(0.1)
    return False


async def room_behind_proxy(client, matrix_user_factory, nio_peer_factory):
    me = matrix_user_factory()
    account = await sync_to_async(signed_in_account)(client, me)
    peer = await nio_peer_factory()
    created = await peer.room_create(name="Outages", invite=[me.user_id])
    assert isinstance(created, RoomCreateResponse)
    await sync_to_async(join)(account, created.room_id)
    room = await sync_to_async(Room.objects.create)(room_id=created.room_id)
    return account, room, peer, me


def bodies_on_homeserver(account, room_id: str) -> list[str]:
    """Every message body in the room, oldest first, as the homeserver has them."""
    raw = matrix_request(
        account.homeserver_url,
        "GET",
        f"/_matrix/client/v3/rooms/{quote(room_id)}/messages?dir=b&limit=200",
        token=account.access_token,
    )
    chunk = [e for e in raw["chunk"] if e["type"] == "m.room.message"]
    return [e["content"].get("body") for e in reversed(chunk)]


def rows(*messages) -> list[OutboxMessage]:
    return [OutboxMessage.objects.get(pk=m.pk) for m in messages]


def synced(account) -> bool:
    return SyncState.objects.filter(account=account).exclude(next_batch="").exists()


async def test_an_outage_keeps_messages_waiting_in_order_until_the_server_is_back(
    client, matrix_user_factory, nio_peer_factory, proxy, monkeypatch
):
    monkeypatch.setattr(OutboxSender, "RETRY_CAP", 0.3)  # many retries in little time
    account, room, _peer, _me = await room_behind_proxy(
        client, matrix_user_factory, nio_peer_factory
    )
    proxy.fail_with = 503  # a load balancer in front of a homeserver that is down: no errcode
    sent = [
        await sync_to_async(services.message_send)(account_id=account.pk, room=room, body=body)
        for body in ("first", "second", "third")
    ]
    async with running_host():
        # Far more attempts than the old limit of six: still waiting, never "not sent".
        assert await until(lambda: rows(*sent)[0].attempts >= 10)
        first, second, third = await sync_to_async(rows)(*sent)
        assert [m.status for m in (first, second, third)] == ["pending"] * 3
        assert first.waiting and "Waiting for the homeserver" in first.error
        shown = await sync_to_async(render_to_string)(
            "rooms/room.html#outbox-item", {"message": first}
        )
        assert "waiting for the server" in shown and "not sent" not in shown
        # Order within the room: nothing behind the first message went ahead of it.
        assert second.attempts == third.attempts == 0
        assert proxy.puts == []

        proxy.fail_with = None
        assert await until(lambda: all(m.status == "sent" for m in rows(*sent)))
    bodies = await sync_to_async(bodies_on_homeserver)(account, room.room_id)
    assert bodies == ["first", "second", "third"]


async def test_a_refusal_fails_only_its_message_and_a_5xx_without_errcode_is_retried(
    client, matrix_user_factory, nio_peer_factory, proxy
):
    account, room, _peer, _me = await room_behind_proxy(
        client, matrix_user_factory, nio_peer_factory
    )
    # 32,000 four-byte emoji: within our own limit, beyond the homeserver's 64 KiB (M_TOO_LARGE).
    huge = await sync_to_async(services.message_send)(
        account_id=account.pk, room=room, body="🦀" * 32_000
    )
    after_huge = await sync_to_async(services.message_send)(
        account_id=account.pk, room=room, body="behind the huge one"
    )
    # A bare 500 (no errcode) for the first PUT of this message only: transient, so retried.
    glitch = await sync_to_async(services.message_send)(
        account_id=account.pk, room=room, body="through a glitch"
    )
    glitch_put = f"/send/m.room.message/{glitch.txn_id}"
    failures = []

    def first_put_of_glitch(request) -> bool:
        if request.path.endswith(glitch_put) and not failures:
            failures.append(request.path)
            return True
        return False

    proxy.fail_with, proxy.fail_when = 500, first_put_of_glitch
    async with running_host():
        assert await until(
            lambda: [m.status for m in rows(huge, after_huge, glitch)] == ["failed", "sent", "sent"]
        )
    huge, after_huge, glitch = await sync_to_async(rows)(huge, after_huge, glitch)
    assert "M_TOO_LARGE" in huge.error or "too large" in huge.error.lower(), huge.error
    assert failures and glitch.attempts == 2
    bodies = await sync_to_async(bodies_on_homeserver)(account, room.room_id)
    assert bodies == ["behind the huge one", "through a glitch"]


async def test_a_send_whose_answer_was_lost_is_never_posted_twice(
    client, matrix_user_factory, nio_peer_factory, proxy, synapse
):
    account, room, _peer, me = await room_behind_proxy(
        client, matrix_user_factory, nio_peer_factory
    )
    # A second device of the same user: PUTs after the first go in under it, so Synapse's
    # transaction-id dedupe (which lasts only a while) cannot save us from a second post.
    other_device = await sync_to_async(client_api.password_login)(
        synapse.url, user=me.localpart, password=me.password, device_id=None, device_name="x"
    )
    async with running_host():
        assert await until(lambda: synced(account))
        proxy.sync_open.clear()  # the echo must not settle the row through /sync
        proxy.drop_put_answers = 2
        proxy.forget_transactions_with = other_device.access_token
        message = await sync_to_async(services.message_send)(
            account_id=account.pk, room=room, body="exactly once, much later"
        )
        assert await until(lambda: rows(message)[0].status == "sent")
        proxy.sync_open.set()
    (row,) = await sync_to_async(rows)(message)
    assert row.attempts >= 2 and not row.maybe_delivered  # lost once, then settled by its echo
    bodies = await sync_to_async(bodies_on_homeserver)(account, room.room_id)
    assert bodies.count("exactly once, much later") == 1


async def test_typing_ends_when_the_message_goes(client, matrix_user_factory, nio_peer_factory):
    me = matrix_user_factory()
    account = await sync_to_async(signed_in_account)(client, me)
    peer = await nio_peer_factory()
    created = await peer.room_create(name="Typing", invite=[me.user_id])
    await sync_to_async(join)(account, created.room_id)
    room = await sync_to_async(Room.objects.create)(room_id=created.room_id)
    # A typing notice that would linger for a minute unless the send ends it.
    await sync_to_async(client_api.set_typing)(
        account.homeserver_url,
        access_token=account.access_token,
        room_id=created.room_id,
        user_id=me.user_id,
        typing=True,
        timeout_ms=60_000,
    )

    async def peer_sees_typing(expected: bool) -> bool:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            await peer.sync(timeout=1000)
            typing = me.user_id in peer.rooms[created.room_id].typing_users
            if typing == expected:
                return True
        return False

    assert await peer_sees_typing(True)
    message = await sync_to_async(services.message_send)(
        account_id=account.pk, room=room, body="done typing"
    )
    async with running_host():
        assert await until(lambda: rows(message)[0].status == "sent")
        assert await peer_sees_typing(False)


async def test_a_revoked_token_stops_the_account_once_until_the_person_signs_in_again(
    client, matrix_user_factory, nio_peer_factory
):
    account, room, _peer, me = await room_behind_proxy(
        client, matrix_user_factory, nio_peer_factory
    )
    lease_seconds = 1.5  # a heartbeat every half second: a restart loop would show at once
    async with running_host(lease_seconds) as host:
        assert await until(lambda: synced(account))
        # Signed out elsewhere (or by an admin): the homeserver revokes the device's token.
        await sync_to_async(matrix_request)(
            account.homeserver_url,
            "POST",
            "/_matrix/client/v3/logout",
            token=account.access_token,
            body={},
        )
        message = await sync_to_async(services.message_send)(
            account_id=account.pk, room=room, body="after the token died"
        )

        def stopped() -> bool:
            lease = SyncLease.objects.get(account=account)
            return (
                MatrixAccount.objects.get(pk=account.pk).session_ended
                and lease.owner == ""
                and account.pk not in host.owned
            )

        assert await until(stopped)
        token = (await sync_to_async(SyncLease.objects.get)(account=account)).fencing_token

        # Several heartbeats later, nobody has claimed the account again.
        def heartbeat_at():
            return SyncHostRecord.objects.get(host_id=host.host_id).heartbeat_at

        seen = {await sync_to_async(heartbeat_at)()}
        assert await until(lambda: seen.add(heartbeat_at()) or len(seen) >= 4, timeout=10)
        lease = await sync_to_async(SyncLease.objects.get)(account=account)
        assert lease.fencing_token == token and lease.owner == ""
        (row,) = await sync_to_async(rows)(message)
        assert row.status == "pending" and "sign in again" in row.error

        page = await sync_to_async(client.get)(f"/rooms/{room.room_id}/")
        assert "Your session on the homeserver ended" in page.content.decode()

        # Signing in again (the same device) resumes the account and sends what waited.
        response = await sync_to_async(client.post)(
            "/accounts/login/", {"username": me.localpart, "password": me.password}
        )
        assert response.status_code == 302
        assert await until(lambda: rows(message)[0].status == "sent")
    page = await sync_to_async(client.get)(f"/rooms/{room.room_id}/")
    assert "Your session on the homeserver ended" not in page.content.decode()


async def test_a_token_revoked_before_the_host_starts_stops_the_account_once(
    client, matrix_user_factory
):
    me = matrix_user_factory()
    account = await sync_to_async(signed_in_account)(client, me)
    await sync_to_async(matrix_request)(
        account.homeserver_url, "POST", "/_matrix/client/v3/logout", token=account.access_token
    )
    async with running_host(1.5) as host:

        def stopped_once() -> bool:
            lease = SyncLease.objects.filter(account=account).first()
            return (
                MatrixAccount.objects.get(pk=account.pk).session_ended
                and lease is not None
                and lease.owner == ""
            )

        assert await until(stopped_once)
        token = (await sync_to_async(SyncLease.objects.get)(account=account)).fencing_token

        def heartbeat_at():
            return SyncHostRecord.objects.get(host_id=host.host_id).heartbeat_at

        seen = {await sync_to_async(heartbeat_at)()}
        assert await until(lambda: seen.add(heartbeat_at()) or len(seen) >= 4, timeout=10)
        lease = await sync_to_async(SyncLease.objects.get)(account=account)
        assert lease.fencing_token == token == 1 and lease.owner == ""


async def test_a_host_that_died_mid_send_long_ago_never_leads_to_a_second_post(
    client, matrix_user_factory, nio_peer_factory, proxy, synapse, monkeypatch
):
    account, room, _peer, me = await room_behind_proxy(
        client, matrix_user_factory, nio_peer_factory
    )
    other_device = await sync_to_async(client_api.password_login)(
        synapse.url, user=me.localpart, password=me.password, device_id=None, device_name="x"
    )
    message = await sync_to_async(services.message_send)(
        account_id=account.pk, room=room, body="sent before the crash"
    )
    # A host PUTs the message, then dies before it can record anything about the attempt (and
    # before any sync brings the echo: that would settle it).
    proxy.sync_open.clear()
    host_died = asyncio.Event()

    async def die(self, txn_id, **outcome):
        host_died.set()
        await asyncio.Event().wait()  # frozen until its task is cancelled

    with monkeypatch.context() as patch:
        patch.setattr(OutboxSender, "_record", die)
        async with running_host():
            await asyncio.wait_for(host_died.wait(), 30)
    assert (await sync_to_async(rows)(message))[0].attempts == 0
    # Hours later, the homeserver has long forgotten the transaction id; no sync has come in yet.
    await sync_to_async(OutboxMessage.objects.filter(pk=message.pk).update)(
        created_at=timezone.now() - timedelta(hours=3)
    )
    proxy.forget_transactions_with, proxy.forget_after = other_device.access_token, 0
    async with running_host():
        assert await until(lambda: rows(message)[0].status == "sent")
        proxy.sync_open.set()
    bodies = await sync_to_async(bodies_on_homeserver)(account, room.room_id)
    assert bodies.count("sent before the crash") == 1
