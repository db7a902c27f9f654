"""The authenticity marks in Chromium: pushed live onto an open room page, explained on hover and
to screen readers, red for a message that was not encrypted at all."""

import time
import uuid

import pytest

from accounts.matrix.http import matrix_request, quote
from tests.e2e.conftest import sign_in
from tests.e2e.peer import SyncPeer
from tests.integration.rooms.test_authenticity import cross_sign

pytestmark = pytest.mark.e2e


def test_marks_arrive_live_with_their_explanation(
    page, workspace, synapse, matrix_user_factory, bob_encrypting, artifacts
):
    bob = bob_encrypting
    alice = matrix_user_factory()
    room_id = bob.create_room(name="Audit trail", invite=[alice.user_id], encrypted=True)
    sign_in(page, workspace, alice)
    page.click("#room-list >> text=Audit trail")
    page.click("text=Accept")
    page.wait_for_selector("#composer-body")
    bob.wait_for_member(room_id, alice.user_id)

    page.fill("#composer-body", "Our numbers are final")
    page.press("#composer-body", "Enter")
    bob.wait_for_message(room_id, lambda body: "final" in body)
    bob.send(room_id, "Signed off from my laptop")
    matrix_request(
        synapse.url,
        "PUT",
        f"/_matrix/client/v3/rooms/{quote(room_id)}/send/m.room.message/{uuid.uuid4().hex}",
        token=bob.client.access_token,
        body={"msgtype": "m.text", "body": "And this one went out in the clear"},
    )
    # Pushed live: Bob's unverified device gets the grey mark, the plain message the red one.
    grey = page.wait_for_selector(
        "li.event:has-text('Signed off from my laptop') .auth-mark[data-authenticity=unverified]"
    )
    assert grey.get_attribute("title") == "Encrypted by a device not verified by its owner."
    red = page.wait_for_selector(
        "li.event:has-text('went out in the clear') .auth-mark.red[data-authenticity=plaintext]"
    )
    assert "Not encrypted" in red.inner_text()
    assert page.query_selector("li.event:has-text('Our numbers are final') .auth-mark") is None
    page.screenshot(path=str(artifacts / "authenticity-marks.png"))

    page.reload()  # a fresh load shows the same marks
    page.wait_for_selector("li.event:has-text('went out in the clear') .auth-mark.red")
    assert len(page.query_selector_all(".auth-mark")) == 2
    assert page.errors == []


def reload_until(page, selector: str, timeout: float = 30.0):
    """The warning is rendered with the page (not pushed): reload until it shows."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        page.reload()
        found = page.query_selector(selector)
        if found is not None:
            return found
        page.wait_for_timeout(500)
    raise AssertionError(f"{selector} did not appear within {timeout:.0f}s")


def test_a_changed_identity_warns_until_the_person_acknowledges_it(
    page, workspace, synapse, matrix_user_factory, tmp_path, artifacts
):
    bob_creds = matrix_user_factory()
    bob = SyncPeer(synapse.url, bob_creds, store_dir=tmp_path / "bob-crypto")
    try:
        cross_sign(synapse.url, bob_creds, bob_creds.device_id)
        alice = matrix_user_factory()
        room_id = bob.create_room(name="Payroll", invite=[alice.user_id], encrypted=True)
        sign_in(page, workspace, alice)
        page.click("#room-list >> text=Payroll")
        page.click("text=Accept")
        page.wait_for_selector("#composer-body")
        # Alice's device has seen Bob's identity (and pinned it) once his device counts as
        # cross-signed in the header.
        reload_until(page, "#room-security >> text=every device verified or cross-signed")
        assert page.query_selector(".identity-warning") is None

        cross_sign(synapse.url, bob_creds, bob_creds.device_id, reset=True)
        warning = reload_until(page, f".identity-warning[data-user-id='{bob.user_id}']")
        assert "identity has changed" in warning.inner_text()
        page.screenshot(path=str(artifacts / "identity-changed.png"))
        page.click(".identity-warning button:has-text('I understand')")
        page.wait_for_url(f"**/rooms/{room_id}/")
        assert page.query_selector(".identity-warning") is None
        page.goto(workspace.url + "/security/")
        assert page.query_selector(".identity-warning") is None
        assert page.errors == []
    finally:
        bob.close()
