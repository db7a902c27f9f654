"""Room settings and members with roles, in Chromium; the peer sees the changes and the limits."""

import io

import pytest
from nio import RoomSendError
from PIL import Image

from tests.e2e.conftest import sign_in

pytestmark = pytest.mark.e2e


def png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (233, 185, 73)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_admin_renames_and_limits_posting_member_cannot_change(
    page, browser, workspace, matrix_user_factory, bob
):
    alice = matrix_user_factory()
    sign_in(page, workspace, alice)
    page.click("text=New room")
    page.fill("#room-name", "Announcements")
    page.click("text=Create room")
    page.wait_for_selector("#composer-body")
    room_id = page.evaluate("() => decodeURIComponent(location.pathname.split('/')[2])")
    page.wait_for_selector("ol.timeline >> text=created the room")  # the first sync is in
    page.click("text=Invite or leave")
    page.fill("#invite-user", bob.user_id)
    page.click("button:has-text('Invite')")
    bob.wait_for_invite()
    bob.join(room_id)

    page.goto(f"{workspace.url}/rooms/{room_id}/settings/")
    page.wait_for_selector(f".picker li:has-text('{bob.user_id}') .role-member")
    print("PICKER", page.inner_text(".picker"))
    page.wait_for_selector(f".picker li:has-text('{alice.user_id}') .role-admin")
    page.fill("#settings-name", "Company announcements")
    page.set_input_files(
        "#settings-avatar",
        files=[{"name": "logo.png", "mimeType": "image/png", "buffer": png_bytes()}],
    )
    page.check("input[name=posting][value=moderators]")
    page.click("button:has-text('Save')")
    assert "Room settings saved." in page.inner_text(".flash")
    bob.wait_for_event(
        room_id,
        lambda e: (
            e.get("type") == "m.room.name" and e["content"].get("name") == "Company announcements"
        ),
    )
    avatar = bob.wait_for_event(room_id, lambda e: e.get("type") == "m.room.avatar")
    assert avatar["content"]["url"].startswith("mxc://")
    page.wait_for_function(
        "() => [...document.querySelectorAll('#room-list img.avatar')].some(i => i.naturalWidth > 0)"
    )
    refused = bob.call(
        bob.client.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": "can I?"})
    )
    assert isinstance(refused, RoomSendError)
    page.wait_for_selector("#room-list >> text=Company announcements")
    assert page.errors == []
