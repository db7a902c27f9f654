"""Every corpus payload, as message body, formatted body, sender name, file name, room name and topic,
rendered by our templates and loaded in Chromium with htmx: nothing runs, nothing active survives
(our own hx-disable on each message body is the one htmx attribute expected there)."""

from pathlib import Path

import pytest
from django.template.loader import render_to_string

from rooms.models import Membership, Room
from rooms.rendering import sanitize_html
from rooms.selectors import MediaRef, Sender, TimelineItem
from tests.fixtures.xss_corpus import PAYLOADS

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
TRAP = """
window.__xss = [];
for (const name of ["alert", "confirm", "prompt", "print"]) {
  window[name] = (...args) => window.__xss.push(name + ":" + args.join(","));
}
"""
ACTIVE_CONTENT = """
() => Array.from(document.querySelectorAll(".body, .body *, .sender, .room-name, .topic, h1"))
  .flatMap((el) => Array.from(el.attributes)
    .filter((a) => !(el.classList.contains("body") && a.name === "hx-disable"))
    .filter((a) => /^(on|hx-|data-hx-)/i.test(a.name)
                   || /^\\s*(javascript|vbscript|data):/i.test(a.value))
    .map((a) => el.tagName + " " + a.name + "=" + a.value))
"""

# Active content placed on purpose outside anything we render: proves the trap catches what runs.
CANARIES = ["alert:canary-onerror", "confirm:canary-ontoggle"]
CANARY_HTML = (
    "<div id='canary'><img src='data:image/png;base64,AAAA' onerror=\"alert('canary-onerror')\">"
    "<details open ontoggle=\"confirm('canary-ontoggle')\"><summary>c</summary></details></div>"
)


def timeline_items(room: Room) -> list[TimelineItem]:
    items = []
    for n, payload in enumerate(PAYLOADS):
        for variant, (body, html, name, media) in enumerate(
            [
                (payload, "", "Mallory", None),
                ("formatted", sanitize_html(payload), "Mallory", None),
                ("from a display name", "", payload, None),
                (payload, "", "Mallory", MediaRef("m.file", "hs", f"file{n}", payload, "1 kB")),
                (payload, "", "Mallory", MediaRef("m.image", "hs", f"img{n}", payload, "")),
            ]
        ):
            items.append(
                TimelineItem(
                    event_id=f"$e{n}-{variant}",
                    sender="@mallory:hs",
                    sender_name=name,
                    sender_avatar=Sender(name),
                    event_type="m.room.message",
                    body=body,
                    html=html,
                    origin_server_ts=1_700_000_000_000 + n,
                    stream_id=n * 5 + variant + 1,
                    is_own=False,
                    room_id=room.room_id,
                    media=media,
                    room_dom_id=room.dom_id,
                )
            )
    return items


def page_html() -> str:
    room = Room(room_id="!xss:hs")
    memberships = [
        Membership(
            room=Room(room_id=f"!r{n}:hs"), membership="join", display_name=payload, topic=payload
        )
        for n, payload in enumerate(PAYLOADS)
    ]
    room_list = render_to_string(
        "rooms/home.html#room-list",
        {
            "room_list": type(
                "RoomList",
                (),
                {
                    "invites": [],
                    "spaces": [],
                    "rooms": memberships,
                    "direct": [],
                    "is_empty": False,
                    "synced": True,
                },
            )(),
        },
    )
    headers = "".join(
        f"<h1>{render_to_string('rooms/live.html#text', {'text': m.display_name})}</h1>"
        f"<p class='topic'>{render_to_string('rooms/live.html#text', {'text': m.topic})}</p>"
        for m in memberships
    )
    events = render_to_string("rooms/room.html#events", {"items": timeline_items(room)})
    htmx = (ROOT / "static/vendor/htmx/htmx-2.0.11.min.js").read_text()
    return (
        f"<!doctype html><html><head><script>{TRAP}</script><script>{htmx}</script></head>"
        f'<body hx-headers=\'{{"X-CSRFToken": "t"}}\'>{room_list}{headers}'
        f"<ol class='timeline'>{events}</ol>{CANARY_HTML}</body></html>"
    )


def test_no_payload_runs_or_survives_in_chromium(browser, artifacts):
    context = browser.new_context()
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(error.message))
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.set_content(page_html(), wait_until="load")
    # The canaries run through the same trap once their events have fired; by then the payloads'
    # own onerror and ontoggle handlers have had their chance too.
    page.wait_for_function(
        "(canaries) => canaries.every((c) => window.__xss.includes(c))", arg=CANARIES
    )
    assert sorted(page.evaluate("window.__xss")) == sorted(CANARIES)
    assert page.evaluate(ACTIVE_CONTENT) == []
    assert page.locator(".body").count() == 5 * len(PAYLOADS)
    # Nothing reached out to another host or to our own endpoints on its own.
    assert [url for url in requests if not url.startswith(("data:", "about:"))] == []
    page.screenshot(path=str(artifacts / "xss-corpus.png"))
    context.close()
