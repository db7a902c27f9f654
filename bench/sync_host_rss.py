"""RSS of one sync host process holding 10 to 1,000 synced accounts, and how long after its start
all of them have synced (targets: <= 1 MB per account, all 1,000 synced within 60 s).

Each account shares a room with one other account and has exchanged a message. The host is
`manage.py sync_host` (the same SyncHost the Celery sync worker runs), started once every account
exists; the clock starts when it is started (so Django's start-up counts). RSS is read from /proc
once every account has committed a sync (or at the deadline, when some have not).

    .venv/bin/python -m bench.sync_host_rss [--counts 10 100 500 1000] [--deadline 300]
"""

import argparse
import os
import re
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from functools import partial
from pathlib import Path

from bench.common import register, start_services

ROOT = Path(__file__).resolve().parent.parent


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def start_host(capacity: int, log: Path | None = None) -> subprocess.Popen:
    out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115 - the child keeps it
    return subprocess.Popen(
        [sys.executable, "manage.py", "sync_host", "--capacity", str(capacity)],
        cwd=ROOT,
        env=os.environ.copy(),
        stdout=out,
        stderr=subprocess.STDOUT,
    )


def pair_up(synapse_url: str, first, second) -> None:
    """A room of two with one message in it (tried again when a busy Synapse times out)."""
    from accounts.matrix.errors import HomeserverUnreachable

    for attempt in range(3):
        try:
            return _pair_up(synapse_url, first, second)
        except HomeserverUnreachable:
            if attempt == 2:
                raise
            time.sleep(2)


def _pair_up(synapse_url: str, first, second) -> None:
    from accounts.matrix import client_api
    from accounts.matrix.http import matrix_request, quote

    room = matrix_request(
        synapse_url,
        "POST",
        "/_matrix/client/v3/createRoom",
        token=first.access_token,
        body={"invite": [second.user_id]},
    )
    client_api.join_room(
        synapse_url, access_token=second.access_token, room_id_or_alias=room["room_id"]
    )
    matrix_request(
        synapse_url,
        "PUT",
        f"/_matrix/client/v3/rooms/{quote(room['room_id'])}/send/m.room.message/t1",
        token=first.access_token,
        body={"msgtype": "m.text", "body": "hello"},
    )


def milestones(progress: list[tuple[float, int]], count: int) -> str:
    """When the first account, half, 90 % and all had synced (seconds after the host started)."""
    parts = []
    for label, share in (("first", 1 / count), ("50%", 0.5), ("90%", 0.9), ("all", 1.0)):
        needed = max(1, round(share * count))
        at = next((t for t, synced in progress if synced >= needed), None)
        parts.append(f"{label} {at:.1f}" if at is not None else f"{label} -")
    return " / ".join(parts)


def host_log_summary(log: Path, started: datetime) -> str:
    """From the host's log: when it first claimed (its start-up: imports, Django), and how long
    the accounts' first syncs took after their claim (with the wait for a slot), and how many
    leases were lost."""
    claimed_at = None
    after_claim, waited = [], []
    lost = 0
    for line in log.read_text(errors="replace").splitlines():
        if claimed_at is None and " claimed account " in line:
            claimed_at = datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")
        elif found := re.search(r"first sync stored ([\d.]+) s after its claim \(([\d.]+) s", line):
            after_claim.append(float(found[1]))
            waited.append(float(found[2]))
        elif "lost the lease" in line:
            lost += 1
    parts = []
    if claimed_at is not None:
        parts.append(f"first claim {(claimed_at - started).total_seconds():.1f} s after start")
    if after_claim:
        parts.append(
            f"first sync after claim p50 {statistics.median(after_claim):.1f} s, max "
            f"{max(after_claim):.1f} s (slot wait p50 {statistics.median(waited):.1f} s)"
        )
    parts.append(f"{lost} leases lost")
    return "; ".join(parts)


def empty_host_rss() -> float:
    """The host process with nothing to sync: Django, nio and aiohttp loaded."""
    host = start_host(1)
    time.sleep(6)
    rss = rss_mb(host.pid)
    host.terminate()
    host.wait(timeout=60)
    return rss


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", type=int, nargs="+", default=[10, 100, 500])
    parser.add_argument(
        "--deadline", type=float, default=300, help="seconds to wait for all to sync"
    )
    parser.add_argument("--setup-threads", type=int, default=4, help="parallel set-up requests")
    args = parser.parse_args()
    services = start_services()
    os.environ.update(
        {
            "WEBCLIENT_DATA_DIR": str(services.data_dir),
            "DJANGO_SETTINGS_MODULE": "webclient.settings.embedded",
            "MATRIX_HOMESERVER_URL": services.synapse.url,
            "REDIS_URL": services.redis_url,
        }
    )
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from accounts.models import MatrixAccount
    from rooms.models import SyncState

    call_command("migrate", verbosity=0)
    empty = empty_host_rss()
    results = []
    try:
        for count in args.counts:
            MatrixAccount.objects.all().delete()
            with ThreadPoolExecutor(args.setup_threads) as pool:
                sessions = list(pool.map(lambda _: register(services.synapse)[2], range(count)))
                list(
                    pool.map(partial(pair_up, services.synapse.url), sessions[::2], sessions[1::2])
                )
            for session in sessions:
                user = get_user_model().objects.create_user(
                    username=session.user_id[1:].split(":")[0]
                )
                MatrixAccount.objects.create(
                    user=user,
                    homeserver_url=session.homeserver_url,
                    mxid=session.user_id,
                    device_id=session.device_id,
                    access_token=session.access_token,
                )
            print(f"{count} accounts ready; starting the host", file=sys.stderr)
            started_wall = datetime.now()
            host = start_host(count, services.data_dir / f"host-{count}.log")
            progress: list[tuple[float, int]] = []
            try:
                started = time.monotonic()
                synced = 0
                while synced < count and time.monotonic() - started < args.deadline:
                    time.sleep(0.5)
                    synced = SyncState.objects.exclude(next_batch="").count()
                    progress.append((time.monotonic() - started, synced))
                if synced == count:
                    time.sleep(5)  # a few long-polls in flight, as in steady state
                total = rss_mb(host.pid)
            finally:
                host.terminate()
                try:
                    host.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    host.kill()
                    host.wait()
            at_60 = max((n for t, n in progress if t <= 60), default=0)
            results.append(
                (count, total, (total - empty) / count, milestones(progress, count), at_60)
            )
            print(
                f"{count} accounts: {host_log_summary(services.data_dir / f'host-{count}.log', started_wall)}",
                file=sys.stderr,
            )
            SyncState.objects.all().delete()
            get_user_model().objects.all().delete()
    finally:
        services.stop()
    print(f"empty host: {empty:.1f} MB RSS")
    print(
        f"{'accounts':>9} {'host RSS MB':>12} {'MB/account':>11} {'synced by 60 s':>15}   "
        "synced after s: first / 50% / 90% / all"
    )
    for count, total, per_account, when, at_60 in results:
        print(f"{count:>9} {total:>12.1f} {per_account:>11.2f} {at_60:>15}   {when}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
