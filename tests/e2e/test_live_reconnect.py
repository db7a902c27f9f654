"""The page's websocket always comes back, whatever code closed it, and catches up on what it
missed; only a "signed out" close sends the page to the login page instead.

The sockets are closed from the server side, through the workspace's own channel layer (a typed
close message to the page's sign-in group): Playwright's set_offline leaves open websockets alone."""

import asyncio
from concurrent.futures import ThreadPoolExecutor

import pytest
from channels_redis.core import RedisChannelLayer

from accounts import live
from tests.e2e.conftest import Workspace, open_shared_room, sign_in

pytestmark = pytest.mark.e2e

# Counts the page's websocket opens and the codes it was closed with (installed before any script).
RECORD_SOCKET = """
window.__ws = { opens: 0, closes: [] };
document.addEventListener("htmx:wsOpen", () => { window.__ws.opens += 1; });
document.addEventListener("htmx:wsClose", (e) => { window.__ws.closes.push(e.detail.event.code); });
"""


def session_key(page) -> str:
    return next(c["value"] for c in page.context.cookies() if c["name"] == "sessionid")


def close_from_server(workspace: Workspace, redis_url: str, session_key: str, code: int) -> None:
    """Send the workspace's consumers of one sign-in a close with `code`."""

    async def send() -> None:
        layer = RedisChannelLayer(hosts=[redis_url], prefix=workspace.channels_prefix)
        try:
            await layer.group_send(live.session_group(session_key), live.close_message(code))
        finally:
            await layer.close_pools()

    with ThreadPoolExecutor(1) as pool:  # Playwright's sync API owns this thread's event loop
        pool.submit(asyncio.run, send()).result()


def test_page_reconnects_after_any_close_and_shows_what_was_sent_meanwhile(
    page, workspace, redis_url, matrix_user_factory, bob
):
    page.add_init_script(RECORD_SOCKET)
    alice = matrix_user_factory()
    room_id = open_shared_room(page, workspace, alice, bob, "Reconnects")
    page.wait_for_function("window.__ws.opens >= 1")
    for round_, code in enumerate((1000, 4000), start=1):
        opens = page.evaluate("window.__ws.opens")
        close_from_server(workspace, redis_url, session_key(page), code)
        page.wait_for_function(f"window.__ws.closes.includes({code})")
        body = f"sent while closed with {code}"
        bob.send(room_id, body)
        page.wait_for_selector(f"ol.timeline >> text={body}", timeout=30_000)
        page.wait_for_function(f"window.__ws.opens > {opens}")
        assert page.locator("ol.timeline li", has_text=body).count() == 1
        assert page.evaluate("window.__ws.closes").count(code) == 1, round_
    assert page.errors == []

    # The sign-in is gone by the time the page reconnects: the socket says so (4401), and so does
    # the catch-up that lands on the sign-in page, whichever comes first; the page goes to sign in.
    key = session_key(page)
    page.context.clear_cookies()
    close_from_server(workspace, redis_url, key, 1000)
    page.wait_for_url("**/accounts/login/?next=**", timeout=15_000)


def test_signing_out_in_one_tab_sends_the_other_tabs_to_the_login_page(
    browser, page, workspace, matrix_user_factory, bob
):
    alice = matrix_user_factory()
    room_id = open_shared_room(page, workspace, alice, bob, "Signed out")
    page.wait_for_selector("ol.timeline")
    # Another browser where Alice is signed in too: that sign-in stays live.
    elsewhere = browser.new_context().new_page()
    try:
        sign_in(elsewhere, workspace, alice)
        elsewhere.goto(page.url)
        elsewhere.wait_for_selector("ol.timeline")

        other_tab = page.context.new_page()
        other_tab.goto(workspace.url + "/")
        other_tab.click("text=Sign out")
        other_tab.wait_for_url("**/accounts/login/")

        page.wait_for_url("**/accounts/login/?next=**", timeout=15_000)
        assert "/accounts/login/" in page.url

        bob.send(room_id, "still here for the other sign-in")
        elsewhere.wait_for_selector("ol.timeline >> text=still here for the other sign-in")
        assert "/accounts/login/" not in elsewhere.url
    finally:
        elsewhere.context.close()
    assert page.errors == []
