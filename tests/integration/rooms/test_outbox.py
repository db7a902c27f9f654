"""Sending through the outbox: one event per message, even when a send is retried after a crash."""

import pytest
from asgiref.sync import sync_to_async
from nio import RoomCreateResponse

from accounts.matrix.http import matrix_request, quote
from accounts.matrix.sync_api import new_http_session
from rooms import outbox, services
from rooms.models import OutboxMessage, Room, TimelineEntry
from rooms.services import LeaseHandle
from rooms.sync.host import OutboxSender, SyncHost
from rooms.sync.leases import lease_claim
from tests.integration.rooms.helpers import join, run_host_until, signed_in_account

pytestmark = pytest.mark.django_db(transaction=True)


async def shared_room(client, matrix_user_factory, nio_peer_factory):
    me = matrix_user_factory()
    account = await sync_to_async(signed_in_account)(client, me)
    peer = await nio_peer_factory()
    created = await peer.room_create(name="Outbox", invite=[me.user_id])
    assert isinstance(created, RoomCreateResponse)
    await sync_to_async(join)(account, created.room_id)
    room = await sync_to_async(Room.objects.create)(room_id=created.room_id)
    return account, room, peer


def bodies_on_homeserver(account, room_id: str) -> list[str]:
    raw = matrix_request(
        account.homeserver_url,
        "GET",
        f"/_matrix/client/v3/rooms/{quote(room_id)}/messages?dir=b&limit=100",
        token=account.access_token,
    )
    return [e["content"].get("body") for e in raw["chunk"] if e["type"] == "m.room.message"]


async def test_message_is_sent_and_its_echo_settles_the_row(
    client, matrix_user_factory, nio_peer_factory
):
    account, room, _peer = await shared_room(client, matrix_user_factory, nio_peer_factory)
    message = await sync_to_async(services.message_send)(
        account_id=account.pk, room=room, body="Ship **today**"
    )
    assert message.content["formatted_body"] == "<p>Ship <strong>today</strong></p>"

    def echoed() -> bool:
        row = OutboxMessage.objects.get(pk=message.pk)
        return (
            row.status == "sent"
            and TimelineEntry.objects.filter(account=account, event__event_id=row.event_id).exists()
        )

    assert await run_host_until(echoed)
    bodies = await sync_to_async(bodies_on_homeserver)(account, room.room_id)
    assert bodies.count("Ship **today**") == 1


async def test_send_retried_after_a_crash_makes_one_event(
    client, matrix_user_factory, nio_peer_factory, monkeypatch
):
    account, room, _peer = await shared_room(client, matrix_user_factory, nio_peer_factory)
    message = await sync_to_async(services.message_send)(
        account_id=account.pk, room=room, body="exactly once"
    )

    # First host: the PUT reaches the homeserver, then the host dies before recording it.
    class Crash(Exception):
        pass

    async def crash(self, txn_id, **outcome):
        raise Crash

    token = await sync_to_async(lease_claim)(account_id=account.pk, owner="doomed", seconds=3)
    with monkeypatch.context() as patch:
        patch.setattr(OutboxSender, "_record", crash)
        async with new_http_session() as http:
            sender = OutboxSender(LeaseHandle(account.pk, "doomed", token), http)
            with pytest.raises(Crash):
                await sender.send_pending(0)
    row = await sync_to_async(OutboxMessage.objects.get)(pk=message.pk)
    assert row.status == "pending"

    # A new host takes over after the lease expires and sends the same row again.
    def sent() -> bool:
        return OutboxMessage.objects.get(pk=message.pk).status == "sent"

    assert await run_host_until(sent, host=SyncHost(capacity=5, lease_seconds=6))
    bodies = await sync_to_async(bodies_on_homeserver)(account, room.room_id)
    assert bodies.count("exactly once") == 1


async def test_refused_send_fails_with_a_reason_and_can_be_retried(
    client, matrix_user_factory, nio_peer_factory
):
    me = matrix_user_factory()
    account = await sync_to_async(signed_in_account)(client, me)
    peer = await nio_peer_factory()
    created = await peer.room_create(name="Invite only", invite=[me.user_id])
    # Not joined: the homeserver refuses our message, which must fail visibly, not loop.
    room = await sync_to_async(Room.objects.create)(room_id=created.room_id)
    message = await sync_to_async(services.message_send)(
        account_id=account.pk, room=room, body="let me in"
    )

    def failed() -> bool:
        return OutboxMessage.objects.get(pk=message.pk).status == "failed"

    assert await run_host_until(failed)
    row = await sync_to_async(OutboxMessage.objects.get)(pk=message.pk)
    assert "refused" in row.error and row.attempts == 1
    retried = await sync_to_async(outbox.message_retry)(
        account_id=account.pk, txn_id=message.txn_id
    )
    assert retried.status == "pending" and retried.txn_id == message.txn_id


def test_empty_and_oversized_messages_are_rejected(db):
    with pytest.raises(services.MessageRejected):
        services.check_message_body("   ")
    with pytest.raises(services.MessageRejected):
        services.check_message_body("x" * (services.MAX_BODY_CHARS + 1))
