"""Typing indicators and read receipts, in Chromium against a nio peer."""

import pytest

from tests.e2e.conftest import sign_in
from tests.e2e.peer import SyncPeer

pytestmark = pytest.mark.e2e


@pytest.fixture
def bob(synapse, matrix_user_factory):
    peer = SyncPeer(synapse.url, matrix_user_factory())
    yield peer
    peer.close()


def test_typing_shows_both_ways(page, workspace, matrix_user_factory, bob):
    alice = matrix_user_factory()
    room_id = bob.create_room(name="Typing", invite=[alice.user_id])
    sign_in(page, workspace, alice)
    page.click("#room-list >> text=Typing")
    page.click("text=Accept")
    page.wait_for_selector("#composer-body")
    bob.wait_for_member(room_id, alice.user_id)

    bob.typing(room_id, True)
    page.wait_for_selector(f".typing:has-text('{bob.localpart} is typing')")
    bob.typing(room_id, False)
    page.wait_for_function("() => !document.querySelector('.typing').textContent.trim()")

    page.type("#composer-body", "hello there", delay=30)
    bob.wait_for_typing(room_id, alice.user_id)
    assert page.errors == []


def test_read_receipts_show_who_has_seen_a_message(page, workspace, matrix_user_factory, bob):
    alice = matrix_user_factory()
    room_id = bob.create_room(name="Receipts", invite=[alice.user_id])
    sign_in(page, workspace, alice)
    page.click("#room-list >> text=Receipts")
    page.click("text=Accept")
    page.wait_for_selector("#composer-body")
    bob.wait_for_member(room_id, alice.user_id)
    page.fill("#composer-body", "Did everyone get the agenda?")
    page.keyboard.press("Enter")
    sent = bob.wait_for_event(
        room_id, lambda e: e.get("content", {}).get("body", "").startswith("Did")
    )
    bob.read_up_to(room_id, sent["event_id"])
    mine = page.locator("ol.timeline li.own", has_text="Did everyone get the agenda?")
    mine.locator(f".seen:has-text('Seen by {bob.localpart}')").wait_for()
    assert page.errors == []
