"""Everything at once in one room (thread, reactions, an image, a reply, an edit): it all renders
together; the screenshot is the README's."""

import io

import pytest
from PIL import Image

from tests.e2e.conftest import sign_in
from tests.e2e.peer import SyncPeer

pytestmark = pytest.mark.e2e


@pytest.fixture
def people(synapse, matrix_user_factory):
    made = []
    for name in ("Bob Tanaka", "Carol Diaz"):
        peer = SyncPeer(synapse.url, matrix_user_factory())
        peer.call(peer.client.set_displayname(name))
        made.append(peer)
    yield made
    for peer in made:
        peer.close()


def test_busy_room(page, workspace, matrix_user_factory, people, artifacts):
    bob, carol = people
    alice = matrix_user_factory()
    room_id = bob.create_room(name="Launch plan", invite=[alice.user_id, carol.user_id])
    carol.join(room_id)
    sign_in(page, workspace, alice)
    page.click("#room-list >> text=Launch plan")
    page.click("text=Accept")
    page.wait_for_selector("#composer-body")
    bob.wait_for_member(room_id, alice.user_id)

    plan = bob.send_event(
        room_id,
        "m.room.message",
        {
            "msgtype": "m.text",
            "body": "Launch checklist: docs, tests, announcement",
            "format": "org.matrix.custom.html",
            "formatted_body": "<p><strong>Launch checklist</strong>: docs, tests, announcement</p>",
        },
    )
    for who, key in ((carol, "🎉"), (bob, "👍"), (carol, "👍")):
        who.send_event(
            room_id,
            "m.reaction",
            {"m.relates_to": {"rel_type": "m.annotation", "event_id": plan, "key": key}},
        )
    carol.send_event(
        room_id,
        "m.room.message",
        {
            "msgtype": "m.text",
            "body": "Docs are merged",
            "m.relates_to": {
                "rel_type": "m.thread",
                "event_id": plan,
                "is_falling_back": True,
                "m.in_reply_to": {"event_id": plan},
            },
        },
    )
    buffer = io.BytesIO()
    Image.new("RGB", (320, 180), (47, 111, 237)).save(buffer, format="PNG")
    page.set_input_files(
        "#upload-file",
        files=[{"name": "launch-banner.png", "mimeType": "image/png", "buffer": buffer.getvalue()}],
    )
    page.click("form.upload button")
    page.wait_for_selector("ol.timeline img.inline-image")
    launch = page.locator("ol.timeline li", has_text="Launch checklist")
    launch.hover()
    launch.locator("summary:has-text('Reply')").click()
    launch.locator("textarea[name=body]").fill("I'll send the **announcement** at 10:00")
    launch.locator("button:has-text('Send reply')").click()
    page.wait_for_selector("ol.timeline li.own .reply-preview")
    launch.locator(".thread-summary:has-text('1 reply')").wait_for()
    launch.locator(".reaction:has-text('👍 2')").wait_for()
    page.wait_for_function(
        "() => document.querySelector('img.inline-image') && "
        "document.querySelector('img.inline-image').naturalWidth > 0"
    )
    page.mouse.move(0, 0)
    page.screenshot(path=str(artifacts / "busy-room.png"))
    assert page.errors == []
