"""The first sign-in lands on the room list at once, says the rooms are loading, and fills in live as
the account's first sync comes in; a returning sign-in shows the rooms straight away."""

import uuid

from accounts.matrix import client_api
from accounts.matrix.http import matrix_request
from tests.e2e.conftest import sign_in

ROOMS = 5

# Installed before every page of the context loads: what the room list showed first, and whether the
# page was ever reloaded (`loads` counts documents that ran the script).
WATCH = """
(() => {
  const loads = Number(sessionStorage.getItem("loads") || 0) + 1;
  sessionStorage.setItem("loads", String(loads));
  const check = () => {
    const list = document.getElementById("room-list");
    if (!list || sessionStorage.getItem("first-list")) return;
    sessionStorage.setItem("first-list", JSON.stringify({
      loading: Boolean(list.querySelector("[role=status]")) && list.getAttribute("aria-busy") === "true",
      text: list.textContent.replace(/\\s+/g, " ").trim(),
      rooms: list.querySelectorAll("a.room-entry").length,
    }));
  };
  check();
  new MutationObserver(check).observe(document, {childList: true, subtree: true});
})();
"""


def rooms_on_homeserver(synapse_url: str, alice, creator) -> list[str]:
    """Rooms Alice joined (through another client) before she ever signed in here."""
    names = []
    for n in range(ROOMS):
        name = f"Arrives {n} {uuid.uuid4().hex[:4]}"
        room = matrix_request(
            synapse_url,
            "POST",
            "/_matrix/client/v3/createRoom",
            token=creator.access_token,
            body={"name": name, "invite": [alice.user_id]},
        )
        client_api.join_room(
            synapse_url, access_token=alice.access_token, room_id_or_alias=room["room_id"]
        )
        names.append(name)
    return names


def test_first_sign_in_shows_loading_then_rooms_arrive_live(
    browser, workspace, synapse, matrix_user_factory, artifacts
):
    alice, creator = matrix_user_factory(), matrix_user_factory()
    names = rooms_on_homeserver(synapse.url, alice, creator)
    context = browser.new_context()
    context.add_init_script(WATCH)
    page = context.new_page()
    try:
        sign_in(page, workspace, alice)
        page.screenshot(path=str(artifacts / "first-sign-in-loading.png"))
        # The room list page came before the first sync: it said so, and listed none of the rooms.
        first = page.evaluate("() => JSON.parse(sessionStorage.getItem('first-list'))")
        assert first["loading"], first
        assert "Loading your rooms" in first["text"], first
        assert first["rooms"] == 0, first
        # Then every room arrives without a reload, and the loading notice goes.
        for name in names:
            page.wait_for_selector(f"#room-list a.room-entry:has-text('{name}')", timeout=60_000)
        page.wait_for_selector("#room-list:not([aria-busy])", timeout=30_000)
        assert page.locator("#room-list [role=status]").count() == 0
        assert page.evaluate("() => sessionStorage.getItem('loads')") == "2"  # login, then /
        page.screenshot(path=str(artifacts / "first-sign-in-loaded.png"))

        # Signing in again: the rooms are there at once, with no loading notice.
        page.click(".sidebar-head button[type=submit]")
        page.wait_for_url(workspace.url + "/accounts/login/")
        page.evaluate("() => sessionStorage.removeItem('first-list')")
        sign_in(page, workspace, alice)
        again = page.evaluate("() => JSON.parse(sessionStorage.getItem('first-list'))")
        assert not again["loading"], again
        assert again["rooms"] == ROOMS, again
    finally:
        context.close()
