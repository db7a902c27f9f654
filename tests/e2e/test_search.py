"""The search page in Chromium: a Japanese query finds the messages as the workspace's own
processes indexed them (beat and the nudge after a sync), highlights the match, runs nothing a
message carries, and opens a result in its place in the timeline. Its screenshot is the README's."""

import shutil
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.e2e.conftest import open_shared_room

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
TRAP = """
window.__xss = [];
for (const name of ["alert", "confirm", "prompt"]) {
  window[name] = (...args) => window.__xss.push(name + ":" + args.join(","));
}
"""


def test_japanese_search_highlights_and_opens_the_message_in_context(
    page, workspace, matrix_user_factory, bob, artifacts
):
    alice = matrix_user_factory()
    page.add_init_script(TRAP)
    room_id = open_shared_room(page, workspace, alice, bob, "Planning")
    for body in ("おはようございます", "Agenda draft is in the shared folder"):
        bob.send_event(room_id, "m.room.message", {"msgtype": "m.text", "body": body})
    bob.send_event(
        room_id,
        "m.room.message",
        {
            "msgtype": "m.text",
            "body": "<img src=x onerror=alert('search')> 会議の資料です",
            "format": "org.matrix.custom.html",
            "formatted_body": "<img src=x onerror=alert('search')><b>会議</b>の資料です",
        },
    )
    bob.send_event(room_id, "m.room.message", {"msgtype": "m.text", "body": "明日の会議は10時です"})
    bob.send_event(room_id, "m.room.message", {"msgtype": "m.text", "body": "了解しました"})
    page.wait_for_selector("text=了解しました")

    page.click("text=Search messages")
    page.fill("#search-q", "会議")  # htmx asks for the results as the person types
    # Indexed by the workspace's worker (nudged after the sync, beat every 10 s): ask again
    # until both are there.
    for _ in range(60):
        if page.locator(".search-hit").count() == 2:
            break
        page.wait_for_timeout(1000)
        page.goto(f"{workspace.url}/search/?q={quote('会議')}")
    hits = page.locator(".search-hit")
    assert hits.count() == 2
    assert hits.nth(0).inner_text().count("会議") == 1
    assert page.locator(".search-hit mark").all_inner_texts() == ["会議", "会議"]
    assert "<img src=x onerror=alert('search')>" in hits.nth(1).inner_text()  # shown as text
    assert page.locator(".search-hits img").count() == 0
    page.screenshot(path=str(artifacts / "search.png"))
    shutil.copy(artifacts / "search.png", ROOT / "docs" / "screenshots" / "search.png")

    hits.nth(0).locator("a").click()
    page.wait_for_url(f"**/rooms/{quote(room_id, safe='!:')}/messages/**")
    target = page.locator(".message-context .event:target")
    assert "明日の会議は10時です" in target.inner_text()
    timeline = page.locator(".message-context .timeline").inner_text()
    assert "おはようございます" in timeline and "了解しました" in timeline
    page.screenshot(path=str(artifacts / "search-context.png"))
    assert page.evaluate("window.__xss") == []
    assert page.errors == []
