"""Spaces list their rooms; a replaced (upgraded) room points to its successor, in Chromium."""

import time

import pytest
from nio import RoomCreateResponse, RoomPreset

from tests.e2e.conftest import sign_in
from tests.e2e.peer import SyncPeer

pytestmark = pytest.mark.e2e


def create(bob: SyncPeer, **kwargs) -> str:
    response = bob.call(bob.client.room_create(**kwargs))
    assert isinstance(response, RoomCreateResponse), response
    return response.room_id


def reload_until(page, selector: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        page.reload()
        if page.locator(selector).count():
            return
        assert time.monotonic() < deadline, f"{selector} never appeared"
        page.wait_for_timeout(250)


def test_space_lists_its_rooms_and_joins_one(page, workspace, matrix_user_factory, bob):
    alice = matrix_user_factory()
    child = create(bob, name="Space child room", preset=RoomPreset.public_chat)
    space = create(
        bob,
        name="Engineering space",
        space=True,
        invite=[alice.user_id],
        initial_state=[
            {"type": "m.space.child", "state_key": child, "content": {"via": ["localhost"]}}
        ],
    )
    sign_in(page, workspace, alice)
    page.click("#room-list >> text=Engineering space")
    page.click("text=Accept")
    # No reload: the space's rooms appear once its state has synced.
    page.wait_for_selector(f".space-children li:has-text('{child}') button:has-text('Join')")
    page.click(f".space-children li:has-text('{child}') button:has-text('Join')")
    page.wait_for_selector("#composer-body")
    bob.wait_for_member(child, alice.user_id)
    page.goto(f"{workspace.url}/rooms/{space}/")
    page.wait_for_selector(".space-children li:has-text('Space child room') a:has-text('Open')")

    # A room added to the space while we look at it shows up live.
    later = create(bob, name="Added later", preset=RoomPreset.public_chat)
    bob.call(
        bob.client.room_put_state(space, "m.space.child", {"via": ["localhost"]}, state_key=later)
    )
    page.wait_for_selector(f".space-children li:has-text('{later}') button:has-text('Join')")
    assert page.errors == []


def test_replaced_room_leads_to_its_successor(page, workspace, matrix_user_factory, bob):
    alice = matrix_user_factory()
    old = bob.create_room(name="Old project room", invite=[alice.user_id])
    sign_in(page, workspace, alice)
    page.click("#room-list >> text=Old project room")
    page.click("text=Accept")
    page.wait_for_selector("#composer-body")
    bob.wait_for_member(old, alice.user_id)
    new = create(
        bob,
        name="New project room",
        preset=RoomPreset.public_chat,
        predecessor={"room_id": old, "event_id": "$unknown"},
    )
    bob.call(
        bob.client.room_put_state(
            old, "m.room.tombstone", {"body": "We moved", "replacement_room": new}
        )
    )
    # The header is rendered with the page: reload until the synced tombstone shows in it.
    reload_until(page, ".notice:has-text('This room has been replaced: We moved')")
    page.click("button:has-text('Join the new room')")
    page.wait_for_selector("h1:has-text('New project room')", timeout=30_000)
    bob.wait_for_member(new, alice.user_id)
    assert page.errors == []
