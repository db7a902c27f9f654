"""Read markers follow what the page shows, even while the room keeps busy."""

import time

import pytest

from accounts.matrix.errors import MatrixError
from accounts.matrix.http import matrix_request, quote
from tests.e2e.conftest import open_shared_room

pytestmark = pytest.mark.e2e


def fully_read(synapse, creds, room_id: str) -> str | None:
    """Where the homeserver has the person's fully-read marker (account data is per user)."""
    try:
        marker = matrix_request(
            synapse.url,
            "GET",
            f"/_matrix/client/v3/user/{quote(creds.user_id)}/rooms/{quote(room_id)}"
            "/account_data/m.fully_read",
            token=creds.access_token,
        )
    except MatrixError:  # no marker yet (M_NOT_FOUND)
        return None
    return marker.get("event_id")


def test_a_busy_room_is_read_while_it_stays_busy(
    page, workspace, synapse, matrix_user_factory, bob
):
    alice = matrix_user_factory()
    room_id = open_shared_room(page, workspace, alice, bob, "Never quiet")
    page.wait_for_selector("ol.timeline")
    burst: list[str] = []
    for n in range(30):  # a message every ~0.1 s: never 700 ms of quiet
        burst.append(
            bob.send_event(room_id, "m.room.message", {"msgtype": "m.text", "body": f"busy {n}"})
        )
        time.sleep(0.1)
        if n == 20:
            # Still busy: the page, showing the burst, has told the homeserver it read it.
            marker = fully_read(synapse, alice, room_id)
            assert marker in burst, f"fully read: {marker}"
    page.wait_for_selector("ol.timeline >> text=busy 29")
    assert page.errors == []


def test_the_room_list_counts_a_busy_room_while_it_stays_busy(
    page, workspace, matrix_user_factory, bob
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
    badge = page.locator("#room-list li", has_text="Elsewhere").locator(".count")
    for n in range(30):  # a message every ~0.1 s: never 700 ms of quiet
        bob.send_event(elsewhere, "m.room.message", {"msgtype": "m.text", "body": f"busy {n}"})
        time.sleep(0.1)
        if n == 20:
            shown = badge.inner_text() if badge.count() else "0"
            assert int(shown) >= 5, f"room list shows {shown} unread while 21 arrived"
    assert page.errors == []
