"""Unread and mention counts show in the room list, the page title and the favicon, live, and go
when the person reads the room."""

import pytest

from tests.e2e.conftest import open_shared_room

pytestmark = pytest.mark.e2e


def favicon(page) -> str:
    return page.evaluate("() => document.querySelector('link[rel=icon]').getAttribute('href')")


def test_counts_show_in_the_title_and_favicon_live_and_go_when_read(
    page, workspace, matrix_user_factory, bob, artifacts
):
    alice = matrix_user_factory()
    open_shared_room(page, workspace, alice, bob, "Reading here")
    elsewhere = bob.create_room(name="Elsewhere", invite=[alice.user_id])
    page.click("#room-list >> text=Elsewhere")
    page.click("text=Accept")
    page.wait_for_selector("#composer-body")
    bob.wait_for_member(elsewhere, alice.user_id)
    page.click("#room-list >> text=Reading here")
    page.wait_for_selector("ol.timeline")
    base_title = page.title()
    assert not base_title.startswith("(")
    plain_icon = favicon(page)
    assert not plain_icon.startswith("data:")

    bob.send(elsewhere, "first")
    bob.send(elsewhere, "second")
    page.wait_for_function("(t) => document.title === '(2) ' + t", base_title)
    entry = page.locator("#room-list li", has_text="Elsewhere")
    assert entry.locator(".count").inner_text() == "2"
    assert favicon(page).startswith("data:image/svg+xml,")
    assert "%3E2%3C%2Ftext%3E" in favicon(page)  # the badge says 2

    # A mention: the homeserver's push rules make it a highlight.
    bob.send_event(
        elsewhere,
        "m.room.message",
        {
            "msgtype": "m.text",
            "body": f"{alice.localpart}: lunch?",
            "m.mentions": {"user_ids": [alice.user_id]},
        },
    )
    page.wait_for_function("(t) => document.title === '(3 · @1) ' + t", base_title)
    assert entry.locator(".mention-count").inner_text() == "@1"
    assert "d93025" in favicon(page)  # the mention colour
    page.screenshot(path=str(artifacts / "unread-badges.png"))

    entry.click()
    page.wait_for_selector("ol.timeline >> text=lunch?")
    page.wait_for_function("() => !document.title.startsWith('(')")
    page.wait_for_function(
        "() => !document.querySelector('link[rel=icon]').getAttribute('href').startsWith('data:')"
    )
    assert page.locator("#room-list li", has_text="Elsewhere").locator(".count").count() == 0
    assert page.errors == []
