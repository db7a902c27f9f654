"""One person can never read another's rooms, events or live updates."""

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client

from accounts.models import MatrixAccount
from rooms.models import Event, Membership, Room, TimelineEntry
from webclient.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)


def person_with_room(name: str, room_id: str) -> tuple[Client, MatrixAccount, Room]:
    user = get_user_model().objects.create_user(username=name)
    account = MatrixAccount.objects.create(
        user=user,
        homeserver_url="http://127.0.0.1:9",
        mxid=f"@{name}:hs",
        device_id="D",
        access_token="syt_secret",
    )
    room = Room.objects.create(room_id=room_id)
    Membership.objects.create(
        account=account, room=room, membership="join", display_name=f"{name}'s room"
    )
    event = Event.objects.create(
        event_id=f"${name}",
        room=room,
        sender=account.mxid,
        event_type="m.room.message",
        raw={"type": "m.room.message", "content": {"body": f"{name} private"}},
    )
    TimelineEntry.objects.create(account=account, room=room, event=event)
    client = Client()
    client.force_login(user)
    return client, account, room


def test_pages_and_events_of_another_person_are_404():
    alice, _, alice_room = person_with_room("alice", "!a:hs")
    bob, _, _ = person_with_room("bob", "!b:hs")
    assert "alice private" in alice.get(f"/rooms/{alice_room.room_id}/").content.decode()
    assert bob.get(f"/rooms/{alice_room.room_id}/").status_code == 404
    assert bob.get(f"/rooms/{alice_room.room_id}/events/?after=0").status_code == 404
    assert bob.post(f"/rooms/{alice_room.room_id}/send/", {"body": "hi"}).status_code == 404
    assert bob.post(f"/rooms/{alice_room.room_id}/read/", {"event_id": "$alice"}).status_code == 404
    assert "alice" not in bob.get("/").content.decode()


def test_same_room_shows_each_person_only_their_own_timeline_rows():
    _carol, _carol_account, room = person_with_room("carol", "!shared:hs")
    dave, dave_account, _ = person_with_room("dave", "!d:hs")
    Membership.objects.create(account=dave_account, room=room, membership="join")
    page = dave.get(f"/rooms/{room.room_id}/").content.decode()
    assert "carol private" not in page  # stored once, but only carol's account saw it


async def websocket(client: Client, origin: bytes) -> WebsocketCommunicator:
    cookie = f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"
    return WebsocketCommunicator(
        application,
        "/ws/live/",
        headers=[(b"origin", origin), (b"host", b"localhost"), (b"cookie", cookie.encode())],
    )


async def test_websocket_from_foreign_origin_is_refused(redis_url):
    alice, _, room = await sync_to_async(person_with_room)("erin", "!e:hs")
    await sync_to_async(alice.get)(f"/rooms/{room.room_id}/")  # stores the account in the session
    good = await websocket(alice, b"http://localhost")
    connected, _ = await good.connect()
    assert connected
    await good.disconnect()
    evil = await websocket(alice, b"http://evil.example")
    connected, _ = await evil.connect()
    assert not connected


async def test_websocket_without_sign_in_is_refused(redis_url):
    communicator = WebsocketCommunicator(
        application,
        "/ws/live/",
        headers=[(b"origin", b"http://localhost"), (b"host", b"localhost")],
    )
    # Accepted only to be closed at once with "signed out", which sends the page to the login page
    # (a refused handshake would reach the browser as a 1006 network failure); nothing is joined.
    connected, _ = await communicator.connect()
    assert connected
    closed = await communicator.receive_output(timeout=3)
    assert closed == {"type": "websocket.close", "code": 4401}
