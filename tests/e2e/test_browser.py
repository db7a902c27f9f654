"""In Chromium against the whole workspace: sign in, see rooms, and message live with a nio peer."""

import time
from urllib.parse import urljoin

import pytest

from tests.e2e.conftest import sign_in
from tests.e2e.peer import SyncPeer
from tests.e2e.sockets import LiveSocket

pytestmark = pytest.mark.e2e


@pytest.fixture
def nio_peer(synapse, matrix_user_factory):
    peer = SyncPeer(synapse.url, matrix_user_factory())
    yield peer
    peer.close()


def test_sign_in_and_see_the_room_list(page, workspace, matrix_user_factory, nio_peer, artifacts):
    alice = matrix_user_factory()
    room = nio_peer.create_room(name="Quarterly planning", invite=[alice.user_id])
    nio_peer.create_room(name="Design crit", invite=[alice.user_id])
    page.goto(workspace.url + "/accounts/login/")
    page.fill("#id_username", alice.localpart)
    page.fill("#id_password", "not the password")
    page.click("button[type=submit]")
    assert "do not match" in page.inner_text(".alert")
    sign_in(page, workspace, alice)
    page.wait_for_selector("#room-list >> text=Quarterly planning", timeout=30_000)
    page.wait_for_selector("#room-list >> text=Design crit", timeout=30_000)
    page.click("#room-list >> text=Quarterly planning")
    page.click("text=Accept")
    page.wait_for_selector("h2:has-text('Rooms')", timeout=30_000)
    page.screenshot(path=str(artifacts / "room-list.png"))
    assert page.errors == []
    assert room.startswith("!")


def test_messages_flow_both_ways_and_survive_a_lost_connection(
    page, workspace, matrix_user_factory, nio_peer, artifacts
):
    alice = matrix_user_factory()
    room_id = nio_peer.create_room(name="Launch", invite=[alice.user_id])
    live = LiveSocket.route(page)
    sign_in(page, workspace, alice)
    page.click("#room-list >> text=Launch")
    page.click("text=Accept")
    page.wait_for_selector("#composer-body", timeout=30_000)
    nio_peer.wait_for_member(room_id, alice.user_id)

    # Alice (browser) -> Bob (nio): the exact text arrives.
    text = "Hello Bob, **shipping** <today> & tomorrow"
    page.fill("#composer-body", text)
    page.keyboard.press("Enter")
    received = nio_peer.wait_for_message(room_id, lambda body: body == text)
    assert received.body == text
    assert "<strong>shipping</strong>" in (received.formatted_body or "")
    page.wait_for_selector("ol.timeline li.own >> text=shipping", timeout=30_000)

    # Bob -> Alice: appears without a reload.
    nio_peer.send(room_id, "Welcome aboard, Alice")
    page.wait_for_selector("ol.timeline >> text=Welcome aboard, Alice", timeout=30_000)

    # Alice's websocket dies while Bob sends: the server forgets her page, and the page hears
    # nothing until it notices the socket is gone.
    sockets_before = live.opened
    live.cut()
    away = [f"while you were away {n}" for n in range(5)]
    for body in away:
        nio_peer.send(room_id, body)
    wait_until_stored(page, away)
    assert shown_bodies(page, "while you were away") == []  # nothing came through the cut

    # The page notices, reconnects by itself and catches up: each message once, in order.
    live.page_notices()
    page.wait_for_selector(f"ol.timeline >> text={away[-1]}", timeout=30_000)
    assert live.opened > sockets_before
    nio_peer.send(room_id, "And live again")
    page.wait_for_selector("ol.timeline >> text=And live again", timeout=30_000)
    assert shown_bodies(page, "while you were away") == away
    page.screenshot(path=str(artifacts / "room-live.png"))
    assert page.errors == []


def shown_bodies(page, prefix: str) -> list[str]:
    bodies = page.eval_on_selector_all(
        "ol.timeline li.event .body", "els => els.map(e => e.textContent.trim())"
    )
    return [b for b in bodies if b.startswith(prefix)]


def wait_until_stored(page, bodies: list[str], timeout: float = 30.0) -> None:
    """Wait until the workspace holds these messages: the catch-up the page will make (everything
    after the last position it shows) answers them."""
    events_url = urljoin(page.url, page.get_attribute("ol.timeline", "data-events-url"))
    last = page.get_attribute("ol.timeline", "data-last") or "0"
    deadline = time.monotonic() + timeout
    while True:
        response = page.request.get(f"{events_url}?after={last}")
        assert response.ok, response.status
        if all(body in response.text() for body in bodies):
            return
        assert time.monotonic() < deadline, f"never stored: {bodies}"
        page.wait_for_timeout(200)
