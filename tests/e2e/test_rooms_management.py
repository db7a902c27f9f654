"""Creating rooms, inviting, starting a direct chat and joining from the directory, in Chromium."""

import pytest

from tests.e2e.conftest import sign_in

pytestmark = pytest.mark.e2e


def test_create_a_room_and_invite_a_colleague(page, workspace, matrix_user_factory, bob):
    alice = matrix_user_factory()
    sign_in(page, workspace, alice)
    page.click("text=New room")
    page.click("text=Create room")  # an empty name is refused by the browser first
    page.fill("#room-name", "Design reviews")
    page.fill("#room-topic", "Every Thursday")
    page.click("text=Create room")
    page.wait_for_selector("h1:has-text('Design reviews')")
    page.wait_for_selector("#room-list >> text=Design reviews")
    page.click("text=Invite or leave")
    page.fill("#invite-user", "not-an-id")
    page.click("button:has-text('Invite')")
    assert "is not a Matrix ID" in page.inner_text(".flash")
    page.click("text=Invite or leave")
    page.fill("#invite-user", bob.user_id)
    page.click("button:has-text('Invite')")
    assert f"Invited {bob.user_id}" in page.inner_text(".flash")
    room_id, _ = bob.wait_for_invite()
    assert room_id in page.url.replace("%21", "!").replace("%3A", ":")
    assert page.errors == []


def test_message_someone_found_in_the_directory(
    page, workspace, matrix_user_factory, bob, artifacts
):
    alice = matrix_user_factory()
    sign_in(page, workspace, alice)
    page.click("text=Message someone")
    page.fill("#people-q", bob.localpart)
    page.wait_for_selector(f"#people-results >> text={bob.user_id}")
    page.screenshot(path=str(artifacts / "people-search.png"))
    page.click("#people-results button:has-text('Message')")
    page.wait_for_selector("#composer-body")
    _room_id, own_member = bob.wait_for_invite()
    assert own_member.get("is_direct") is True
    page.wait_for_selector("#room-list h2:has-text('People')")
    assert page.errors == []


def test_join_a_public_room_from_the_directory(page, workspace, matrix_user_factory, bob):
    room_id = bob.create_room(name="Town hall", invite=[], public=True)
    alice = matrix_user_factory()
    sign_in(page, workspace, alice)
    page.click("text=Explore rooms")
    page.fill("#join-address", "nonsense")
    page.click("form.inline-form button:has-text('Join') >> nth=-1")
    assert "Room addresses look like" in page.inner_text(".flash")
    page.fill("#explore-q", "Town hall")
    page.click("button:has-text('Search')")
    page.click(".picker li:has-text('Town hall') button:has-text('Join')")
    page.wait_for_selector("#composer-body")
    bob.wait_for_member(room_id, alice.user_id)
    page.wait_for_selector("#room-list >> text=Town hall")
    assert page.errors == []
