"""Send -> visible latency: browser A's send to browser B's DOM, next to a raw matrix-nio peer's
send -> received measured in the same run, message by message in turn, against a loopback Synapse
(target: ratio <= 1.3 at p95).

The workspace runs as in production (daphne, a Celery sync worker, beat). Times come from the
browsers' own clocks (performance.timeOrigin + now(), same machine): A stamps the Enter key, a
MutationObserver in B stamps the message's arrival.

    .venv/bin/python -m bench.latency [--messages 100]
"""

import argparse
import asyncio
import os
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path

from nio import AsyncClient, AsyncClientConfig

from bench.common import percentile, register, start_services
from tests.e2e.chromium import CHROMIUM, CHROMIUM_ARGS
from webclient.embedded.processes import ProcessGroup, manage, wait_http
from webclient.embedded.synapse import free_port

ROOT = Path(__file__).resolve().parent.parent
OBSERVER = """
window.__arrivals = {};
new MutationObserver(() => {
  document.querySelectorAll("ol.timeline li.event .body").forEach((el) => {
    const text = el.textContent.trim();
    if (text.startsWith("lat-") && !(text in window.__arrivals)) {
      window.__arrivals[text] = performance.timeOrigin + performance.now();
    }
  });
}).observe(document.body, {childList: true, subtree: true});
"""


def summary(name: str, values: list[float]) -> str:
    return (
        f"{name:<34} p50 {statistics.median(values):7.1f} ms   "
        f"p95 {percentile(values, 0.95):7.1f} ms   n={len(values)}"
    )


class NioPair:
    """Two raw matrix-nio clients on a loop thread of their own, so their messages can alternate
    with the browsers' and both paths are measured under the same load."""

    def __init__(self, homeserver: str, sender, receiver) -> None:
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        self.clients = []
        for session in (sender, receiver):
            client = AsyncClient(
                homeserver, session.user_id, config=AsyncClientConfig(store_sync_tokens=False)
            )
            client.restore_login(session.user_id, session.device_id, session.access_token)
            self.clients.append(client)
        self.room, self.since = self._run(self._setup())

    def _run(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(60)

    async def _setup(self) -> tuple[str, str]:
        a, b = self.clients
        room = (await a.room_create(invite=[b.user_id])).room_id
        await b.join(room)
        return room, (await b.sync(timeout=0)).next_batch

    def one_message(self, n: int) -> float:
        return self._run(self._one_message(n))

    async def _one_message(self, n: int) -> float:
        a, b = self.clients
        body = f"nio-{n}-{uuid.uuid4().hex[:6]}"
        started = time.time()
        await a.room_send(self.room, "m.room.message", {"msgtype": "m.text", "body": body})
        while True:
            response = await b.sync(timeout=30000, since=self.since)
            self.since = response.next_batch
            joined = response.rooms.join.get(self.room)
            bodies = [getattr(e, "body", None) for e in joined.timeline.events] if joined else []
            if body in bodies:
                return (time.time() - started) * 1000

    def close(self) -> None:
        for client in self.clients:
            self._run(client.close())
        self.loop.call_soon_threadsafe(self.loop.stop)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    services = start_services()
    port = free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "webclient.settings.embedded",
        "WEBCLIENT_DATA_DIR": str(services.data_dir),
        "REDIS_URL": services.redis_url,
        # BENCH_BROKER_URL: a broker database of its own when several benches share one Redis.
        "CELERY_BROKER_URL": os.environ.get("BENCH_BROKER_URL")
        or services.redis_url.rsplit("/", 1)[0] + "/8",
        "CHANNELS_PREFIX": f"bench-{uuid.uuid4().hex[:6]}",
        "MATRIX_HOMESERVER_URL": services.synapse.url,
        "MATRIX_REGISTRATION_SHARED_SECRET": services.synapse.shared_secret,
        "SYNC_RECONCILE_SECONDS": "2",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
    }
    group = ProcessGroup(cwd=ROOT, env=env, log_dir=services.data_dir / "logs")
    try:
        group.run(*manage("migrate", "-v0"))
        group.run(*manage("collectstatic", "--noinput", "-v0"))
        web = group.start_workspace(host="127.0.0.1", port=port, sync_threads=4, name=str(port))
        base = f"http://127.0.0.1:{port}"
        wait_http(base + "/accounts/login/", web)
        users = [register(services.synapse, name) for name in ("alice", "bob")]
        creator = register(services.synapse, "carol")[2]
        from accounts.matrix.http import matrix_request

        room = matrix_request(
            services.synapse.url,
            "POST",
            "/_matrix/client/v3/createRoom",
            token=creator.access_token,
            body={"name": "Latency", "invite": [u[2].user_id for u in users]},
        )
        del room
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            pages = []
            for localpart, password, _session in users:
                # wait_for_function below evals its predicate in the page, which the workspace's
                # Content-Security-Policy forbids; the policy changes no timing, so the bench skips it.
                page = browser.new_context(bypass_csp=True).new_page()
                page.goto(base + "/accounts/login/")
                page.fill("#id_username", localpart)
                page.fill("#id_password", password)
                page.click("button[type=submit]")
                page.click("#room-list >> text=Latency", timeout=60_000)
                page.click("text=Accept")
                page.wait_for_selector("#composer-body", timeout=60_000)
                pages.append(page)
            sender, receiver = pages
            receiver.reload()
            receiver.evaluate(OBSERVER)
            pair = NioPair(
                services.synapse.url,
                register(services.synapse, "nio-a")[2],
                register(services.synapse, "nio-b")[2],
            )
            latencies, baseline = [], []
            for n in range(args.messages):
                baseline.append(pair.one_message(n))
                body = f"lat-{n}-{uuid.uuid4().hex[:6]}"
                sender.fill("#composer-body", body)
                sent_at = sender.evaluate(
                    "() => { const t = performance.timeOrigin + performance.now();"
                    " document.getElementById('composer-body').form.requestSubmit(); return t; }"
                )
                receiver.wait_for_function(f"() => '{body}' in window.__arrivals", timeout=30_000)
                arrived = receiver.evaluate(f"() => window.__arrivals['{body}']")
                latencies.append(arrived - sent_at)
            browser.close()
            pair.close()
    finally:
        group.stop()
        services.stop()
    print(summary("browser A send -> browser B DOM", latencies))
    print(summary("nio send -> nio received (same run)", baseline))
    print(
        f"{'ratio':<34} p50 {statistics.median(latencies) / statistics.median(baseline):7.2f}"
        f"      p95 {percentile(latencies, 0.95) / percentile(baseline, 0.95):7.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
