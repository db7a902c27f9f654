"""Unread counts follow what the page shows: reading or replying clears the room's count at once,
and a sync the homeserver computed before it learned of the read never brings the count back."""

import pytest
from asgiref.sync import sync_to_async
from nio import RoomCreateResponse

from accounts.matrix import sync_api
from rooms import services
from rooms.models import Membership, OutboxMessage, Room, TimelineEntry
from rooms.services import LeaseHandle
from rooms.sync.batch import batch_from_sync_json
from rooms.sync.leases import lease_claim
from tests.integration.rooms.helpers import join, run_host_until, signed_in_account

pytestmark = pytest.mark.django_db(transaction=True)


async def room_with_unread(client, matrix_user_factory, nio_peer_factory, unread: int):
    """Bob writes `unread` messages to Alice, and her host has synced them as unread."""
    me = matrix_user_factory()
    account = await sync_to_async(signed_in_account)(client, me)
    bob = await nio_peer_factory()
    created = await bob.room_create(name="Busy", invite=[me.user_id])
    assert isinstance(created, RoomCreateResponse)
    await sync_to_async(join)(account, created.room_id)
    for n in range(unread):
        await bob.room_send(
            created.room_id, "m.room.message", {"msgtype": "m.text", "body": f"unread {n}"}
        )
    assert await run_host_until(lambda: counts(account, created.room_id) == (unread, 0))
    return account, created.room_id, bob


def counts(account, room_id: str) -> tuple[int, int] | None:
    row = (
        Membership.objects.filter(account=account, room__room_id=room_id)
        .values_list("notification_count", "highlight_count")
        .first()
    )
    return tuple(row) if row else None


def newest_event_id(account, room_id: str) -> str:
    entry = (
        TimelineEntry.objects.filter(account=account, room__room_id=room_id)
        .order_by("-origin_server_ts", "-id")
        .select_related("event")
        .first()
    )
    return entry.event.event_id


async def test_replying_in_a_room_reads_it_up_to_the_reply(
    client, matrix_user_factory, nio_peer_factory
):
    account, room_id, _bob = await room_with_unread(
        client, matrix_user_factory, nio_peer_factory, 3
    )
    room = await sync_to_async(Room.objects.get)(room_id=room_id)
    reply = await sync_to_async(services.message_send)(
        account_id=account.pk, room=room, body="on it"
    )

    def echoed() -> bool:
        row = OutboxMessage.objects.get(pk=reply.pk)
        return (
            row.status == OutboxMessage.SENT
            and TimelineEntry.objects.filter(account=account, event__event_id=row.event_id).exists()
        )

    assert await run_host_until(echoed)
    # The homeserver still counts Bob's three (it has no receipt from us); we spoke after them.
    assert await sync_to_async(counts)(account, room_id) == (0, 0)


async def test_a_lagging_sync_cannot_bring_back_what_was_read(
    client, matrix_user_factory, nio_peer_factory
):
    account, room_id, bob = await room_with_unread(client, matrix_user_factory, nio_peer_factory, 3)
    since = await sync_to_async(services.sync_state_next_batch)(account_id=account.pk)
    await bob.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": "one more"})
    # A /sync the homeserver answered before our read marker reached it, ingested after: it
    # carries "one more" and a count of 4.
    async with sync_api.new_http_session() as http:
        lagging = await sync_api.sync_raw(
            http,
            homeserver_url=account.homeserver_url,
            access_token=account.access_token,
            since=since,
            timeout_ms=5000,
        )
    joined = lagging["rooms"]["join"][room_id]
    assert joined["unread_notifications"]["notification_count"] == 4

    # The page shows the three it has and reports the newest: the badge goes at once.
    shown = await sync_to_async(newest_event_id)(account, room_id)
    response = await sync_to_async(client.post)(f"/rooms/{room_id}/read/", {"event_id": shown})
    assert response.status_code == 204
    assert await sync_to_async(counts)(account, room_id) == (0, 0)

    token = await sync_to_async(lease_claim)(account_id=account.pk, owner="lagging", seconds=30)
    lease = LeaseHandle(account.pk, "lagging", token)

    def ingest() -> None:
        services.sync_ingest(
            lease=lease, own_user_id=account.mxid, batch=batch_from_sync_json(lagging)
        )

    await sync_to_async(ingest)()
    assert await sync_to_async(counts)(account, room_id) == (1, 0)  # only "one more" is unread

    newest = await sync_to_async(newest_event_id)(account, room_id)
    await sync_to_async(client.post)(f"/rooms/{room_id}/read/", {"event_id": newest})
    await sync_to_async(ingest)()  # the same stale answer, once more
    assert await sync_to_async(counts)(account, room_id) == (0, 0)
