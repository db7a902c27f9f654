"""Interactive verification (SAS emoji) driven from our UI, with another client's device."""

import time

import pytest
from nio.crypto.sas import SasState

from accounts.matrix.cross_signing import public_key_of, verify_signature
from accounts.matrix.http import matrix_request
from tests.e2e.conftest import peer_verifies_page_by_emoji, sign_in
from tests.e2e.peer import SyncPeer, only_device_of, wait_for_sas

pytestmark = pytest.mark.e2e


def open_security_page_once_cross_signed(page) -> None:
    """The host cross-signs a new device moments after sign-in; the page shows it on reload."""
    page.click("text=Security")
    deadline = time.monotonic() + 30
    while page.query_selector("#cross-signing-state[data-state=signed]") is None:
        assert time.monotonic() < deadline, page.inner_text("main")
        time.sleep(0.5)
        page.reload()


def test_verify_a_colleagues_device_by_comparing_emoji(
    page, workspace, matrix_user_factory, bob_encrypting, artifacts
):
    bob = bob_encrypting
    alice = matrix_user_factory()
    sign_in(page, workspace, alice)
    open_security_page_once_cross_signed(page)

    device = only_device_of(bob, alice.user_id)
    bob.call(bob.client.start_key_verification(device))
    sas = bob.client.olm.get_active_sas(alice.user_id, device.id)
    banner = page.wait_for_selector("#verification-banner .verification >> text=wants to verify")
    assert bob.user_id in banner.inner_text()
    page.click("#verification-banner button:has-text('Verify')")

    sas = wait_for_sas(bob, sas.transaction_id, lambda s: s.state == SasState.key_received)
    expected = [name for _, name in sas.get_emoji()]
    page.wait_for_selector("#verification-banner .sas-emoji li")
    shown = page.eval_on_selector_all(
        "#verification-banner .sas-name", "nodes => nodes.map(n => n.textContent)"
    )
    assert shown == expected
    page.screenshot(path=str(artifacts / "verification-emoji.png"))

    bob.call(bob.client.confirm_short_auth_string(sas.transaction_id))
    page.click("#verification-banner button:has-text('They match')")
    sas = wait_for_sas(bob, sas.transaction_id, lambda s: s.verified)
    assert bob.client.olm.is_device_verified(device)

    page.wait_for_selector("#verification-banner .verification", state="detached")
    page.reload()
    history = page.inner_text("#verification-history")
    assert bob.user_id in history and "verified" in history
    assert page.errors == []


def test_emoji_that_do_not_match_cancel_the_verification(
    page, workspace, matrix_user_factory, bob_encrypting
):
    bob = bob_encrypting
    alice = matrix_user_factory()
    sign_in(page, workspace, alice)
    open_security_page_once_cross_signed(page)
    device = only_device_of(bob, alice.user_id)
    bob.call(bob.client.start_key_verification(device))
    sas = bob.client.olm.get_active_sas(alice.user_id, device.id)
    page.click("#verification-banner button:has-text('Verify')")
    wait_for_sas(bob, sas.transaction_id, lambda s: s.state == SasState.key_received)
    page.wait_for_selector("#verification-banner .sas-emoji li")
    page.click('#verification-banner button:has-text("They don\'t match")')
    deadline = time.monotonic() + 30
    while not sas.canceled:  # nio drops a cancelled verification from its table
        assert time.monotonic() < deadline, "the mismatch never reached the other device"
        bob._sync(500)
    assert not bob.client.olm.is_device_verified(device)
    page.wait_for_selector("#verification-banner .verification", state="detached")
    page.reload()
    assert "cancelled" in page.inner_text("#verification-history")


def test_start_verification_from_our_ui(page, workspace, matrix_user_factory, bob_encrypting):
    bob = bob_encrypting
    alice = matrix_user_factory()
    sign_in(page, workspace, alice)
    open_security_page_once_cross_signed(page)
    only_device_of(bob, alice.user_id)  # bob knows alice's device before her start arrives
    page.fill("#verify-user", bob.user_id)
    page.click("button:has-text('Show devices')")
    page.click(f"#device-list li:has-text('{bob.client.device_id}') button:has-text('Verify')")
    assert "Verification requested" in page.inner_text(".flash")

    deadline = time.monotonic() + 30
    while not bob.client.key_verifications:
        assert time.monotonic() < deadline, "alice's start never reached bob"
        bob._sync(500)
    transaction_id, sas = next(iter(bob.client.key_verifications.items()))
    assert sas.other_olm_device.user_id == alice.user_id and not sas.we_started_it
    bob.call(bob.client.accept_key_verification(transaction_id))
    wait_for_sas(bob, transaction_id, lambda s: s.state == SasState.key_received)
    page.wait_for_selector("#verification-banner .sas-emoji li")
    bob.call(bob.client.confirm_short_auth_string(transaction_id))
    page.click("#verification-banner button:has-text('They match')")
    wait_for_sas(bob, transaction_id, lambda s: s.verified)
    page.wait_for_selector("#verification-banner .verification", state="detached")
    assert page.errors == []


def test_verifying_another_device_of_ours_cross_signs_it(
    page, workspace, synapse, matrix_user_factory, tmp_path
):

    alice = matrix_user_factory()
    sign_in(page, workspace, alice)
    open_security_page_once_cross_signed(page)
    phone = SyncPeer(synapse.url, alice, store_dir=tmp_path / "alice-phone")  # her other device
    try:
        phone._sync(0)
        web_device = only_device_of(phone, alice.user_id, exclude=alice.device_id)
        peer_verifies_page_by_emoji(page, phone, web_device)

        deadline = time.monotonic() + 30
        while True:
            keys = matrix_request(
                synapse.url,
                "POST",
                "/_matrix/client/v3/keys/query",
                token=alice.access_token,
                body={"device_keys": {alice.user_id: []}},
            )
            ssk = keys["self_signing_keys"][alice.user_id]
            device = keys["device_keys"][alice.user_id][alice.device_id]
            if verify_signature(device, alice.user_id, public_key_of(ssk)):
                break
            assert time.monotonic() < deadline, "the phone was never cross-signed"
            time.sleep(0.5)
    finally:
        phone.close()
