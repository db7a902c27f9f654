"""Scrolling back past the local store, read markers, and dropping deactivated accounts."""

import re

import pytest
from asgiref.sync import sync_to_async
from nio import RoomCreateResponse

from accounts import services as account_services
from accounts.matrix.http import matrix_request, quote
from rooms.models import Membership, SyncLease, TimelineEntry
from rooms.sync.host import SyncHost
from tests.integration.rooms.helpers import join, run_host_until, signed_in_account

pytestmark = pytest.mark.django_db(transaction=True)


async def busy_room(client, matrix_user_factory, nio_peer_factory, messages: int):
    me = matrix_user_factory()
    account = await sync_to_async(signed_in_account)(client, me)
    peer = await nio_peer_factory()
    created = await peer.room_create(name="Archive", invite=[me.user_id])
    assert isinstance(created, RoomCreateResponse)
    await sync_to_async(join)(account, created.room_id)
    for n in range(messages):
        await peer.room_send(
            created.room_id, "m.room.message", {"msgtype": "m.text", "body": f"old message {n}"}
        )
    return account, created.room_id, peer


def page_bodies(html: str) -> list[str]:
    return re.findall(r"(old message \d+)", html)


async def test_scrolling_back_fetches_older_history_from_the_homeserver(
    client, matrix_user_factory, nio_peer_factory
):
    account, room_id, _ = await busy_room(client, matrix_user_factory, nio_peer_factory, 80)

    def synced() -> bool:
        return (
            Membership.objects.filter(account=account, room__room_id=room_id, membership="join")
            .exclude(history_token="")
            .exists()
        )

    assert await run_host_until(synced)
    page = await sync_to_async(client.get)(f"/rooms/{room_id}/")
    shown = page_bodies(page.content.decode())
    assert "old message 79" in shown and "old message 0" not in shown
    first = re.search(r'id="ev-(\d+)"', page.content.decode()).group(1)
    older = await sync_to_async(client.get)(f"/rooms/{room_id}/events/", {"before": first})
    assert older.status_code == 200
    fetched = page_bodies(older.content.decode())
    assert fetched and all(int(b.split()[-1]) < int(shown[0].split()[-1]) for b in fetched)
    count = await sync_to_async(TimelineEntry.objects.filter(account=account).count)()
    assert count > 50


async def test_reading_a_room_sends_the_read_marker(client, matrix_user_factory, nio_peer_factory):
    account, room_id, _ = await busy_room(client, matrix_user_factory, nio_peer_factory, 3)

    def has_events() -> bool:
        return TimelineEntry.objects.filter(account=account, room__room_id=room_id).count() >= 3

    assert await run_host_until(has_events)
    last = await sync_to_async(
        lambda: (
            TimelineEntry.objects.filter(account=account, room__room_id=room_id)
            .order_by("-origin_server_ts", "-id")
            .first()
            .event.event_id
        )
    )()
    response = await sync_to_async(client.post)(f"/rooms/{room_id}/read/", {"event_id": last})
    assert response.status_code == 204
    marker = await sync_to_async(matrix_request)(
        account.homeserver_url,
        "GET",
        f"/_matrix/client/v3/user/{quote(account.mxid)}/rooms/{quote(room_id)}"
        "/account_data/m.fully_read",
        token=account.access_token,
    )
    assert marker["event_id"] == last
    bogus = await sync_to_async(client.post)(f"/rooms/{room_id}/read/", {"event_id": "$nope"})
    assert bogus.status_code == 400


async def test_deactivated_account_is_dropped_by_its_host(client, matrix_user_factory):
    me = matrix_user_factory()
    account = await sync_to_async(signed_in_account)(client, me)
    host = SyncHost(capacity=5, lease_seconds=3)

    def owned() -> bool:
        return SyncLease.objects.filter(account=account, owner=host.host_id).exists()

    def released() -> bool:
        return not SyncLease.objects.filter(account=account, owner=host.host_id).exists()

    import asyncio

    stop = asyncio.Event()
    task = asyncio.create_task(host.run(stop))
    try:
        for _ in range(100):
            if await sync_to_async(owned)():
                break
            await asyncio.sleep(0.1)
        assert account.pk in host.owned
        await sync_to_async(account_services.account_deactivate)(account=account, erase=False)
        for _ in range(100):
            if account.pk not in host.owned:
                break
            await asyncio.sleep(0.1)
        assert account.pk not in host.owned
    finally:
        stop.set()
        await task
    assert await sync_to_async(released)()
