"""One daphne process holding 5,000 idle websockets pushes a message to 500 of them (target: p95
<= 200 ms from the push to each socket's receipt).

daphne runs as in production (`webclient.asgi:application`, the Redis channel layer, the database's
sessions). Ten people are signed in; every socket authenticates with one of their session cookies
and joins its account's group as a page does. One person has 500 pages open; the other 4,500 sockets
belong to the other nine and stay idle. A push is `notify.room_list_changed` for that person, called
from a worker thread as the sync host calls it after a commit; each of the 500 sockets stamps its
receipt. No homeserver is needed: the consumers never talk to it.

    .venv/bin/python -m bench.websockets [--sockets 5000] [--fanout 500] [--pushes 20]
"""

import argparse
import asyncio
import contextlib
import os
import resource
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

from bench.common import percentile
from webclient.embedded.processes import ProcessGroup, wait_http, web_command
from webclient.embedded.redis import redis_reachable, start_redis
from webclient.embedded.synapse import free_port

ROOT = Path(__file__).resolve().parent.parent


def raise_fd_limit(needed: int) -> int:
    """Each socket is a descriptor in this process and one in daphne (which inherits the limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else max(needed, soft)
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft < needed:
        raise SystemExit(
            f"RLIMIT_NOFILE is {soft}; {needed} sockets need more (raise the hard limit)"
        )
    return soft


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def sign_in_people(count: int) -> list[tuple[int, str]]:
    """`count` people with a Matrix account each and a signed-in session: (account id, session key).

    The session holds what a real sign-in leaves there (Django's auth keys and the account id the
    websocket consumer reads)."""
    from django.contrib.auth import (
        BACKEND_SESSION_KEY,
        HASH_SESSION_KEY,
        SESSION_KEY,
        get_user_model,
    )
    from django.contrib.sessions.backends.db import SessionStore

    from accounts import page_session
    from accounts.models import MatrixAccount

    people = []
    for n in range(count):
        user = get_user_model().objects.create_user(username=f"ws-{n}-{uuid.uuid4().hex[:6]}")
        account = MatrixAccount.objects.create(
            user=user,
            homeserver_url="http://127.0.0.1:9",
            mxid=f"@{user.username}:bench",
            device_id=f"DEV{n}",
            access_token="",  # no sync host is asked to claim it
        )
        session = SessionStore()
        session[SESSION_KEY] = str(user.pk)
        session[BACKEND_SESSION_KEY] = "accounts.backends.MatrixPasswordBackend"
        session[HASH_SESSION_KEY] = user.get_session_auth_hash()
        session[page_session.ACCOUNT_KEY] = account.pk
        session.create()
        people.append((account.pk, session.session_key))
    return people


class Sockets:
    """Many aiohttp websockets in this process's event loop; the target ones stamp each frame."""

    def __init__(self, url: str, origin: str) -> None:
        import aiohttp

        self.url, self.origin = url, origin
        self.http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, force_close=True),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=60),
        )
        self.sockets: list = []
        self.readers: list[asyncio.Task] = []
        self.arrivals: list[float] = []
        self.stray = 0  # frames received by sockets that were not pushed to
        self.closed = 0
        self.refused = 0  # handshakes daphne refused (each tried again)
        self.all_arrived = asyncio.Event()
        self.expected = 0
        self.sent_ms: list[float] = []  # how long notify took to hand the push to the layer

    async def open(self, session_key: str, *, target: bool) -> None:
        """Connect as a page does: a handshake daphne refused (it gives the application 5 s to
        accept) or a connection reset in a burst of handshakes is tried again after a pause."""
        import aiohttp

        for attempt in range(10):
            try:
                ws = await self.http.ws_connect(
                    self.url,
                    headers={"Origin": self.origin, "Cookie": f"sessionid={session_key}"},
                    heartbeat=None,
                    autoping=True,
                    max_msg_size=0,
                )
                break
            except (aiohttp.WSServerHandshakeError, aiohttp.ClientOSError):
                self.refused += 1
                await asyncio.sleep(0.5 * (attempt + 1))
        else:
            raise RuntimeError("daphne refused a websocket ten times")
        self.sockets.append(ws)
        self.readers.append(asyncio.create_task(self._read(ws, target)))

    async def _read(self, ws, target: bool) -> None:
        import aiohttp

        async for message in ws:
            if message.type != aiohttp.WSMsgType.TEXT:
                break
            if not target:
                self.stray += 1
                continue
            self.arrivals.append(time.perf_counter())
            if len(self.arrivals) >= self.expected:
                self.all_arrived.set()
        self.closed += 1

    async def close(self) -> None:
        for task in self.readers:
            task.cancel()
        await asyncio.gather(*self.readers, return_exceptions=True)
        await asyncio.gather(*(ws.close() for ws in self.sockets), return_exceptions=True)
        await self.http.close()


async def open_all(
    sockets: Sockets, people: list[tuple[int, str]], *, total: int, fanout: int, parallel: int
) -> float:
    """Open `fanout` sockets for the first person and spread the rest over the others."""
    plan = [(people[0][1], True)] * fanout
    others = people[1:] or people
    plan += [(others[n % len(others)][1], False) for n in range(total - fanout)]
    gate = asyncio.Semaphore(parallel)

    async def one(session_key: str, target: bool) -> None:
        async with gate:
            await sockets.open(session_key, target=target)

    started = time.perf_counter()
    await asyncio.gather(*(one(key, target) for key, target in plan))
    return time.perf_counter() - started


async def push_once(sockets: Sockets, account_id: int, fanout: int, timeout: float) -> list[float]:
    """One real push (notify, from a thread, as a sync host after its commit); ms per socket."""
    from asgiref.sync import sync_to_async

    from rooms import notify

    sockets.arrivals = []
    sockets.expected = fanout
    sockets.all_arrived.clear()
    started = time.perf_counter()
    await sync_to_async(notify.room_list_changed, thread_sensitive=False)(account_id=account_id)
    sockets.sent_ms.append((time.perf_counter() - started) * 1000)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(sockets.all_arrived.wait(), timeout)
    return [(at - started) * 1000 for at in sockets.arrivals]


async def run(args, base: str, people, daphne_pid: int) -> dict:
    sockets = Sockets(base.replace("http://", "ws://") + "/ws/live/", base)
    try:
        opened_in = await open_all(
            sockets, people, total=args.sockets, fanout=args.fanout, parallel=args.parallel
        )
        print(f"{args.sockets} sockets open after {opened_in:.1f} s; idle", file=sys.stderr)
        await asyncio.sleep(args.idle)  # idle: joins and page marks settle
        idle_rss = rss_mb(daphne_pid)
        fds = open_fds(daphne_pid)
        latencies: list[float] = []
        per_push_p95: list[float] = []
        missing = 0
        for _ in range(args.pushes):
            got = await push_once(sockets, people[0][0], args.fanout, timeout=3)
            missing += args.fanout - len(got)
            latencies += got
            if got:
                per_push_p95.append(percentile(got, 0.95))
            await asyncio.sleep(args.gap)
        return {
            "opened_in": opened_in,
            "idle_rss": idle_rss,
            "after_rss": rss_mb(daphne_pid),
            "fds": fds,
            "latencies": latencies,
            "per_push_p95": per_push_p95,
            "missing": missing,
            "sent_ms": sockets.sent_ms,
            "stray": sockets.stray,
            "closed": sockets.closed,
            "refused": sockets.refused,
        }
    finally:
        await sockets.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sockets", type=int, default=5000)
    parser.add_argument("--fanout", type=int, default=500, help="sockets of the pushed-to person")
    parser.add_argument("--people", type=int, default=10)
    parser.add_argument("--pushes", type=int, default=20)
    parser.add_argument("--gap", type=float, default=0.5, help="seconds between pushes")
    parser.add_argument("--idle", type=float, default=5.0, help="seconds idle before pushing")
    parser.add_argument("--parallel", type=int, default=20, help="handshakes in flight")
    args = parser.parse_args()
    fd_limit = raise_fd_limit(args.sockets + 1000)

    data_dir = Path(tempfile.mkdtemp(prefix="webclient-bench-ws-"))
    stoppers: list = []
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    if not redis_reachable(redis_url):
        redis = start_redis(data_dir / "redis")
        stoppers.append(redis)
        redis_url = redis.url
    port = free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "webclient.settings.embedded",
        "WEBCLIENT_DATA_DIR": str(data_dir),
        "REDIS_URL": redis_url,
        "CHANNELS_PREFIX": f"bench-ws-{uuid.uuid4().hex[:6]}",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
    }
    os.environ.update(env)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    call_command("collectstatic", "--noinput", verbosity=0)
    people = sign_in_people(args.people)
    group = ProcessGroup(cwd=ROOT, env=env, log_dir=data_dir / "logs")
    try:
        web = group.start("web", *web_command("127.0.0.1", port))
        base = f"http://127.0.0.1:{port}"
        wait_http(base + "/accounts/login/", web)
        empty_rss = rss_mb(web.pid)
        result = asyncio.run(run(args, base, people, web.pid))
    finally:
        group.stop()
        for stopper in stoppers:
            stopper.stop()
    latencies = result["latencies"]
    print(
        f"sockets {args.sockets} (fd limit {fd_limit}), opened in {result['opened_in']:.1f} s "
        f"({result['refused']} handshakes refused and tried again)"
    )
    print(
        f"daphne RSS: {empty_rss:.1f} MB empty, {result['idle_rss']:.1f} MB with the sockets idle"
    )
    print(
        f"  ({(result['idle_rss'] - empty_rss) * 1024 / args.sockets:.1f} kB per socket, "
        f"{result['fds']} descriptors open), {result['after_rss']:.1f} MB after the pushes"
    )
    if latencies:
        print(
            f"push -> {args.fanout} sockets, {args.pushes} pushes: "
            f"p50 {statistics.median(latencies):.1f} ms   p95 {percentile(latencies, 0.95):.1f} ms"
            f"   max {max(latencies):.1f} ms   n={len(latencies)}"
        )
        print(
            f"  of which notify -> channel layer: p50 {statistics.median(result['sent_ms']):.1f} ms"
            f"   max {max(result['sent_ms']):.1f} ms"
        )
        spread = result["per_push_p95"]
        print(f"  p95 of single pushes: best {min(spread):.1f} ms, worst {max(spread):.1f} ms")
    print(
        f"missing {result['missing']}, stray frames {result['stray']}, "
        f"sockets closed by the server {result['closed']}"
    )
    return 0 if latencies and not result["missing"] else 1


if __name__ == "__main__":
    sys.exit(main())
