"""Typing indicators and read receipts, in Chromium against a nio peer."""

import pytest

from tests.e2e.conftest import open_shared_room

pytestmark = pytest.mark.e2e


def test_typing_shows_both_ways(page, workspace, matrix_user_factory, bob):
    alice = matrix_user_factory()
    room_id = open_shared_room(page, workspace, alice, bob, "Typing")

    bob.typing(room_id, True)
    page.wait_for_selector(f".typing:has-text('{bob.localpart} is typing')")
    bob.typing(room_id, False)
    page.wait_for_function("() => !document.querySelector('.typing').textContent.trim()")

    page.type("#composer-body", "hello there", delay=30)
    bob.wait_for_typing(room_id, alice.user_id)
    assert page.errors == []


def test_read_receipts_show_who_has_seen_a_message(page, workspace, matrix_user_factory, bob):
    alice = matrix_user_factory()
    room_id = open_shared_room(page, workspace, alice, bob, "Receipts")
    page.fill("#composer-body", "Did everyone get the agenda?")
    page.keyboard.press("Enter")
    sent = bob.wait_for_event(
        room_id, lambda e: e.get("content", {}).get("body", "").startswith("Did")
    )
    bob.read_up_to(room_id, sent["event_id"])
    mine = page.locator("ol.timeline li.own", has_text="Did everyone get the agenda?")
    mine.locator(f".seen:has-text('Seen by {bob.localpart}')").wait_for()
    assert page.errors == []
