"""In Chromium: a page whose websocket was down catches up on everything, a page at a time, and rows
back-filled while a page is open land where they belong, so the open page equals a reload."""

import re
import time

import pytest

from tests.e2e.conftest import open_shared_room, sign_in

pytestmark = pytest.mark.e2e
EVENT_IDS = "els => els.map(e => e.dataset.eventId)"
BODIES = "els => els.map(e => e.textContent.trim())"


class SocketSwitch:
    """The page's live websocket through Playwright: `up` connects it to the workspace; `down`
    leaves the page with a socket that is open but hears nothing (the server never sees it)."""

    def __init__(self, page) -> None:
        self.up = True
        self.current = None
        page.route_web_socket(re.compile(r".*/ws/live/$"), self._route)

    def _route(self, ws) -> None:
        self.current = ws
        if self.up:
            ws.connect_to_server()

    def reconnect(self, *, up: bool) -> None:
        """Drop the page's socket as a restarting server would (1012): the page reconnects."""
        self.up = up
        self.current.close(code=1012, reason="test")


def message(peer, room_id: str, body: str) -> str:
    return peer.send_event(room_id, "m.room.message", {"msgtype": "m.text", "body": body})


def wait_until(check, timeout: float = 60.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.3)
    raise AssertionError(f"{what} did not happen within {timeout:.0f}s")


def test_catch_up_after_an_outage_shows_every_message(
    page, workspace, matrix_user_factory, bob, artifacts
):
    switch = SocketSwitch(page)
    alice = matrix_user_factory()
    room_id = open_shared_room(page, workspace, alice, bob, "Outage")
    bob.send(room_id, "before the outage")
    page.wait_for_selector("ol.timeline >> text=before the outage", timeout=30_000)

    # The page's socket now hears nothing; its reconnect's catch-up has found nothing new.
    with page.expect_response(lambda response: "/events/?after=" in response.url):
        switch.reconnect(up=False)
    for n in range(95):
        message(bob, room_id, f"while you were away {n}")
    # Stored on our side (the room page, loaded apart, shows the last of them) before we return.
    room_url = f"{workspace.url}/rooms/{room_id}/"
    wait_until(
        lambda: "while you were away 94" in page.request.get(room_url).text(),
        what="the sync host storing the burst",
    )
    assert page.locator("ol.timeline >> text=while you were away 0").count() == 0

    switch.reconnect(up=True)
    page.wait_for_selector("ol.timeline >> text=while you were away 94", timeout=30_000)
    bodies = page.eval_on_selector_all("ol.timeline li.event .body", BODIES)
    away = [b for b in bodies if b.startswith("while you were away")]
    assert away == [f"while you were away {n}" for n in range(95)]

    # Live again: the next message arrives without a reload.
    bob.send(room_id, "after the outage")
    page.wait_for_selector("ol.timeline >> text=after the outage", timeout=30_000)
    page.screenshot(path=str(artifacts / "catch-up-after-outage.png"))
    assert page.errors == []


def test_back_filled_rows_land_in_their_place_on_an_open_page(
    page, workspace, matrix_user_factory, bob, artifacts
):
    alice = matrix_user_factory()
    room_id = bob.create_room(name="Long history", invite=[alice.user_id])
    for n in range(70):  # before Alice joins: her first sync brings only the newest of them
        message(bob, room_id, f"early {n}")
    sign_in(page, workspace, alice)
    page.click("#room-list >> text=Long history")
    page.click("text=Accept")
    page.wait_for_selector("ol.timeline >> text=early 69", timeout=30_000)
    page.reload()  # the page may have opened before the room's first sync came in
    page.wait_for_selector("ol.timeline li.older a")
    assert page.locator("ol.timeline li.older").count() == 1
    shown = page.eval_on_selector_all("ol.timeline li.event[data-event-id]", EVENT_IDS)

    # Another tab of Alice's scrolls back: the homeserver's older history is stored with new,
    # higher stream positions and pushed live to every open page, this one too.
    other = page.context.new_page()
    other.goto(f"{workspace.url}/rooms/{room_id}/")
    other.click("ol.timeline li.older a")
    other.wait_for_selector("ol.timeline >> text=early 0", timeout=30_000)
    page.wait_for_selector("ol.timeline >> text=early 0", timeout=30_000)
    live = page.eval_on_selector_all("ol.timeline li.event[data-event-id]", EVENT_IDS)
    assert live[-len(shown) :] == shown  # what was shown stays at the bottom, in order
    bodies = page.eval_on_selector_all("ol.timeline li.event .body", BODIES)
    early = [b for b in bodies if b.startswith("early")]
    assert early == [f"early {n}" for n in range(70)]

    # A reload, scrolled back as far as it goes, shows the same events in the same order.
    page.reload()
    page.wait_for_selector("ol.timeline >> text=early 69")

    def scrolled_back() -> bool:  # "Earlier messages" loads as it scrolls into view
        page.evaluate("document.querySelector('ol.timeline li.older')?.scrollIntoView()")
        return page.locator("ol.timeline li.older").count() == 0

    wait_until(scrolled_back, what="scrolling back to the room's start")
    reloaded = page.eval_on_selector_all("ol.timeline li.event[data-event-id]", EVENT_IDS)
    assert reloaded == live
    page.screenshot(path=str(artifacts / "back-filled-in-place.png"))
    assert page.errors == []
