"""In Chromium against the whole workspace: sign in, see rooms, and message live with a nio peer."""

import time

import pytest

from tests.e2e.conftest import sign_in
from tests.e2e.peer import SyncPeer

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

    # Alice's connection drops while Bob sends three messages: each appears once, in order.
    page.context.set_offline(True)
    for n in range(3):
        nio_peer.send(room_id, f"while you were away {n}")
    time.sleep(1.5)
    page.context.set_offline(False)
    page.wait_for_selector("text=while you were away 2", timeout=30_000)
    page.wait_for_timeout(1000)
    bodies = page.eval_on_selector_all(
        "ol.timeline li.event .body", "els => els.map(e => e.textContent.trim())"
    )
    away = [b for b in bodies if b.startswith("while you were away")]
    assert away == [f"while you were away {n}" for n in range(3)]
    page.screenshot(path=str(artifacts / "room-live.png"))
    assert page.errors == []
