"""What the room page weighs, for a room of 500 messages: DOM nodes per message (counted by a
real headless Chromium on the served HTML), compressed HTML bytes per message and the server's
time to first byte. Targets (issue 9): ≤ 40 nodes and ≤ 800 gzip bytes per message.

The room is filled in a throwaway SQLite database (or DATABASE_URL) as ingest would fill it: half
the messages our own, every fifth formatted, every seventh a reply, every sixth with a reaction,
event ids random like a homeserver's.
The page is fetched through Django's test client with gzip accepted (the BREACH-padded
GZipMiddleware of production); a non-streaming response is whole when its first byte leaves, so
"time to first byte" is the full server time, without the network. On a busy machine it mostly
measures the wait for a core; "server CPU per page" (this process's CPU time) does not.

    .venv/bin/python -m bench.page_weight [--messages 500] [--requests 30] [--no-browser]
"""

import argparse
import gzip
import os
import statistics
import sys
import tempfile
import time
from html.parser import HTMLParser

VOID = {"area", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}


class TimelineNodes(HTMLParser):
    """Counts what a browser builds inside the room's timeline (<ol data-events-url>): elements
    and text nodes, whitespace between tags included as the DOM keeps it, and the messages."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.depth = 0
        self.nodes = self.messages = 0
        self.in_text = False

    def handle_starttag(self, tag, attrs) -> None:
        attributes = dict(attrs)
        self.in_text = False
        if not self.depth:
            if tag == "ol" and "data-events-url" in attributes:
                self.depth = 1
            return
        self.nodes += 1
        if tag == "li" and "event" in (attributes.get("class") or "").split():
            self.messages += 1
        if tag not in VOID:
            self.depth += 1

    def handle_startendtag(self, tag, attrs) -> None:
        self.in_text = False
        if self.depth:
            self.nodes += 1

    def handle_endtag(self, tag) -> None:
        self.in_text = False
        if self.depth and tag not in VOID:
            self.depth -= 1

    def handle_data(self, data) -> None:
        if self.depth and data and not self.in_text:
            self.nodes += 1
            self.in_text = True


def timeline_nodes(html: str) -> TimelineNodes:
    counter = TimelineNodes()
    counter.feed(html)
    counter.close()
    return counter


WORDS = [
    "the",
    "release",
    "is",
    "on",
    "track",
    "we",
    "ship",
    "friday",
    "after",
    "review",
    "tests",
    "pass",
    "deploy",
    "staging",
    "please",
    "check",
    "numbers",
    "budget",
    "meeting",
    "moved",
    "to",
    "tuesday",
    "customer",
    "asked",
    "about",
    "invoice",
    "server",
    "logs",
    "show",
    "errors",
    "since",
    "noon",
    "fixed",
    "it",
    "thanks",
    "a",
    "lot",
    "lunch",
    "at",
    "twelve",
    "design",
    "draft",
    "attached",
    "see",
    "comments",
    "on",
    "the",
    "plan",
    "who",
    "can",
    "take",
    "this",
    "ticket",
    "tomorrow",
    "morning",
]


def fill_room(account, size: int, room_id: str = "!weight:hs", seed: int = 9):
    """A room of `size` messages as ingest stores them (events, this account's timeline rows,
    members' state), in a few bulk inserts. Event ids are random like a homeserver's (they do not
    compress), bodies are a few words each, timestamps a few minutes apart."""
    import random

    from rooms.models import Event, Membership, Room, RoomState, TimelineEntry

    rng = random.Random(seed)

    def event_id() -> str:
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
        return "$" + "".join(rng.choice(alphabet) for _ in range(43))

    room = Room.objects.create(room_id=room_id)
    Membership.objects.create(account=account, room=room, membership="join", display_name="Team")
    for sender, name in ((account.mxid, "Me"), ("@bob:hs", "Bob Example")):
        RoomState.objects.create(
            room=room,
            event_type="m.room.member",
            state_key=sender,
            event_id=event_id(),
            sender=sender,
            content={"membership": "join", "displayname": name},
        )
    ts = 1_700_000_000_000
    events, previous = [], ""
    for n in range(size):
        ts += rng.randint(5_000, 600_000)
        words = rng.sample(WORDS, rng.randint(4, 14))
        content = {"msgtype": "m.text", "body": " ".join(words).capitalize()}
        if n % 5 == 0:
            content |= {
                "format": "org.matrix.custom.html",
                "formatted_body": f"<p>{' '.join(words[:2])} <strong>{' '.join(words[2:])}</strong>"
                "</p>",
            }
        reply_to = ""
        if n % 7 == 3:
            reply_to = previous
            content["m.relates_to"] = {"m.in_reply_to": {"event_id": reply_to}}
        previous = event_id()
        events.append(
            Event(
                event_id=previous,
                room=room,
                sender=account.mxid if n % 2 else "@bob:hs",
                event_type="m.room.message",
                origin_server_ts=ts,
                raw={"type": "m.room.message", "content": content},
                html=content.get("formatted_body", ""),
                reply_to=reply_to,
            )
        )
        if n % 6 == 0:
            relation = {"rel_type": "m.annotation", "event_id": previous, "key": "👍"}
            events.append(
                Event(
                    event_id=event_id(),
                    room=room,
                    sender="@bob:hs",
                    event_type="m.reaction",
                    origin_server_ts=ts + 1,
                    raw={"type": "m.reaction", "content": {"m.relates_to": relation}},
                    rel_type="m.annotation",
                    relates_to=previous,
                )
            )
    Event.objects.bulk_create(events)
    TimelineEntry.objects.bulk_create(
        TimelineEntry(account=account, room=room, event=e, origin_server_ts=e.origin_server_ts)
        for e in Event.objects.filter(room=room).order_by("origin_server_ts", "id")
    )
    return room


def chromium_nodes(html: str) -> tuple[int, int, int]:
    """(timeline nodes, messages, whole document nodes) as Chromium builds them from the HTML."""
    from playwright.sync_api import sync_playwright

    from tests.e2e.chromium import CHROMIUM, CHROMIUM_ARGS

    count = """() => {
      const walk = (root) => {
        const walker = document.createTreeWalker(root, NodeFilter.SHOW_ALL);
        let n = 0;
        while (walker.nextNode()) n++;
        return n;
      };
      const list = document.querySelector("ol.timeline[data-events-url]");
      return [walk(list), list.querySelectorAll("li.event").length, walk(document) + 1];
    }"""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.route("**/*", lambda route: route.abort())  # no scripts, styles or images needed
        page.set_content(html, wait_until="domcontentloaded")
        nodes, messages, document_nodes = page.evaluate(count)
        browser.close()
    return nodes, messages, document_nodes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=500)
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--no-browser", action="store_true", help="count nodes by parsing only")
    args = parser.parse_args()

    os.environ.setdefault("WEBCLIENT_DATA_DIR", tempfile.mkdtemp(prefix="webclient-bench-"))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webclient.settings.embedded")
    os.environ.setdefault("DJANGO_ALLOWED_HOSTS", "testserver")
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client

    from accounts.models import MatrixAccount

    call_command("migrate", verbosity=0)
    call_command("collectstatic", interactive=False, verbosity=0)
    user = get_user_model().objects.create_user(username="weigher")
    account = MatrixAccount.objects.create(
        user=user,
        homeserver_url="http://127.0.0.1:9",
        mxid="@weigher:hs",
        device_id="D",
        access_token="t",
    )
    room = fill_room(account, args.messages)
    client = Client()
    client.force_login(user)
    url = f"/rooms/{room.room_id}/"
    client.get(url, HTTP_ACCEPT_ENCODING="gzip")  # warm caches and templates
    timings, cpu, sizes = [], [], []
    for _ in range(args.requests):
        started, started_cpu = time.perf_counter(), time.process_time()
        response = client.get(url, HTTP_ACCEPT_ENCODING="gzip")
        timings.append((time.perf_counter() - started) * 1000)
        cpu.append((time.process_time() - started_cpu) * 1000)
        assert response.status_code == 200 and response["Content-Encoding"] == "gzip"
        sizes.append(len(response.content))
    html = gzip.decompress(response.content).decode()
    parsed = timeline_nodes(html)
    timings.sort()
    packed = statistics.median(sizes)
    print(f"database: {connection.vendor}; room of {args.messages} messages")
    print(f"  messages on the page            {parsed.messages}")
    print(f"  HTML                            {len(html.encode()):,} bytes")
    print(f"  HTML, gzip (BREACH-padded)      {packed:,.0f} bytes")
    print(
        f"  gzip bytes per message          {packed / parsed.messages:.0f} (whole page / messages)"
    )
    print(f"  timeline nodes per message      {parsed.nodes / parsed.messages:.1f} (parsed)")
    if not args.no_browser:
        nodes, messages, document_nodes = chromium_nodes(html)
        print(f"  timeline nodes per message      {nodes / messages:.1f} (Chromium)")
        print(f"  document nodes                  {document_nodes:,} (Chromium)")
    p95 = timings[max(0, round(0.95 * (len(timings) - 1)))]
    print(f"  time to first byte p50 / p95    {statistics.median(timings):.1f} / {p95:.1f} ms")
    # CPU time of this process per page: what the page costs the server, whatever else runs.
    print(f"  server CPU per page, p50        {statistics.median(cpu):.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
