"""Issue 9's light room page in Chromium: one shared action menu (mouse and keyboard), a bounded
timeline however many live messages arrive, and the own message shown the moment Enter is pressed."""

import time

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import open_shared_room, sign_in

pytestmark = pytest.mark.e2e


def focused_in(page, selector: str) -> bool:
    return page.evaluate("(s) => !!document.activeElement.closest(s)", selector)


def test_one_menu_serves_every_message_by_mouse_and_keyboard(
    page, workspace, matrix_user_factory, bob, artifacts
):
    alice = matrix_user_factory()
    room_id = open_shared_room(page, workspace, alice, bob, "Menus")
    question = bob.send(room_id, "Is the report ready?")
    theirs = page.locator("ol.timeline li.event", has_text="Is the report ready?")
    theirs.wait_for()
    page.fill("#composer-body", "Nearly, by noon")
    page.press("#composer-body", "Enter")
    mine = page.locator("ol.timeline li.event.own", has_text="Nearly, by noon")
    mine.wait_for()

    # One menu for the page; no message carries forms of its own.
    assert page.locator("#message-menu").count() == 1
    assert page.locator("ol.timeline li.event form").count() == 0

    # Keyboard: the message's button opens the menu there, focus moves in, Esc closes it and
    # focus returns to the button.
    page.mouse.move(0, 0)
    theirs.locator(".act").focus()
    page.keyboard.press("Enter")
    menu = theirs.locator("#message-menu")
    expect(menu).to_be_visible()
    assert theirs.locator(".act").get_attribute("aria-expanded") == "true"
    assert focused_in(page, "#message-menu")
    # Someone else's message: no edit, no delete; its thread link is this message's.
    assert menu.locator("summary:has-text('Edit')").count() == 0
    assert menu.locator("button:has-text('Delete')").count() == 0
    assert (
        menu.locator("a.tool", has_text="Thread")
        .get_attribute("href")
        .endswith("?root=" + question.replace("$", "%24"))
    )
    page.keyboard.press("Escape")
    expect(menu).to_be_hidden()
    assert page.evaluate("document.activeElement.classList.contains('act')")
    assert focused_in(page, "#" + theirs.get_attribute("id"))
    assert theirs.locator(".act").get_attribute("aria-expanded") == "false"

    # Keyboard again: the first item reacts with 👍, and the peer gets the reaction.
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.title") == "React with 👍"
    page.keyboard.press("Enter")
    reaction = bob.wait_for_event(room_id, lambda e: e.get("type") == "m.reaction")
    assert reaction["content"]["m.relates_to"]["event_id"] == question
    theirs.locator(".reaction.mine:has-text('👍 1')").wait_for()

    # Mouse, on our own message: edit and delete are there, the edit box holds our text; Esc
    # puts it all away. A click elsewhere closes an open menu too.
    mine.locator(".act").click()
    menu = mine.locator("#message-menu")
    expect(menu).to_be_visible()
    assert menu.locator("button:has-text('Delete')").count() == 1
    menu.locator("summary:has-text('Edit')").click()
    expect(mine.get_by_label("Edit your message")).to_have_value("Nearly, by noon")
    assert focused_in(page, "#message-menu")
    page.screenshot(path=str(artifacts / "message-menu-edit.png"))
    page.mouse.move(0, 0)  # hovering shows the menu by itself
    page.keyboard.press("Escape")
    expect(menu).to_be_hidden()
    assert page.evaluate("document.activeElement.classList.contains('act')")
    mine.locator(".act").click()
    expect(menu).to_be_visible()
    page.click("h1")
    page.mouse.move(0, 0)
    expect(menu).to_be_hidden()

    # Hover shows it on whichever message the pointer is over.
    theirs.hover()
    expect(theirs.locator("#message-menu")).to_be_visible()
    page.screenshot(path=str(artifacts / "message-menu-hover.png"))
    assert page.errors == []


def test_a_long_open_room_keeps_a_bounded_timeline(page, workspace, matrix_user_factory, bob):
    alice = matrix_user_factory()
    room_id = open_shared_room(page, workspace, alice, bob, "Firehose")
    page.evaluate("document.querySelector('ol.timeline[data-events-url]').dataset.maxRows = '12'")
    for n in range(20):
        bob.send(room_id, f"Burst {n:02d}")
    page.locator("ol.timeline li.event", has_text="Burst 19").wait_for()
    events = page.locator("ol.timeline[data-events-url] > li.event")
    page.wait_for_function(
        "() => document.querySelectorAll('ol.timeline[data-events-url] > li.event').length <= 12"
    )
    assert events.count() == 12
    assert page.locator("ol.timeline li.event", has_text="Burst 00").count() == 0
    older = page.locator("ol.timeline > li.older a")
    assert older.count() == 1
    # Scrolling up brings the removed messages back, each once.
    page.evaluate("document.querySelector('.main').scrollTop = 0")
    page.locator("ol.timeline li.event", has_text="Burst 00").wait_for()
    for n in range(20):
        assert page.locator("ol.timeline li.event", has_text=f"Burst {n:02d}").count() == 1
    assert page.errors == []


def test_the_own_message_shows_before_the_server_answers(
    page, workspace, matrix_user_factory, bob, artifacts
):
    alice = matrix_user_factory()
    room_id = open_shared_room(page, workspace, alice, bob, "Quick")
    held = []
    page.route("**/send/", lambda route: held.append(route))
    page.fill("#composer-body", "Here at once")
    page.press("#composer-body", "Enter")
    sending = page.locator(".outbox-list li.outbox", has_text="Here at once")
    sending.locator(".status:has-text('sending…')").wait_for()
    expect(page.locator("#composer-body")).to_have_value("")
    page.wait_for_function("() => true")  # let the held request reach the route handler
    assert len(held) == 1, "the row showed while the POST was still unanswered"
    held[0].continue_()
    page.unroute("**/send/")
    bob.wait_for_event(room_id, lambda e: e.get("content", {}).get("body") == "Here at once")
    page.locator("ol.timeline li.event.own", has_text="Here at once").wait_for()
    page.wait_for_function(
        "() => !document.querySelector('.outbox-list li') && "
        "Array.from(document.querySelectorAll('li')).filter("
        "(li) => li.textContent.includes('Here at once')).length === 1"
    )

    # The server fails: the row says so, the text comes back, Retry sends it.
    page.route("**/send/", lambda route: route.fulfill(status=502, body="Bad gateway"))
    page.fill("#composer-body", "Second try works")
    page.press("#composer-body", "Enter")
    failed = page.locator(".outbox-list li.failed", has_text="Second try works")
    failed.locator(".status:has-text('not sent')").wait_for()
    expect(failed.locator(".error")).to_contain_text("Bad gateway")
    expect(page.locator("#composer-body")).to_have_value("Second try works")
    page.screenshot(path=str(artifacts / "own-message-not-sent.png"))
    page.unroute("**/send/")
    failed.locator("button:has-text('Retry')").click()
    bob.wait_for_event(room_id, lambda e: e.get("content", {}).get("body") == "Second try works")
    expect(page.locator("#composer-body")).to_have_value("")
    page.locator("ol.timeline li.event.own", has_text="Second try works").wait_for()
    page.wait_for_function("() => !document.querySelector('.outbox-list li')")
    assert page.errors == []


def test_the_menu_works_in_an_encrypted_room(
    page, workspace, matrix_user_factory, bob_encrypting, artifacts
):
    bob = bob_encrypting
    alice = matrix_user_factory()
    room_id = bob.create_room(name="Sealed", invite=[alice.user_id], encrypted=True)
    sign_in(page, workspace, alice)
    page.click("#room-list >> text=Sealed")
    page.click("text=Accept")
    page.wait_for_selector("#composer-body")
    bob.wait_for_member(room_id, alice.user_id)
    bob.send(room_id, "Encrypted hello")
    theirs = page.locator("ol.timeline li.event", has_text="Encrypted hello")
    theirs.wait_for()
    theirs = page.locator("#" + theirs.get_attribute("id"))  # the reply will quote it: pin it
    theirs.hover()
    theirs.locator("summary:has-text('Reply')").click()
    theirs.get_by_label("Reply to").fill("Encrypted answer")
    theirs.locator("button:has-text('Send reply')").click()
    answer = bob.wait_for_message(room_id, lambda body: "Encrypted answer" in body)
    assert answer.decrypted is True
    page.locator("ol.timeline li.own .reply-preview:has-text('Encrypted hello')").wait_for()
    theirs.hover()
    page.screenshot(path=str(artifacts / "message-menu-encrypted.png"))
    assert page.errors == []


def test_a_moderator_may_delete_other_peoples_messages_from_the_menu(
    page, workspace, matrix_user_factory, bob, artifacts
):
    alice = matrix_user_factory()
    room_id = open_shared_room(page, workspace, alice, bob, "Moderated")
    bob.send(room_id, "An off-topic message")
    theirs = page.locator("ol.timeline li.event", has_text="An off-topic message")
    theirs.wait_for()
    theirs.locator(".act").click()
    assert theirs.locator("#message-menu button:has-text('Delete')").count() == 0

    # Bob makes Alice a moderator; once her page knows it, the menu offers Delete on his message.
    levels = bob.call(bob.client.room_get_state_event(room_id, "m.room.power_levels")).content
    bob.call(
        bob.client.room_put_state(
            room_id,
            "m.room.power_levels",
            {**levels, "users": {**levels["users"], alice.user_id: 50}},
        )
    )
    deadline = time.monotonic() + 30
    while True:
        page.reload()
        theirs.locator(".act").click()
        if theirs.locator("#message-menu button:has-text('Delete')").count() == 1:
            break
        assert time.monotonic() < deadline, "the menu never offered Delete to the moderator"
        page.wait_for_timeout(500)
    page.screenshot(path=str(artifacts / "message-menu-moderator.png"))
    page.once("dialog", lambda dialog: dialog.accept())
    theirs.locator("#message-menu button:has-text('Delete')").click()
    redaction = bob.wait_for_event(room_id, lambda e: e.get("type") == "m.room.redaction")
    assert redaction["sender"] == alice.user_id
    assert page.errors == []
