"""Threads: replies live in the thread panel, the main timeline shows a summary; both ways, live."""

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import open_shared_room
from tests.e2e.peer import SyncPeer

pytestmark = pytest.mark.e2e


def thread_reply(bob: SyncPeer, room_id: str, root: str, body: str) -> str:
    return bob.send_event(
        room_id,
        "m.room.message",
        {
            "msgtype": "m.text",
            "body": body,
            "m.relates_to": {
                "rel_type": "m.thread",
                "event_id": root,
                "is_falling_back": True,
                "m.in_reply_to": {"event_id": root},
            },
        },
    )


def test_threads_both_ways(page, workspace, matrix_user_factory, bob, artifacts):
    alice = matrix_user_factory()
    room_id = open_shared_room(page, workspace, alice, bob, "Threads")

    root = bob.send(room_id, "Release checklist for Friday")
    page.wait_for_selector("ol.timeline >> text=Release checklist for Friday")
    thread_reply(bob, room_id, root, "Docs are done")
    summary = page.locator("ol.timeline li", has_text="Release checklist").locator(
        ".thread-summary"
    )
    summary.wait_for()
    assert "1 reply in thread" in summary.inner_text()
    assert page.locator("ol.timeline >> text=Docs are done").count() == 0

    summary.click()
    page.wait_for_selector("ol.thread >> text=Docs are done")
    # Enter sends, and the reply shows as "sending…" while its POST is still unanswered.
    held = []
    page.route("**/act/", lambda route: held.append(route))
    page.fill("#thread-body", "Tests are green")
    page.press("#thread-body", "Enter")
    sending = page.locator(".thread-panel .outbox-list li.outbox", has_text="Tests are green")
    sending.locator(".status:has-text('sending…')").wait_for()
    expect(page.locator("#thread-body")).to_have_value("")
    page.wait_for_function("() => true")  # let the held request reach the route handler
    assert len(held) == 1, "the row showed while the POST was still unanswered"
    held[0].continue_()
    page.unroute("**/act/")
    ours = bob.wait_for_event(
        room_id, lambda e: e.get("content", {}).get("body") == "Tests are green"
    )
    assert ours["content"]["m.relates_to"]["rel_type"] == "m.thread"
    assert ours["content"]["m.relates_to"]["event_id"] == root
    page.wait_for_selector("ol.thread li.own >> text=Tests are green")
    page.wait_for_function(
        "() => !document.querySelector('.outbox-list li') && "
        "Array.from(document.querySelectorAll('li')).filter("
        "(li) => li.textContent.includes('Tests are green')).length === 1"
    )

    thread_reply(bob, room_id, root, "Shipping it")
    page.wait_for_selector("ol.thread >> text=Shipping it")
    page.wait_for_selector(".thread-summary:has-text('3 replies in thread')")
    page.screenshot(path=str(artifacts / "thread.png"))
    assert page.errors == []
