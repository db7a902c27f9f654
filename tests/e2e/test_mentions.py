"""Mentions: autocomplete inserts a pill that becomes an intentional mention; a mention of us is
highlighted."""

import pytest

from tests.e2e.conftest import open_shared_room

pytestmark = pytest.mark.e2e


def test_mention_autocomplete_and_highlight(page, workspace, matrix_user_factory, bob):
    alice = matrix_user_factory()
    room_id = open_shared_room(page, workspace, alice, bob, "Mentions")

    # Typed slowly enough that the typing notice goes out mid-sentence: the text must survive it.
    page.type("#composer-body", f"thanks @{bob.localpart[:6]}", delay=40)
    page.click(f"#mention-suggestions button[data-user-id='{bob.user_id}']")
    page.type("#composer-body", "for the review")
    assert page.input_value("#composer-body").startswith("thanks [")
    page.keyboard.press("Enter")
    sent = bob.wait_for_event(room_id, lambda e: "thanks" in e.get("content", {}).get("body", ""))
    assert sent["content"]["m.mentions"] == {"user_ids": [bob.user_id]}
    assert f'href="https://matrix.to/#/{bob.user_id}"' in sent["content"]["formatted_body"]
    page.wait_for_selector(f"ol.timeline a[href='https://matrix.to/#/{bob.user_id}']")

    bob.send_event(
        room_id,
        "m.room.message",
        {
            "msgtype": "m.text",
            "body": f"{alice.localpart}: can you check?",
            "m.mentions": {"user_ids": [alice.user_id]},
        },
    )
    bob.send(room_id, "no mention here")
    page.wait_for_selector("ol.timeline li.mentioned >> text=can you check?")
    page.wait_for_selector("ol.timeline >> text=no mention here")
    assert page.locator("ol.timeline li.mentioned").count() == 1
    assert page.errors == []


def test_emoji_picker_inserts_at_the_caret(page, workspace, matrix_user_factory, bob):
    alice = matrix_user_factory()
    room_id = open_shared_room(page, workspace, alice, bob, "Emoji")
    page.fill("#composer-body", "ship it ")
    page.click(".emoji-picker summary")
    page.click(".emoji-grid button[data-emoji='🚀']")
    assert page.input_value("#composer-body") == "ship it 🚀"
    page.keyboard.press("Enter")
    sent = bob.wait_for_event(
        room_id, lambda e: e.get("content", {}).get("body", "").startswith("ship")
    )
    assert sent["content"]["body"] == "ship it 🚀"
