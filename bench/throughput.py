"""Throughput of one sync host: N of our accounts in R rooms, a peer sending at a fixed rate; how long
after the peer's send returned is each account's timeline row committed in our database?

The issue's targets (issue 9): p95 <= 1 s with 200 accounts in one room at 10 messages/s, and with
1,000 accounts over 100 rooms at 50 messages/s. The defaults are a smaller run that fits a few
minutes on a 2-core machine.

How it measures: the peer's sends are spread evenly over time (a few threads, so a slow PUT does not
delay the next one) and each send's return time is kept. Meanwhile this process polls our database
for new timeline rows every POLL_SECONDS and notes when each (account, event) row became visible,
that is committed. The delay is visible-at minus send-returned, per account and message (the delay
from the homeserver's origin_server_ts is printed too). The host is `manage.py sync_host`, the same
SyncHost the Celery sync worker runs, on SQLite (default) or PostgreSQL (`--database-url`, a
throw-away database is created next to the one named and dropped afterwards).

    .venv/bin/python -m bench.throughput [--accounts 30] [--rooms 1] [--rate 10] [--seconds 30]
        [--database-url postgres://postgres@127.0.0.1:5432/postgres] [--profile stacks.txt]

`--profile` samples the host's threads with py-spy (on the PATH; `pip download py-spy` and unpack
the wheel) while the peer sends, and writes collapsed stacks (flamegraph.pl or speedscope read them).
"""

import argparse
import os
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.common import percentile, register, start_services

ROOT = Path(__file__).resolve().parent.parent
POLL_SECONDS = 0.05


def start_host(capacity: int, log_path: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "manage.py", "sync_host", "--capacity", str(capacity)],
        cwd=ROOT,
        env=os.environ.copy(),
        stdout=log_path.open("ab"),
        stderr=subprocess.STDOUT,
    )


def start_profile(pid: int, path: str, seconds: float) -> subprocess.Popen:
    """py-spy samples every thread of the host (the event loop and the database thread)."""
    duration = str(int(seconds) + 5)
    return subprocess.Popen(
        [
            *("py-spy", "record", "--pid", str(pid), "--format", "raw", "--threads"),
            *("--nonblocking", "--duration", duration, "--rate", "50", "--output", path),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def throwaway_postgres(url: str) -> tuple[str, callable]:
    """A fresh database on the server `url` points at, and a function that drops it."""
    import psycopg

    name = f"bench_throughput_{uuid.uuid4().hex[:8]}"
    base = url.rsplit("/", 1)[0]
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return f"{base}/{name}", drop


def summary(name: str, values: list[float]) -> str:
    if not values:
        return f"{name:<40} no values"
    return (
        f"{name:<40} p50 {percentile(values, 0.5):7.0f} ms   p95 {percentile(values, 0.95):7.0f} ms"
        f"   max {max(values):7.0f} ms   n={len(values)}"
    )


class Poller(threading.Thread):
    """Notes when each timeline row first became visible to another connection (= committed).

    Rows are read by id above the highest seen; ids skipped on the way (a transaction still open
    when a later one committed, or a sequence value an ignored conflict used up) are asked for
    again until they show up or are a minute old."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.seen: dict[tuple[int, str], float] = {}  # (account pk, event_id) -> visible at
        self.stop = threading.Event()
        self.last_id = 0
        self.missing: dict[int, float] = {}

    def run(self) -> None:
        from django.db import connection

        from rooms.models import TimelineEntry

        try:
            while not self.stop.is_set():
                now = time.time()
                rows = list(
                    TimelineEntry.objects.filter(id__gt=self.last_id).values_list(
                        "id", "account_id", "event__event_id"
                    )
                )
                if self.missing:
                    rows += TimelineEntry.objects.filter(id__in=list(self.missing)).values_list(
                        "id", "account_id", "event__event_id"
                    )
                for entry_id, account_id, event_id in rows:
                    self.seen.setdefault((account_id, event_id), now)
                    self.missing.pop(entry_id, None)
                    if entry_id > self.last_id:
                        self.missing.update(dict.fromkeys(range(self.last_id + 1, entry_id), now))
                        self.last_id = entry_id
                self.missing = {i: t for i, t in self.missing.items() if now - t < 60}
                self.stop.wait(POLL_SECONDS)
        finally:
            connection.close()


def build(services, peer, *, accounts: int, rooms: int) -> tuple[list[str], dict[str, list]]:
    """The peer's rooms, each with its share of our accounts joined; returns the room ids and
    each room's members (sessions)."""
    from accounts.matrix.http import matrix_request, quote

    url = services.synapse.url
    room_ids = []
    for n in range(rooms):
        created = matrix_request(
            url,
            "POST",
            "/_matrix/client/v3/createRoom",
            token=peer.access_token,
            body={"preset": "public_chat", "name": f"throughput {n}"},
        )
        room_ids.append(created["room_id"])
    sessions = [register(services.synapse, "tp")[2] for _ in range(accounts)]
    members: dict[str, list] = {room_id: [] for room_id in room_ids}
    for n, session in enumerate(sessions):
        members[room_ids[n % rooms]].append(session)

    def join(pair) -> None:
        room_id, session = pair
        matrix_request(
            url, "POST", f"/_matrix/client/v3/join/{quote(room_id)}", token=session.access_token
        )

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(join, [(r, s) for r, group in members.items() for s in group]))
    return room_ids, members


def wait_synced(count: int, rooms: int, host: subprocess.Popen, limit: float = 600) -> float:
    """Every account has committed its first sync with its room joined."""
    from rooms.models import Membership, SyncState

    started = time.monotonic()
    while (
        SyncState.objects.exclude(next_batch="").count() < count
        or Membership.objects.filter(membership=Membership.JOIN).count() < count
    ):
        if host.poll() is not None:
            raise RuntimeError("the sync host exited")
        if time.monotonic() - started > limit:
            raise RuntimeError(f"accounts did not all sync within {limit} s")
        time.sleep(0.5)
    return time.monotonic() - started


def send_at_rate(services, peer, room_ids: list[str], *, rate: float, seconds: float) -> dict:
    """Send rate * seconds messages, evenly spaced, round robin over the rooms. Returns
    event_id -> (room_id, send returned at, origin_server_ts in seconds)."""
    from accounts.matrix.http import matrix_request, quote

    url = services.synapse.url
    sent: dict[str, tuple[str, float]] = {}
    lock = threading.Lock()
    total = int(rate * seconds)
    start = time.time() + 0.5

    def send(n: int) -> None:
        room_id = room_ids[n % len(room_ids)]
        delay = start + n / rate - time.time()
        if delay > 0:
            time.sleep(delay)
        answer = matrix_request(
            url,
            "PUT",
            f"/_matrix/client/v3/rooms/{quote(room_id)}/send/m.room.message/tp{n}-{uuid.uuid4().hex[:6]}",
            token=peer.access_token,
            body={"msgtype": "m.text", "body": f"throughput {n}"},
            timeout=60,
        )
        with lock:
            sent[answer["event_id"]] = (room_id, time.time())

    with ThreadPoolExecutor(max(4, int(rate // 2))) as pool:
        list(pool.map(send, range(total)))
    late = time.time() - (start + (total - 1) / rate)
    took = time.time() - start
    print(
        f"peer: {total} messages sent in {took:.1f} s ({total / took:.1f}/s offered), the last "
        f"returned {late * 1000:.0f} ms after its slot (the homeserver's own delay)"
    )
    return sent


def origin_times(event_ids: list[str]) -> dict[str, float]:
    from rooms.models import Event

    return {
        event_id: ts / 1000
        for event_id, ts in Event.objects.filter(event_id__in=event_ids).values_list(
            "event_id", "origin_server_ts"
        )
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=30)
    parser.add_argument("--rooms", type=int, default=1)
    parser.add_argument("--rate", type=float, default=10.0, help="messages per second, in total")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--database-url", default="", help="a PostgreSQL server (default SQLite)")
    parser.add_argument("--profile", default="", help="py-spy's samples of the host, to this file")
    args = parser.parse_args()
    services = start_services()
    drop_database = None
    env = {
        "WEBCLIENT_DATA_DIR": str(services.data_dir),
        "DJANGO_SETTINGS_MODULE": "webclient.settings.embedded",
        "MATRIX_HOMESERVER_URL": services.synapse.url,
        "REDIS_URL": services.redis_url,
    }
    if args.database_url:
        env["DATABASE_URL"], drop_database = throwaway_postgres(args.database_url)
    os.environ.update(env)
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from accounts.models import MatrixAccount

    host = None
    poller = Poller()
    try:
        call_command("migrate", verbosity=0)
        peer = register(services.synapse, "peer")[2]
        built = time.monotonic()
        room_ids, members = build(services, peer, accounts=args.accounts, rooms=args.rooms)
        print(
            f"{args.accounts} accounts joined {args.rooms} room(s) in {time.monotonic() - built:.1f} s"
        )
        account_room: dict[int, str] = {}
        for room_id, group in members.items():
            for session in group:
                user = get_user_model().objects.create_user(
                    username=session.user_id[1:].split(":")[0]
                )
                account = MatrixAccount.objects.create(
                    user=user,
                    homeserver_url=session.homeserver_url,
                    mxid=session.user_id,
                    device_id=session.device_id,
                    access_token=session.access_token,
                )
                account_room[account.pk] = room_id
        host = start_host(args.accounts, services.data_dir / "sync_host.log")
        synced = wait_synced(args.accounts, args.rooms, host)
        print(f"all accounts synced after {synced:.1f} s")
        time.sleep(3)  # long-polls in flight, as in steady state
        poller.start()
        load_before = os.getloadavg()[0]
        spy = start_profile(host.pid, args.profile, args.seconds) if args.profile else None
        sent = send_at_rate(services, peer, room_ids, rate=args.rate, seconds=args.seconds)
        expected = {
            (account_pk, event_id)
            for event_id, (room_id, _) in sent.items()
            for account_pk, joined in account_room.items()
            if joined == room_id
        }
        waited = time.monotonic()
        while not expected <= poller.seen.keys() and time.monotonic() - waited < 120:
            time.sleep(0.5)
        load_after = os.getloadavg()[0]
        if spy is not None:
            spy.wait()
        origins = origin_times(list(sent))
    finally:
        poller.stop.set()
        if host is not None:
            host.send_signal(2)  # SIGINT: releases leases, writes the profile
            try:
                host.wait(timeout=120)
            except subprocess.TimeoutExpired:
                host.kill()
        if poller.is_alive():
            poller.join(timeout=5)
        from django.db import connections

        connections.close_all()
        if drop_database is not None:
            drop_database()
        services.stop()
    lags, from_origin = [], []
    for account_pk, event_id in expected:
        visible = poller.seen.get((account_pk, event_id))
        if visible is None:
            continue
        lags.append((visible - sent[event_id][1]) * 1000)
        if event_id in origins:
            from_origin.append((visible - origins[event_id]) * 1000)
    missing = len(expected) - len(lags)
    db = "PostgreSQL" if args.database_url else "SQLite"
    print(
        f"\n{args.accounts} accounts, {args.rooms} room(s), {args.rate:g} msg/s for "
        f"{args.seconds:g} s on {db}; load average {load_before:.1f} -> {load_after:.1f}"
    )
    print(summary("peer's send returned -> row committed", lags))
    if from_origin:
        print(summary("origin_server_ts -> row committed", from_origin))
    print(f"rows expected {len(expected)}, missing after 120 s: {missing}")
    return 0 if not missing else 1


if __name__ == "__main__":
    sys.exit(main())
