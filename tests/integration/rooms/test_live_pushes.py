"""What notify pushes for one message: rendered once, only for accounts with a page open, and with
one room-list hint (not one from the timeline push and another from the room-list change)."""

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.db import connections

from accounts import live
from rooms import notify, open_pages
from tests.integration.rooms.helpers import (
    create_room,
    join,
    send_event,
    signed_in_account,
    sync_and_ingest,
    text,
)
from tests.integration.rooms.test_live_groups import close_page, open_page

pytestmark = pytest.mark.django_db(transaction=True)

ROOM_LIST_HINT = 'data-topic="room-list"'


async def pushes_until(socket: WebsocketCommunicator, account, marker: str) -> list[str]:
    """Everything the page receives until a push carries `marker`, and whatever followed it from
    the same ingest: a sentinel pushed afterwards arrives after all of that (one channel keeps its
    order), so no receive has to time out (which would cancel the consumer)."""
    received: list[str] = []
    while not any(marker in html for html in received):
        received.append(await socket.receive_from(timeout=10))
    sentinel = {"type": "live.hint", "html": "sentinel"}
    await get_channel_layer().group_send(live.account_group(account.pk), sentinel)
    while received[-1] != "sentinel":
        received.append(await socket.receive_from(timeout=10))
    return received[:-1]


@pytest.fixture(autouse=True)
async def _close_thread_connections():
    """Ingest ran in asgiref's worker thread: give its connection back (or close it)."""
    yield
    await sync_to_async(connections.close_all)()


@pytest.fixture
def renders(monkeypatch) -> list[str]:
    """The templates notify rendered."""
    seen: list[str] = []
    render = notify.render_to_string

    def counted(template, *args, **kwargs):
        seen.append(template)
        return render(template, *args, **kwargs)

    monkeypatch.setattr(notify, "render_to_string", counted)
    return seen


def talking(client, matrix_user_factory):
    """Alice signed in here, Bob elsewhere, a room of theirs already ingested."""
    alice, bob = matrix_user_factory(), matrix_user_factory()
    account = signed_in_account(client, alice)
    room_id = create_room(bob, invite=[alice.user_id], name="Pushes")
    join(account, room_id)
    return account, bob, room_id, sync_and_ingest(account).next_batch


async def test_one_message_pushes_one_room_list_hint(client, matrix_user_factory):
    account, bob, room_id, since = await sync_to_async(talking)(client, matrix_user_factory)
    page = await open_page(client)
    try:
        await sync_to_async(send_event)(bob, room_id, text("hint once"))
        await sync_to_async(sync_and_ingest)(account, since=since)
        received = await pushes_until(page, account, "hint once")
    finally:
        await close_page(page)
    hints = sum(html.count(ROOM_LIST_HINT) for html in received)
    assert hints == 1, received


async def test_nothing_is_rendered_for_an_account_without_an_open_page(
    client, matrix_user_factory, renders, monkeypatch
):
    monkeypatch.setattr(open_pages, "OPEN_CACHE_SECONDS", 0.0)
    account, bob, room_id, since = await sync_to_async(talking)(client, matrix_user_factory)

    renders.clear()
    await sync_to_async(send_event)(bob, room_id, text("nobody looking"))
    since = (await sync_to_async(sync_and_ingest)(account, since=since)).next_batch
    assert renders == []

    page = await open_page(client)  # a page connects: pushes come again
    try:
        await sync_to_async(send_event)(bob, room_id, text("someone looking"))
        since = (await sync_to_async(sync_and_ingest)(account, since=since)).next_batch
        assert "someone looking" in "".join(await pushes_until(page, account, "someone looking"))
        assert renders
    finally:
        await close_page(page)

    renders.clear()  # the page closed: nothing is rendered for it any more
    await sync_to_async(send_event)(bob, room_id, text("gone again"))
    await sync_to_async(sync_and_ingest)(account, since=since)
    assert renders == []
