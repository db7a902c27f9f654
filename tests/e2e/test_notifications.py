"""Notification settings in Chromium (a room's level, keywords) land on the homeserver as push
rules; a mention while the tab is hidden shows a browser notification."""

import pytest

from accounts.matrix.errors import MatrixError
from accounts.matrix.http import matrix_request, quote
from tests.e2e.conftest import open_shared_room

pytestmark = pytest.mark.e2e


def push_rule(synapse, creds, kind: str, rule_id: str) -> dict | None:
    try:
        return matrix_request(
            synapse.url,
            "GET",
            f"/_matrix/client/v3/pushrules/global/{kind}/{quote(rule_id)}",
            token=creds.access_token,
        )
    except MatrixError:
        return None


def test_room_level_and_keywords_are_saved_as_push_rules(
    page, workspace, synapse, matrix_user_factory, bob, artifacts
):
    alice = matrix_user_factory()
    room_id = open_shared_room(page, workspace, alice, bob, "Quiet please")
    page.goto(f"{workspace.url}/rooms/{room_id}/settings/")
    page.wait_for_selector("#room-level input[value=all]:checked")
    page.check("#room-level input[value=off]")
    page.wait_for_selector("#room-level >> text=Saved")
    assert page.is_checked("#room-level input[value=off]")
    assert push_rule(synapse, alice, "override", room_id)["actions"] == []
    page.screenshot(path=str(artifacts / "notifications-room-level.png"), full_page=True)

    page.click("nav.actions >> text=Notifications")
    page.fill("#keyword-new", "deploy")
    page.click("text=Add keyword")
    page.wait_for_selector("#keywords >> text=deploy")
    assert push_rule(synapse, alice, "content", "deploy")["pattern"] == "deploy"
    page.screenshot(path=str(artifacts / "notifications-page.png"), full_page=True)
    assert page.errors == []


RECORD_NOTIFICATIONS = """() => {
  const Real = window.Notification;
  window.shownNotifications = [];
  window.Notification = class extends Real {
    constructor(title, options) { super(title, options); window.shownNotifications.push([title, options.body]); }
  };
  Object.defineProperty(window.Notification, "permission", { get: () => Real.permission });
  Object.defineProperty(document, "visibilityState", { get: () => "hidden", configurable: true });
}"""


def test_a_mention_or_direct_message_while_the_tab_is_hidden_shows_a_browser_notification(
    page, workspace, matrix_user_factory, bob
):
    page.context.grant_permissions(["notifications"], origin=workspace.url)
    alice = matrix_user_factory()
    room_id = open_shared_room(page, workspace, alice, bob, "Team")
    page.click("text=Message someone")
    page.fill("#people-q", bob.localpart)
    page.click("#people-results button:has-text('Message')")
    page.wait_for_selector("#composer-body")
    direct_id, _member = bob.wait_for_invite()
    bob.join(direct_id)
    page.wait_for_selector("#room-list a[data-direct]")
    page.goto(workspace.url + "/notifications/")
    page.wait_for_selector("#browser-notifications-state >> text=Allowed")
    page.evaluate(RECORD_NOTIFICATIONS)  # the person switches to another tab

    bob.send(room_id, "just chatting")  # a group room's message: counted, no notification
    page.wait_for_selector("#room-list a[data-unread='1']:not([data-direct])")
    bob.send(direct_id, "are you there?")
    page.wait_for_function("() => window.shownNotifications.length > 0")
    bob.send_event(
        room_id,
        "m.room.message",
        {"msgtype": "m.text", "body": "lunch?", "m.mentions": {"user_ids": [alice.user_id]}},
    )
    page.wait_for_function("() => window.shownNotifications.length > 1")
    shown = page.evaluate("() => window.shownNotifications")
    assert shown[0][1] == "New message"
    assert shown[1] == ["Team", "You were mentioned"]
    assert len(shown) == 2
    assert page.errors == []
