"""Latency of the workspace's live path against a raw matrix-nio client, measured like for like.

Two figures, each next to its raw baseline measured in the same run, message by message in a
shuffled order, against a loopback Synapse:

  (a) peer -> us:  a peer's send -> our page's DOM (through the sync host, ingest, notify, daphne,
      the websocket), against the same peer's send -> a raw nio receiver's event callback. The
      raw receiver is already long-polling /sync (nio's sync_forever), as a real client is.
  (b) us -> peer:  our composer's Enter -> the peer's callback (the POST, the outbox, the nudge,
      the sync host's PUT), against a raw nio client's room_send -> the same peer's callback.

The peer is one long-polling nio client in both rooms; our room and the raw room hold the same
number of members (`--room-size`). Times are wall-clock milliseconds: Python's for nio, the page's
own (performance.timeOrigin + now(), offset to Python's clock measured before each repetition).
Each repetition yields a p95 ratio per figure; the bench reports the median over repetitions.
Targets (issue 9): (a) p95 <= 1.3x raw, (b) p95 <= 1.5x raw; and under CPU load (`--busy`: one
CPU-burning process per core, for both paths alike) the send path degrades no more than the raw
client does.

The workspace runs as in production (daphne, a Celery sync worker, beat) on SQLite and/or a
fresh PostgreSQL database (on the server of WEBCLIENT_TEST_POSTGRES_URL, or --postgres-url).

    .venv/bin/python -m bench.latency [--db sqlite|postgresql|both] [--load quiet|busy|both]
                                      [--busy] [--messages 30] [--repetitions 3] [--room-size 2]
"""

import argparse
import asyncio
import contextlib
import os
import random
import signal
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from nio import AsyncClient, AsyncClientConfig, RoomMessageText

from accounts.matrix.http import matrix_request, quote
from bench.common import (
    broker_url,
    cpu_load,
    percentile,
    postgres_database,
    register,
    start_services,
)
from tests.e2e.chromium import CHROMIUM, CHROMIUM_ARGS
from webclient.embedded.processes import ProcessGroup, free_port, manage, wait_http

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT_S = 30.0
WARM_UP = 3  # iterations before each load's repetitions, not counted

# Installed in our page: the arrival of each message body in the timeline, and the Enter key.
PAGE_PROBES = """
window.__arrivals = {};
new MutationObserver(() => {
  document.querySelectorAll("ol.timeline li.event .body").forEach((el) => {
    const text = el.textContent.trim();
    if (text.startsWith("lat-") && !(text in window.__arrivals)) {
      window.__arrivals[text] = performance.timeOrigin + performance.now();
    }
  });
}).observe(document.body, {childList: true, subtree: true});
window.__enterAt = 0;
document.addEventListener("keydown", (event) => {
  if (event.key === "Enter") window.__enterAt = performance.timeOrigin + performance.now();
}, true);
"""


def now_ms() -> float:
    return time.time() * 1000


class NioClients:
    """Raw matrix-nio clients on a loop thread of their own, each long-polling /sync with a
    callback that stamps every text message's arrival (body -> wall-clock ms)."""

    def __init__(self, homeserver: str) -> None:
        self.homeserver = homeserver
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        self.clients: dict[str, AsyncClient] = {}
        self.syncs: list = []
        self.arrivals: dict[str, dict[str, float]] = {}
        self.arrived = threading.Condition()

    def run(self, coro, timeout: float = 60.0):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def start(self, name: str, session) -> None:
        self.run(self._start(name, session))

    async def _start(self, name: str, session) -> None:
        client = AsyncClient(
            self.homeserver, session.user_id, config=AsyncClientConfig(store_sync_tokens=False)
        )
        client.restore_login(session.user_id, session.device_id, session.access_token)
        self.clients[name] = client
        seen = self.arrivals.setdefault(name, {})

        async def on_text(_room, event: RoomMessageText) -> None:
            if event.sender != client.user_id and event.body.startswith("lat-"):
                stamp = now_ms()
                with self.arrived:
                    seen.setdefault(event.body, stamp)
                    self.arrived.notify_all()

        client.add_event_callback(on_text, RoomMessageText)
        self.syncs.append(self.loop.create_task(client.sync_forever(timeout=30_000)))
        await asyncio.wait_for(client.synced.wait(), 60)

    def send(self, name: str, room_id: str, body: str) -> float:
        """Send a text message; returns when it was sent (wall-clock ms, just before the PUT)."""
        return self.run(self._send(name, room_id, body))

    async def _send(self, name: str, room_id: str, body: str) -> float:
        started = now_ms()
        await self.clients[name].room_send(
            room_id, "m.room.message", {"msgtype": "m.text", "body": body}
        )
        return started

    def wait_arrival(self, name: str, body: str) -> float:
        seen = self.arrivals[name]
        with self.arrived:
            if not self.arrived.wait_for(lambda: body in seen, TIMEOUT_S):
                raise TimeoutError(f"{name} never received {body}")
            return seen[body]

    def close(self) -> None:
        for task in self.syncs:
            self.loop.call_soon_threadsafe(task.cancel)
        for client in self.clients.values():
            self.run(client.close())
        self.loop.call_soon_threadsafe(self.loop.stop)


@dataclass
class Repetition:
    """One repetition's samples (ms): (a) peer -> us, (b) us -> peer, ours and raw."""

    a_ours: list[float] = field(default_factory=list)
    a_raw: list[float] = field(default_factory=list)
    b_ours: list[float] = field(default_factory=list)
    b_raw: list[float] = field(default_factory=list)

    def ratio(self, figure: str) -> float:
        ours, raw = getattr(self, f"{figure}_ours"), getattr(self, f"{figure}_raw")
        return percentile(ours, 0.95) / percentile(raw, 0.95)


class Bench:
    """Our page and the raw clients, joined to two rooms of the same size with one peer."""

    def __init__(self, page, nio: NioClients, ours_room: str, raw_room: str) -> None:
        self.page, self.nio = page, nio
        self.ours_room, self.raw_room = ours_room, raw_room
        self.offset = 0.0  # the page's clock minus Python's, ms

    def measure_offset(self) -> None:
        """The page's wall clock against Python's: the sample with the shortest round trip."""
        best = None
        for _ in range(15):
            before = now_ms()
            stamp = self.page.evaluate("() => performance.timeOrigin + performance.now()")
            after = now_ms()
            if best is None or after - before < best[0]:
                best = (after - before, stamp - (before + after) / 2)
        self.offset = best[1]

    def page_time(self, expression: str) -> float:
        return self.page.evaluate(expression) - self.offset

    def a_ours(self, body: str) -> float:
        sent = self.nio.send("peer", self.ours_room, body)
        self.page.wait_for_function(
            "(body) => body in window.__arrivals", arg=body, timeout=TIMEOUT_S * 1000
        )
        return self.page.evaluate("(body) => window.__arrivals[body]", body) - self.offset - sent

    def a_raw(self, body: str) -> float:
        sent = self.nio.send("peer", self.raw_room, body)
        return self.nio.wait_arrival("raw", body) - sent

    def b_ours(self, body: str) -> float:
        self.page.fill("#composer-body", body)
        self.page.press("#composer-body", "Enter")
        entered = self.page_time("() => window.__enterAt")
        return self.nio.wait_arrival("peer", body) - entered

    def b_raw(self, body: str) -> float:
        sent = self.nio.send("raw", self.raw_room, body)
        return self.nio.wait_arrival("peer", body) - sent

    def iteration(self, into: Repetition | None, rng: random.Random) -> None:
        """One sample of each of the four paths, in a shuffled order with short pauses."""
        paths = ["a_ours", "a_raw", "b_ours", "b_raw"]
        rng.shuffle(paths)
        for path in paths:
            time.sleep(rng.uniform(0.03, 0.08))  # let the previous message's echoes settle
            value = getattr(self, path)(f"lat-{path}-{uuid.uuid4().hex[:8]}")
            if into is not None:
                getattr(into, path).append(value)


@contextlib.contextmanager
def database(kind: str, data_dir: Path, postgres_url: str) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{data_dir / 'bench.sqlite3'}"
    else:
        with postgres_database(postgres_url) as url:
            yield url


def join_room(homeserver: str, session, room_id: str) -> None:
    matrix_request(
        homeserver,
        "POST",
        f"/_matrix/client/v3/join/{quote(room_id)}",
        token=session.access_token,
        body={},
    )


def run_on(kind: str, services, args) -> dict[str, list[Repetition]]:
    """Start the workspace on one database, set the rooms up, and measure each load."""
    from playwright.sync_api import sync_playwright

    data_dir = services.data_dir / kind
    data_dir.mkdir()
    homeserver = services.synapse.url
    results: dict[str, list[Repetition]] = {}
    with database(kind, data_dir, args.postgres_url) as database_url:
        port = free_port()
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "webclient.settings.embedded",
            "WEBCLIENT_DATA_DIR": str(data_dir),
            "DATABASE_URL": database_url,
            "REDIS_URL": services.redis_url,
            "CELERY_BROKER_URL": broker_url(services.redis_url),
            "CHANNELS_PREFIX": f"bench-{uuid.uuid4().hex[:6]}",
            "MATRIX_HOMESERVER_URL": homeserver,
            "MATRIX_REGISTRATION_SHARED_SECRET": services.synapse.shared_secret,
            "SYNC_RECONCILE_SECONDS": "2",
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        }
        group = ProcessGroup(cwd=ROOT, env=env, log_dir=data_dir / "logs")
        nio = NioClients(homeserver)
        try:
            group.run(*manage("migrate", "-v0"))
            group.run(*manage("collectstatic", "--noinput", "-v0"))
            web = group.start_workspace(host="127.0.0.1", port=port, sync_threads=4, name=kind)
            base = f"http://127.0.0.1:{port}"
            wait_http(base + "/accounts/login/", web)
            me_localpart, me_password, me = register(services.synapse, "me")
            peer, raw = register(services.synapse, "peer")[2], register(services.synapse, "raw")[2]
            nio.start("peer", peer)
            nio.start("raw", raw)
            fillers = [register(services.synapse, "member")[2] for _ in range(args.room_size - 2)]
            rooms = {}
            for name, member in (("ours", me), ("raw", raw)):
                rooms[name] = nio.run(
                    nio.clients["peer"].room_create(
                        name=f"Latency {name}",
                        invite=[member.user_id, *(f.user_id for f in fillers)],
                    )
                ).room_id
                for filler in fillers:
                    join_room(homeserver, filler, rooms[name])
            nio.run(nio.clients["raw"].join(rooms["raw"]))
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                # wait_for_function evals its predicate in the page, which the workspace's CSP
                # forbids; the policy changes no timing, so the bench bypasses it.
                page = browser.new_context(bypass_csp=True).new_page()
                page.goto(base + "/accounts/login/")
                page.fill("#id_username", me_localpart)
                page.fill("#id_password", me_password)
                page.click("button[type=submit]")
                page.click("#room-list >> text=Latency ours", timeout=60_000)
                page.click("text=Accept")
                page.wait_for_selector("#composer-body", timeout=60_000)
                page.reload()
                page.wait_for_selector("#composer-body")
                page.evaluate(PAGE_PROBES)
                bench = Bench(page, nio, rooms["ours"], rooms["raw"])
                rng = random.Random(args.seed)
                for load in args.loads:
                    with cpu_load() if load == "busy" else contextlib.nullcontext():
                        bench.measure_offset()
                        for _ in range(WARM_UP):
                            bench.iteration(None, rng)
                        repetitions = results[load] = []
                        for rep in range(args.repetitions):
                            bench.measure_offset()
                            repetition = Repetition()
                            for _ in range(args.messages):
                                bench.iteration(repetition, rng)
                            repetitions.append(repetition)
                            print(
                                f"  {kind} {load} repetition {rep + 1}: p95 ratio"
                                f" (a) {repetition.ratio('a'):.2f}  (b) {repetition.ratio('b'):.2f}",
                                flush=True,
                            )
                browser.close()
        finally:
            nio.close()
            group.stop()
    return results


def report(kind: str, load: str, repetitions: list[Repetition]) -> None:
    """Pooled p50/p95 of each path, the per-repetition p95 ratios and their median."""

    def pooled(path: str) -> list[float]:
        return [v for r in repetitions for v in getattr(r, path)]

    print(f"\n{kind}, {load} machine ({len(repetitions)} repetitions):")
    labels = {
        "a": ("peer send -> our page's DOM", "peer send -> raw nio callback"),
        "b": ("our Enter -> peer callback", "raw nio send -> peer callback"),
    }
    for figure, (ours_label, raw_label) in labels.items():
        for label, path in ((ours_label, f"{figure}_ours"), (raw_label, f"{figure}_raw")):
            values = pooled(path)
            print(
                f"  ({figure}) {label:<32} p50 {statistics.median(values):7.1f} ms"
                f"   p95 {percentile(values, 0.95):7.1f} ms   n={len(values)}"
            )
        ratios = [r.ratio(figure) for r in repetitions]
        print(
            f"  ({figure}) p95 ratio per repetition {' / '.join(f'{x:.2f}' for x in ratios)}"
            f"   median {statistics.median(ratios):.2f}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--load", choices=("quiet", "busy", "both"), default="quiet")
    parser.add_argument("--busy", action="store_true", help="same as --load busy")
    parser.add_argument("--messages", type=int, default=30, help="per path and repetition")
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--room-size", type=int, default=2, help="members of each room (>= 2)")
    parser.add_argument("--seed", type=int, default=9)
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get(
            "WEBCLIENT_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test"
        ),
        help="a database URL on the server to create a throwaway database on",
    )
    args = parser.parse_args()
    # A stopped run still cleans up (its throwaway PostgreSQL database, browsers, processes).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    load = "busy" if args.busy else args.load
    args.loads = ["quiet", "busy"] if load == "both" else [load]
    args.room_size = max(2, args.room_size)
    kinds = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    services = start_services()
    results = {}
    try:
        for kind in kinds:
            results[kind] = run_on(kind, services, args)
    finally:
        services.stop()
    print(
        f"\n{args.messages} messages per path and repetition, rooms of {args.room_size};"
        " targets: (a) p95 ratio <= 1.3, (b) <= 1.5"
    )
    for kind, by_load in results.items():
        for load_name, repetitions in by_load.items():
            report(kind, load_name, repetitions)
    return 0


if __name__ == "__main__":
    sys.exit(main())
