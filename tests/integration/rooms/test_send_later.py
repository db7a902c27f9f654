"""'Send later' against a real Synapse: a scheduled message reaches the other side at (never before)
its time, encrypted where the room is; cancelled and edited ones go as last decided; a host that dies
around the due time, or two hosts running at once, still make exactly one event."""

import asyncio
import time
from datetime import timedelta
from types import SimpleNamespace

import pytest
from asgiref.sync import sync_to_async
from django.utils import timezone
from nio import RoomMessageText

from accounts.matrix.http import matrix_request, quote
from accounts.matrix.sync_api import new_http_session
from rooms import scheduled
from rooms.models import Membership, OutboxMessage
from rooms.services import LeaseHandle
from rooms.sync.host import OutboxSender, SyncHost
from rooms.sync.leases import lease_claim
from tests.integration.rooms.helpers import run_host_until
from tests.integration.rooms.test_encryption import (
    encrypted_membership,
    encrypted_room,
    peer_reads,
    running_host,
    sent,
    until,
)
from tests.integration.rooms.test_outbox import bodies_on_homeserver, shared_room

pytestmark = pytest.mark.django_db(transaction=True)


def event_on_homeserver(account, room_id: str, event_id: str) -> dict:
    return matrix_request(
        account.homeserver_url,
        "GET",
        f"/_matrix/client/v3/rooms/{quote(room_id)}/event/{quote(event_id)}",
        token=account.access_token,
    )


def peer_bodies(peer, room_id: str) -> list[str]:
    """What the other person's client reads in the room (their own access)."""
    who = SimpleNamespace(homeserver_url=peer.homeserver, access_token=peer.access_token)
    return bodies_on_homeserver(who, room_id)


async def still_scheduled_until(message, moment) -> None:
    """Nothing goes before its time: the row stays queued and no event exists until `moment`."""
    while timezone.now() < moment:
        row = await sync_to_async(OutboxMessage.objects.get)(pk=message.pk)
        assert row.status == OutboxMessage.PENDING and not row.event_id, "sent before its time"
        await asyncio.sleep(0.2)


async def test_a_scheduled_message_arrives_at_its_time_not_before(
    client, matrix_user_factory, nio_peer_factory
):
    account, room, peer = await shared_room(client, matrix_user_factory, nio_peer_factory)
    send_at = timezone.now() + timedelta(seconds=12)
    message = await sync_to_async(scheduled.schedule_message)(
        account_id=account.pk, room=room, body="standup in **5**", send_at=send_at
    )
    async with running_host():
        await still_scheduled_until(message, send_at - timedelta(seconds=1))
        event_id = await until(sent(message.txn_id), timeout=90)
    wire = await sync_to_async(event_on_homeserver)(account, room.room_id, event_id)
    late_ms = wire["origin_server_ts"] - send_at.timestamp() * 1000
    print(f"scheduled message went {late_ms:.0f} ms after its time")
    assert late_ms >= 0, "sent before its time"
    assert late_ms < 30_000  # generous on a loaded machine: the sender wakes for it
    assert wire["content"]["formatted_body"] == "<p>standup in <strong>5</strong></p>"
    assert (await sync_to_async(peer_bodies)(peer, room.room_id)).count("standup in **5**") == 1


async def test_a_scheduled_message_in_an_encrypted_room_goes_encrypted(
    client, synapse, matrix_user_factory, tmp_path
):
    account, peer, room_id = await encrypted_room(client, synapse, matrix_user_factory, tmp_path)
    try:
        async with running_host():
            membership = await until(encrypted_membership(account, room_id), timeout=60)
            room = await sync_to_async(lambda: membership.room)()
            send_at = timezone.now() + timedelta(seconds=10)
            message = await sync_to_async(scheduled.schedule_message)(
                account_id=account.pk, room=room, body="secret at ten", send_at=send_at
            )
            await still_scheduled_until(message, send_at - timedelta(seconds=1))
            event_id = await until(sent(message.txn_id), timeout=90)
        wire = await sync_to_async(event_on_homeserver)(account, room_id, event_id)
        assert wire["type"] == "m.room.encrypted"
        assert wire["origin_server_ts"] >= send_at.timestamp() * 1000
        seen = await peer_reads(peer, room_id, event_id)
        assert isinstance(seen, RoomMessageText) and seen.body == "secret at ten"
    finally:
        await peer.close()


async def test_cancelled_and_edited_messages_go_as_last_decided(
    client, matrix_user_factory, nio_peer_factory
):
    account, room, peer = await shared_room(client, matrix_user_factory, nio_peer_factory)
    soon = timezone.now() + timedelta(seconds=40)
    schedule = sync_to_async(scheduled.schedule_message)
    dropped = await schedule(account_id=account.pk, room=room, body="never sent", send_at=soon)
    changed = await schedule(account_id=account.pk, room=room, body="first draft", send_at=soon)
    listed = await sync_to_async(scheduled.scheduled_in_room)(account_id=account.pk, room=room)
    assert [m.txn_id for m in listed] == [dropped.txn_id, changed.txn_id]

    await sync_to_async(scheduled.scheduled_cancel)(
        account_id=account.pk, room=room, txn_id=dropped.txn_id
    )
    new_time = timezone.now() + timedelta(seconds=12)
    await sync_to_async(scheduled.scheduled_edit)(
        account_id=account.pk, room=room, txn_id=changed.txn_id, body="final text", send_at=new_time
    )
    listed = await sync_to_async(scheduled.scheduled_in_room)(account_id=account.pk, room=room)
    assert [(m.txn_id, m.content["body"]) for m in listed] == [(changed.txn_id, "final text")]

    async with running_host():
        await until(sent(changed.txn_id), timeout=90)
        # Once it is going (or gone), it can no longer be changed or cancelled.
        with pytest.raises(scheduled.ScheduleRejected, match="Too late"):
            await sync_to_async(scheduled.scheduled_cancel)(
                account_id=account.pk, room=room, txn_id=changed.txn_id
            )
        with pytest.raises(scheduled.ScheduleRejected, match="Too late"):
            await sync_to_async(scheduled.scheduled_edit)(
                account_id=account.pk,
                room=room,
                txn_id=changed.txn_id,
                body="too late",
                send_at=timezone.now() + timedelta(hours=1),
            )
    bodies = await sync_to_async(peer_bodies)(peer, room.room_id)
    assert bodies.count("final text") == 1
    assert "first draft" not in bodies and "never sent" not in bodies and "too late" not in bodies
    assert not await sync_to_async(OutboxMessage.objects.filter(pk=dropped.pk).exists)()


async def test_a_host_killed_at_the_due_time_and_a_second_host_send_it_once(
    client, matrix_user_factory, nio_peer_factory, monkeypatch
):
    account, room, peer = await shared_room(client, matrix_user_factory, nio_peer_factory)
    send_at = timezone.now() + timedelta(seconds=6)
    message = await sync_to_async(scheduled.schedule_message)(
        account_id=account.pk, room=room, body="exactly once, later", send_at=send_at
    )

    # The first host owns the account at the due time: its PUT reaches the homeserver, and it dies
    # before recording that.
    class Crash(Exception):
        pass

    async def crash(self, txn_id, **outcome):
        raise Crash

    while timezone.now() < send_at - timedelta(seconds=1.5):
        await asyncio.sleep(0.1)
    token = await sync_to_async(lease_claim)(account_id=account.pk, owner="doomed", seconds=6)
    with monkeypatch.context() as patch:
        patch.setattr(OutboxSender, "_record", crash)
        async with new_http_session() as http:
            sender = OutboxSender(LeaseHandle(account.pk, "doomed", token), http)
            assert await sender.send_pending(0) == 0  # not due yet: nothing goes
            while timezone.now() < send_at:
                await asyncio.sleep(0.1)
            with pytest.raises(Crash):
                await sender.send_pending(0)
    row = await sync_to_async(OutboxMessage.objects.get)(pk=message.pk)
    assert row.status == "pending"

    # Two hosts start at once after the lease expires: one takes the account and sends the same
    # row again under the same transaction id; the homeserver makes one event of it.
    def went() -> bool:
        return OutboxMessage.objects.get(pk=message.pk).status == "sent"

    other = SyncHost(capacity=5, lease_seconds=6)
    stop = asyncio.Event()
    other_task = asyncio.create_task(other.run(stop))
    try:
        assert await run_host_until(went, host=SyncHost(capacity=5, lease_seconds=6), timeout=60)
    finally:
        stop.set()
        await other_task
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # a late second send would show up here
        await asyncio.sleep(0.5)
    bodies = await sync_to_async(peer_bodies)(peer, room.room_id)
    assert bodies.count("exactly once, later") == 1


async def test_the_composer_refuses_bad_times_and_empty_text_with_a_reason(
    client, matrix_user_factory, nio_peer_factory
):
    account, room, _peer = await shared_room(client, matrix_user_factory, nio_peer_factory)

    def joined() -> bool:
        return Membership.objects.filter(account=account, room=room, membership="join").exists()

    assert await run_host_until(joined, timeout=60)
    url = f"/rooms/{room.room_id}/scheduled/new/"
    past = (timezone.now() - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M")
    future = (timezone.now() + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M")
    far = (timezone.now() + timedelta(days=400)).strftime("%Y-%m-%dT%H:%M")
    post = sync_to_async(client.post)
    for body, at, reason in [
        ("hello", past, "That time has passed: pick a time in the future."),
        ("hello", far, "more than a year ahead"),
        ("   ", future, "Write something first."),
        ("hello", "", "Pick a date and time"),
    ]:
        response = await post(
            url, {"body": body, "send_at": at, "tz_offset": "0"}, headers={"HX-Request": "true"}
        )
        assert response.status_code == 200
        assert reason in response.content.decode()
        assert response["HX-Retarget"] == f"#scheduled-error-{room.dom_id}"
    assert not await sync_to_async(OutboxMessage.objects.filter(account=account).exists)()

    response = await post(
        url,
        {"body": "in two hours", "send_at": future, "tz_offset": "0"},
        headers={"HX-Request": "true"},
    )
    assert response.status_code == 200 and "in two hours" in response.content.decode()
    assert response["HX-Trigger"] == "scheduled"
    # Listed in the room's Scheduled panel, not among the messages being sent.
    page = (await sync_to_async(client.get)(f"/rooms/{room.room_id}/")).content.decode()
    panel = page.split('class="scheduled"', 1)[1]
    assert "in two hours" in panel
    assert "in two hours" not in page.split('class="scheduled"', 1)[0]
