"""Reactions, replies, edits and deletions both ways, live, in Chromium against a nio peer."""

import pytest

from tests.e2e.conftest import sign_in
from tests.e2e.peer import SyncPeer

pytestmark = pytest.mark.e2e


@pytest.fixture
def peers(synapse, matrix_user_factory):
    made = [SyncPeer(synapse.url, matrix_user_factory()) for _ in range(2)]
    yield made
    for peer in made:
        peer.close()


def open_shared_room(page, workspace, alice, bob, carol) -> str:
    room_id = bob.create_room(name="Actions", invite=[alice.user_id, carol.user_id])
    carol.join(room_id)
    sign_in(page, workspace, alice)
    page.click("#room-list >> text=Actions")
    page.click("text=Accept")
    page.wait_for_selector("#composer-body")
    bob.wait_for_member(room_id, alice.user_id)
    return room_id


def message(page, text: str):
    return page.locator("ol.timeline li.event", has_text=text)


def test_peer_reactions_edits_and_deletions_show_live(
    page, workspace, matrix_user_factory, peers, artifacts
):
    bob, carol = peers
    alice = matrix_user_factory()
    room_id = open_shared_room(page, workspace, alice, bob, carol)
    original = bob.send(room_id, "The deploy is at 5")
    page.wait_for_selector("ol.timeline >> text=The deploy is at 5")

    bob.send_event(
        room_id,
        "m.reaction",
        {"m.relates_to": {"rel_type": "m.annotation", "event_id": original, "key": "🚀"}},
    )
    message(page, "The deploy is at 5").locator(".reaction:has-text('🚀 1')").wait_for()

    # Carol cannot edit Bob's message. Her forgery must be judged on its own, before Bob's own
    # edit would replace whatever it did: the message Carol sends after it is shown only once
    # the page has had the forgery too (one room's updates arrive in order).
    carol.send_event(
        room_id,
        "m.room.message",
        {
            "msgtype": "m.text",
            "body": "* forged",
            "m.new_content": {"msgtype": "m.text", "body": "forged"},
            "m.relates_to": {"rel_type": "m.replace", "event_id": original},
        },
    )
    carol.send(room_id, "Carol is here too")
    page.wait_for_selector("ol.timeline >> text=Carol is here too")
    untouched = message(page, "The deploy is at 5")
    assert untouched.count() == 1 and untouched.locator(".edited").count() == 0
    assert page.locator("ol.timeline >> text=forged").count() == 0

    # Bob can.
    bob.send_event(
        room_id,
        "m.room.message",
        {
            "msgtype": "m.text",
            "body": "* The deploy is at 6",
            "m.new_content": {"msgtype": "m.text", "body": "The deploy is at 6"},
            "m.relates_to": {"rel_type": "m.replace", "event_id": original},
        },
    )
    edited = message(page, "The deploy is at 6")
    edited.locator(".edited").wait_for()
    assert edited.locator(".reaction").inner_text().startswith("🚀")

    doomed = bob.send(room_id, "oops, wrong room")
    page.wait_for_selector("ol.timeline >> text=oops, wrong room")
    bob.redact(room_id, doomed)
    page.wait_for_selector("ol.timeline li.redacted >> text=Message deleted")
    assert page.locator("ol.timeline >> text=oops, wrong room").count() == 0
    page.screenshot(path=str(artifacts / "message-actions.png"))
    assert page.errors == []


def test_our_reactions_replies_edits_and_deletions_reach_the_peer(
    page, workspace, matrix_user_factory, peers
):
    bob, carol = peers
    alice = matrix_user_factory()
    room_id = open_shared_room(page, workspace, alice, bob, carol)
    question = bob.send(room_id, "Lunch at noon?")
    bobs = message(page, "Lunch at noon?")
    bobs.wait_for()

    bobs.hover()
    bobs.locator("button[title='React with 👍']").click()
    reaction = bob.wait_for_event(room_id, lambda e: e.get("type") == "m.reaction")
    assert reaction["content"]["m.relates_to"] == {
        "rel_type": "m.annotation",
        "event_id": question,
        "key": "👍",
    }
    bobs.locator(".reaction.mine:has-text('👍 1')").wait_for()
    bobs.locator(".reaction.mine").click()  # take it back
    taken_back = bob.wait_for_event(room_id, lambda e: e.get("type") == "m.room.redaction")
    assert reaction["event_id"] in (taken_back.get("redacts"), taken_back["content"].get("redacts"))
    page.wait_for_function("() => !document.querySelector('.reaction.mine')")

    bobs.hover()
    bobs.locator("summary:has-text('Reply')").click()
    bobs.locator("textarea[name=body]").fill("Yes, see you there")
    bobs.locator("button:has-text('Send reply')").click()
    reply = bob.wait_for_event(
        room_id, lambda e: e.get("content", {}).get("body") == "Yes, see you there"
    )
    assert reply["content"]["m.relates_to"]["m.in_reply_to"]["event_id"] == question
    mine = message(page, "Yes, see you there")
    mine.locator(".reply-preview:has-text('Lunch at noon?')").wait_for()

    mine.hover()
    mine.locator("summary:has-text('Edit')").click()
    mine.get_by_label("Edit your message").fill("Yes, see you at 12:30")
    mine.locator("button:has-text('Save')").click()
    edit = bob.wait_for_event(room_id, lambda e: "m.new_content" in e.get("content", {}))
    assert edit["content"]["m.new_content"]["body"] == "Yes, see you at 12:30"
    message(page, "Yes, see you at 12:30").locator(".edited").wait_for()

    page.on("dialog", lambda dialog: dialog.accept())
    edited = message(page, "Yes, see you at 12:30")
    edited.hover()
    edited.locator("button:has-text('Delete')").click()
    deletion = bob.wait_for_event(room_id, lambda e: e.get("type") == "m.room.redaction")
    assert reply["event_id"] in (deletion.get("redacts"), deletion["content"].get("redacts"))
    page.wait_for_selector("ol.timeline li.own.redacted")
    assert page.errors == []
