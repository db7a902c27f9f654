"""Encrypted rooms in Chromium: private rooms are encrypted by default, messages flow both ways
with an independent Olm device, and a message we cannot read says why."""

import io
import time

import pytest
from nio import RoomPutStateResponse

from tests.e2e.conftest import peer_verifies_page_by_emoji, sign_in
from tests.e2e.peer import SyncPeer, only_device_of
from tests.fixtures.images import PNG, encrypted_png_message

pytestmark = pytest.mark.e2e


def test_private_room_is_encrypted_and_messages_flow_both_ways(
    page, workspace, matrix_user_factory, bob_encrypting, artifacts
):
    bob = bob_encrypting
    alice = matrix_user_factory()
    sign_in(page, workspace, alice)
    page.click("text=New room")
    assert page.is_checked("input[name=encrypted]")
    page.fill("#room-name", "Board minutes")
    page.click("text=Create room")
    page.wait_for_selector("h1:has-text('Board minutes') .badge-lock")
    room_id = page.evaluate("() => decodeURIComponent(location.pathname.split('/')[2])")
    page.click("text=Invite or leave")
    page.fill("#invite-user", bob.user_id)
    page.click("button:has-text('Invite')")
    bob.wait_for_invite()
    bob.join(room_id)
    encryption = bob.wait_for_event(room_id, lambda e: e.get("type") == "m.room.encryption")
    assert encryption["content"]["algorithm"] == "m.megolm.v1.aes-sha2"

    page.wait_for_selector(f"ol.timeline >> text={bob.localpart}")  # Bob's join has synced
    page.fill("#composer-body", "Minutes are *confidential* 🔐")
    page.press("#composer-body", "Enter")
    received = bob.wait_for_message(room_id, lambda body: "confidential" in body)
    assert received.body == "Minutes are *confidential* 🔐"
    assert received.decrypted is True

    bob.send(room_id, "Understood, shredding my copy")
    page.wait_for_selector("ol.timeline >> text=Understood, shredding my copy")
    # Bob's nio device is not cross-signed: the indicator says so (after a reload, it is not live).
    page.reload()
    page.wait_for_selector(
        "#room-security.partial >> text=1 of 1 device not verified or cross-signed by its owner"
    )
    page.screenshot(path=str(artifacts / "encrypted-room.png"))
    assert page.query_selector("ol.timeline li.unreadable") is None
    assert page.errors == []


def test_message_sent_before_joining_says_why_it_cannot_be_read(
    page, workspace, matrix_user_factory, bob_encrypting
):
    bob = bob_encrypting
    alice = matrix_user_factory()
    room_id = bob.create_room(name="Old secrets", invite=[], encrypted=True)
    bob.send(room_id, "before alice was here")
    bridged = bob.call(
        bob.client.room_put_state(
            room_id,
            "m.bridge",
            {"bridgebot": bob.user_id, "protocol": {"id": "whatsapp", "displayname": "WhatsApp"}},
            state_key="org.example.whatsapp://whatsapp/bob",
        )
    )
    assert isinstance(bridged, RoomPutStateResponse), bridged
    bob.call(bob.client.room_invite(room_id, alice.user_id))
    sign_in(page, workspace, alice)
    page.click("#room-list >> text=Old secrets")
    page.click("text=Accept")
    page.wait_for_selector("#composer-body")
    unreadable = page.wait_for_selector("ol.timeline li.unreadable .body")
    assert "sent before you joined" in unreadable.inner_text()
    assert "before alice was here" not in page.content()
    page.reload()  # the header is rendered with the page; the join's state is in by now
    security = page.inner_text("#room-security")
    assert "Bridged to WhatsApp" in security and "leave end-to-end encryption" in security
    assert page.errors == []


def test_a_missing_key_comes_from_another_of_our_devices_and_the_message_appears_in_place(
    page, workspace, synapse, matrix_user_factory, bob_encrypting, tmp_path
):
    bob = bob_encrypting
    alice = matrix_user_factory()
    phone = SyncPeer(synapse.url, alice, store_dir=tmp_path / "alice-phone")  # her other device
    try:
        room_id = bob.create_room(name="Phone only", invite=[alice.user_id], encrypted=True)
        phone.join(room_id)
        bob.send(room_id, "sent while only your phone was here")
        phone.wait_for_message(room_id, lambda body: body.startswith("sent while"))

        sign_in(page, workspace, alice)  # a new device, which was never given the key
        page.click("#room-list >> text=Phone only")
        page.wait_for_selector("ol.timeline li.unreadable")

        # She verifies the new device from her phone (emoji); from then on each trusts the other,
        # and the key asked for again reaches a device willing to forward it.
        web_device = only_device_of(phone, alice.user_id, exclude=alice.device_id)
        peer_verifies_page_by_emoji(page, phone, web_device)
        deadline = time.monotonic() + 30
        while page.query_selector("text=sent while only your phone was here") is None:
            assert time.monotonic() < deadline, "the forwarded key never arrived"
            phone._sync(500)  # answers our device's (repeated) key request

        page.wait_for_selector("ol.timeline >> text=sent while only your phone was here")
        assert page.query_selector("ol.timeline li.unreadable") is None
        assert page.errors == []
    finally:
        phone.close()


def test_an_encrypted_image_is_shown_inline(page, workspace, matrix_user_factory, bob_encrypting):
    bob = bob_encrypting
    alice = matrix_user_factory()
    room_id = bob.create_room(name="Photos", invite=[alice.user_id], encrypted=True)
    sign_in(page, workspace, alice)
    page.click("#room-list >> text=Photos")
    page.click("text=Accept")
    page.wait_for_selector("#composer-body")
    bob.wait_for_member(room_id, alice.user_id)
    page.wait_for_selector(f"ol.timeline >> text={alice.localpart}")  # her join synced
    uploaded, keys = bob.call(
        bob.client.upload(
            io.BytesIO(PNG), content_type="image/png", encrypt=True, filesize=len(PNG)
        )
    )
    bob._sync(0)  # the room and Alice's device, before encrypting for them
    bob.send_event(
        room_id,
        "m.room.message",
        encrypted_png_message(uploaded.content_uri, keys),
    )
    page.wait_for_function(
        "() => [...document.querySelectorAll('ol.timeline img.inline-image')]"
        ".some(i => i.complete && i.naturalWidth === 1)"
    )
    assert page.errors == []
