"""What the page shows of the outbox, and what it never throws away, in Chromium: a message the
homeserver refuses stays on the open page as "not sent" with Retry (no reload needed), and a live
update of a message never closes the edit form someone is typing a correction in."""

import pytest

from tests.e2e.conftest import open_shared_room

pytestmark = pytest.mark.e2e


def test_a_refused_message_stays_on_the_page_with_retry(page, workspace, matrix_user_factory, bob):
    alice = matrix_user_factory()
    room_id = open_shared_room(page, workspace, alice, bob, "Announcements")
    # Bob makes the room moderators-only: Alice's next message is refused (M_FORBIDDEN).
    power = bob.call(bob.client.room_get_state_event(room_id, "m.room.power_levels")).content
    bob.call(
        bob.client.room_put_state(room_id, "m.room.power_levels", {**power, "events_default": 50})
    )
    page.fill("#composer-body", "can I still post?")
    page.keyboard.press("Enter")
    refused = page.locator("li.outbox", has_text="can I still post?")
    refused.locator(".status:has-text('not sent')").wait_for()
    refused.locator("button:has-text('Retry')").wait_for()
    assert refused.count() == 1
    assert page.errors == []


def test_a_live_update_never_closes_an_edit_in_progress(
    page, workspace, matrix_user_factory, bob, artifacts
):
    alice = matrix_user_factory()
    room_id = open_shared_room(page, workspace, alice, bob, "Corrections")
    page.fill("#composer-body", "The meeting is on Tusday")
    page.keyboard.press("Enter")
    mine = page.locator("ol.timeline li.event.own", has_text="The meeting is on Tusday")
    mine.wait_for()
    sent = bob.wait_for_event(
        room_id, lambda e: e.get("content", {}).get("body") == "The meeting is on Tusday"
    )

    mine.hover()
    mine.locator("summary:has-text('Edit')").click()
    editor = mine.get_by_label("Edit your message")
    editor.fill("The meeting is on Tues")  # half-typed, still focused
    bob.send_event(
        room_id,
        "m.reaction",
        {"m.relates_to": {"rel_type": "m.annotation", "event_id": sent["event_id"], "key": "👀"}},
    )
    # The reaction arrives while Alice is typing: her correction and the open form survive it.
    mine.locator(".reaction:has-text('👀 1')").wait_for()
    assert editor.input_value() == "The meeting is on Tues"
    assert mine.locator("details.tool-form[open] textarea").count() == 1
    assert page.evaluate("document.activeElement.getAttribute('aria-label')") == (
        "Edit your message"
    )
    # New messages still arrive below while the form stays open.
    bob.send(room_id, "Sounds good")
    page.locator("ol.timeline li.event", has_text="Sounds good").wait_for()
    assert editor.input_value() == "The meeting is on Tues"
    editor.focus()
    editor.press("End")
    page.keyboard.type("day")
    mine.locator("button:has-text('Save')").click()

    edit = bob.wait_for_event(room_id, lambda e: "m.new_content" in e.get("content", {}))
    assert edit["content"]["m.new_content"]["body"] == "The meeting is on Tuesday"
    fixed = page.locator("ol.timeline li.event.own", has_text="The meeting is on Tuesday")
    fixed.locator(".edited").wait_for()
    fixed.locator(".reaction:has-text('👀 1')").wait_for()
    page.screenshot(path=str(artifacts / "edit-survives-live-update.png"))
    assert page.errors == []
