"""'Send later' in Chromium, in a browser whose clock is in Tokyo: the composer's clock button
schedules the typed text at a local time, the Scheduled panel lists it in local time, a past time is
refused with the text kept, one is cancelled, one is edited to go in the next minute and Bob gets it
then (and it leaves the panel)."""

from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import open_shared_room, wait_for_js

pytestmark = pytest.mark.e2e

TOKYO = timedelta(hours=9)


def tokyo(moment: datetime) -> str:
    """A datetime-local value for `moment` (UTC) as a person in Tokyo picks it."""
    return (moment + TOKYO).strftime("%Y-%m-%dT%H:%M")


def schedule(page, body: str, local: str) -> None:
    page.fill("#composer-body", body)
    if not page.locator("details.send-later[open]").count():
        page.click("details.send-later summary:has-text('Later')")
    page.fill("#send-later-at", local)
    page.click("button:has-text('Schedule')")


def test_schedule_list_cancel_and_edit_from_the_composer(
    browser, workspace, matrix_user_factory, bob, artifacts
):
    context = browser.new_context(viewport={"width": 1280, "height": 800}, timezone_id="Asia/Tokyo")
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(f"{error.name}: {error.message}"))
    try:
        alice = matrix_user_factory()
        room_id = open_shared_room(page, workspace, alice, bob, "Planning")
        now = datetime.now(UTC).replace(second=0, microsecond=0)

        # A time that has passed is refused, and the text stays in the composer.
        schedule(page, "too late for this", tokyo(now - timedelta(minutes=10)))
        page.locator(".scheduled [role=alert]:has-text('That time has passed')").wait_for()
        assert page.input_value("#composer-body") == "too late for this"

        in_two_hours = now + timedelta(hours=2)
        schedule(page, "agenda for the offsite", tokyo(in_two_hours))
        item = page.locator(".scheduled-item", has_text="agenda for the offsite")
        item.wait_for()
        assert page.input_value("#composer-body") == ""  # it went into the panel
        assert page.locator(".scheduled [role=alert]").inner_text() == ""
        # Stored as the UTC moment the person meant, shown back in their own (Tokyo) time.
        assert item.locator("time").get_attribute("datetime") == in_two_hours.isoformat()
        shown = item.locator("time").inner_text()
        assert f"{(in_two_hours + TOKYO).hour % 12 or 12}:{in_two_hours.minute:02d}" in shown
        # Not among the messages being sent, and not sent.
        assert page.locator("li.outbox", has_text="agenda for the offsite").count() == 0

        schedule(page, "cancel me", tokyo(now + timedelta(hours=3)))
        page.locator(".scheduled-item", has_text="cancel me").wait_for()
        assert page.locator("details.send-later[open]").count() == 0  # closed once scheduled
        page.screenshot(path=artifacts / "send-later.png")

        page.locator(".scheduled-item", has_text="cancel me").locator(
            "button:has-text('Cancel')"
        ).click()
        page.locator(".scheduled-item", has_text="cancel me").wait_for(state="detached")
        assert page.locator(".scheduled-item").count() == 1

        # Edit the remaining one to go at the start of the next minute (with new words).
        item.locator("summary:has-text('Edit')").click()
        assert item.locator("input[name=send_at]").input_value() == tokyo(in_two_hours)
        item.locator("textarea[name=body]").fill("agenda, now sooner")
        due = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
        item.locator("input[name=send_at]").fill(tokyo(due))
        item.locator("button:has-text('Save')").click()
        page.locator(".scheduled-item", has_text="agenda, now sooner").wait_for()

        event = bob.wait_for_event(
            room_id,
            lambda e: e.get("content", {}).get("body") == "agenda, now sooner",
            timeout=150,
        )
        assert event["origin_server_ts"] >= due.timestamp() * 1000, "sent before its time"
        page.locator("ol.timeline li.event", has_text="agenda, now sooner").wait_for()
        wait_for_js(page, "() => !document.querySelector('.scheduled-item')", timeout=20_000)
        assert errors == []
    finally:
        context.close()


# Headless Chromium shows no real notifications: record what the page asks for instead (an init
# script, which the page's Content-Security-Policy does not apply to).
RECORD_NOTIFICATIONS = """
window.__notified = [];
window.Notification = class {
  constructor(title) { window.__notified.push(title); }
  static get permission() { return "granted"; }
  static requestPermission() { return Promise.resolve("granted"); }
};
"""


def test_remind_me_about_a_message_shows_a_notice_and_a_notification(
    page, workspace, matrix_user_factory, bob, artifacts
):
    page.add_init_script(RECORD_NOTIFICATIONS)
    alice = matrix_user_factory()
    room_id = open_shared_room(page, workspace, alice, bob, "Budget")
    bob.send(room_id, "budget review on Friday")
    message = page.locator("ol.timeline li.event", has_text="budget review on Friday")
    message.wait_for()
    message.hover()
    message.locator("summary:has-text('Remind me')").click()
    form = message.locator("form[data-remind]")
    # The browser's clock is UTC here; the next minute is the earliest a datetime-local can say.
    due = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
    form.locator("input[name=send_at]").fill(due.strftime("%Y-%m-%dT%H:%M"))
    form.locator("button:has-text('Set reminder')").click()
    form.locator(".remind-status:has-text('Reminder set for')").wait_for()
    # Shown in local time once htmx has settled the swapped-in answer (app.js localizes it then).
    expect(form.locator(".remind-status")).not_to_contain_text("+00:00")

    notice = page.locator(".reminder-notice", has_text="budget review on Friday")
    notice.wait_for(timeout=150_000)
    assert datetime.now(UTC) >= due, "reminded before its time"
    assert page.evaluate("window.__notified") == ["Reminder: budget review on Friday"]
    page.screenshot(path=artifacts / "reminder.png")
    notice.locator("button:has-text('Dismiss')").click()
    notice.wait_for(state="detached")
    assert page.errors == []
