"""Sign-in -> room list visible, in headless Chromium, for a first sign-in and a returning person
(target: <= 300 ms; the first sign-in lands on the room list at once and shows rooms as they arrive).

The workspace runs as in production (daphne, a Celery sync worker, beat) against a loopback Synapse.
Each person is already in `--rooms` rooms on the homeserver before signing in here for the first
time. Times are from the browser's clock, from the click on "Sign in":
- page: the room list page is shown (its loading state, on a first sign-in);
- first room: the first of the person's rooms is listed;
- all rooms: every one of them is listed (on a first sign-in: the end of the first sync).

    .venv/bin/python -m bench.sign_in [--people 5] [--rooms 8]
"""

import argparse
import os
import statistics
import sys
import uuid
from pathlib import Path

from bench.common import percentile, register, start_services
from tests.e2e.chromium import CHROMIUM, CHROMIUM_ARGS
from webclient.embedded.processes import ProcessGroup, manage, wait_http
from webclient.embedded.synapse import free_port

ROOT = Path(__file__).resolve().parent.parent

# Stamps, on the browser's clock, when the room list page shows, when the first of the expected
# rooms is listed and when all are. Installed before the sign-in page's form is submitted; the
# stamps survive the navigation in sessionStorage.
WATCH = """
(names) => {
  const stamp = (key) => {
    if (!sessionStorage.getItem(key)) sessionStorage.setItem(key, String(performance.timeOrigin + performance.now()));
  };
  const check = () => {
    const list = document.getElementById("room-list");
    if (!list) return;
    stamp("bench-page");
    const text = list.textContent;
    const shown = names.filter((name) => text.includes(name)).length;
    if (shown > 0) stamp("bench-first");
    if (shown === names.length) stamp("bench-all");
  };
  check();
  new MutationObserver(check).observe(document, {childList: true, subtree: true});
}
"""


def rooms_for(synapse_url: str, creator, person, count: int) -> list[str]:
    """`count` named rooms the person has joined on the homeserver, one message in each."""
    from accounts.matrix import client_api
    from accounts.matrix.http import matrix_request, quote

    names = []
    for n in range(count):
        name = f"Room {n} {uuid.uuid4().hex[:4]}"
        room = matrix_request(
            synapse_url,
            "POST",
            "/_matrix/client/v3/createRoom",
            token=creator.access_token,
            body={"name": name, "invite": [person.user_id]},
        )
        client_api.join_room(
            synapse_url, access_token=person.access_token, room_id_or_alias=room["room_id"]
        )
        matrix_request(
            synapse_url,
            "PUT",
            f"/_matrix/client/v3/rooms/{quote(room['room_id'])}/send/m.room.message/t1",
            token=creator.access_token,
            body={"msgtype": "m.text", "body": f"welcome to {name}"},
        )
        names.append(name)
    return names


def sign_in_timed(browser, base: str, localpart: str, password: str, names: list[str]) -> dict:
    """Sign in from a fresh browser context; ms from the click to each stamp."""
    context = browser.new_context()
    page = context.new_page()
    page.add_init_script(f"({WATCH})({names!r})")
    page.goto(base + "/accounts/login/")
    page.fill("#id_username", localpart)
    page.fill("#id_password", password)
    clicked = page.evaluate(
        "() => { const t = performance.timeOrigin + performance.now();"
        " document.querySelector('button[type=submit]').click(); return t; }"
    )
    page.wait_for_url(base + "/")
    deadline_ms = 60_000
    waited = 0
    while page.evaluate("() => sessionStorage.getItem('bench-all')") is None:
        if waited > deadline_ms:
            raise RuntimeError(f"{localpart}'s rooms were not all listed within 60 s")
        page.wait_for_timeout(20)
        waited += 20
    stamps = page.evaluate(
        "() => ['bench-page', 'bench-first', 'bench-all'].map((k) => Number(sessionStorage.getItem(k)))"
    )
    # Where the time went, from the landing page's navigation entry: the sign-in POST (with its
    # redirect), then the room list page's request until its first and last byte.
    parts = page.evaluate(
        "() => { const n = performance.getEntriesByType('navigation')[0];"
        " return [n.redirectEnd - n.startTime, n.responseStart - n.requestStart,"
        " n.responseEnd - n.startTime]; }"
    )
    page.evaluate("() => document.querySelector('.sidebar-head form').requestSubmit()")
    # The sign-in page, from the sign-out's redirect or from the page's own "signed out" notice
    # when the websocket's close comes first (then with ?next=).
    page.wait_for_url(lambda url: url.startswith(base + "/accounts/login/"))
    context.close()
    timed = dict(zip(("page", "first", "all"), (stamp - clicked for stamp in stamps), strict=True))
    return timed | dict(zip(("post", "page_server", "page_loaded"), parts, strict=True))


def line(label: str, values: list[float]) -> str:
    return (
        f"{label:<38} p50 {statistics.median(values):7.0f} ms   "
        f"p95 {percentile(values, 0.95):7.0f} ms   max {max(values):7.0f} ms   n={len(values)}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=5)
    parser.add_argument("--rooms", type=int, default=8)
    parser.add_argument("--returns", type=int, default=3, help="returning sign-ins per person")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    services = start_services()
    port = free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "webclient.settings.embedded",
        "WEBCLIENT_DATA_DIR": str(services.data_dir),
        "REDIS_URL": services.redis_url,
        "CELERY_BROKER_URL": os.environ.get("BENCH_BROKER_URL")
        or services.redis_url.rsplit("/", 1)[0] + "/8",
        "CHANNELS_PREFIX": f"bench-{uuid.uuid4().hex[:6]}",
        "MATRIX_HOMESERVER_URL": services.synapse.url,
        "MATRIX_REGISTRATION_SHARED_SECRET": services.synapse.shared_secret,
        "SYNC_RECONCILE_SECONDS": "2",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
    }
    group = ProcessGroup(cwd=ROOT, env=env, log_dir=services.data_dir / "logs")
    first, returning = [], []
    try:
        group.run(*manage("migrate", "-v0"))
        group.run(*manage("collectstatic", "--noinput", "-v0"))
        web = group.start_workspace(host="127.0.0.1", port=port, sync_threads=4, name=str(port))
        base = f"http://127.0.0.1:{port}"
        wait_http(base + "/accounts/login/", web)
        creator = register(services.synapse, "creator")[2]
        people = []
        for _ in range(args.people):
            localpart, password, session = register(services.synapse, "signin")
            names = rooms_for(services.synapse.url, creator, session, args.rooms)
            people.append((localpart, password, names))
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            for localpart, password, names in people:
                first.append(sign_in_timed(browser, base, localpart, password, names))
                for _ in range(args.returns):
                    returning.append(sign_in_timed(browser, base, localpart, password, names))
            browser.close()
    finally:
        group.stop()
        services.stop()
    print(f"{args.people} people, each in {args.rooms} rooms; ms from the click on Sign in")
    for label, runs in (("first sign-in", first), ("returning", returning)):
        for key, what in (("page", "room list page shown"), ("first", "first room listed")):
            print(line(f"{label}: {what}", [run[key] for run in runs]))
        print(line(f"{label}: all rooms listed", [run["all"] for run in runs]))
        for key, what in (
            ("post", "  sign-in POST + redirect"),
            ("page_server", "  room list page: request to 1st byte"),
            ("page_loaded", "  room list page: last byte"),
        ):
            print(line(f"{label}: {what}", [run[key] for run in runs]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
