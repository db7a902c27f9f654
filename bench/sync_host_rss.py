"""RSS of one sync host process holding 10, 100 and 500 synced accounts (target <= 2 MB each).

Each account shares a room with one other account and has exchanged a message. The host is
`manage.py sync_host` (the same SyncHost the Celery sync worker runs); RSS is read from /proc once
every account has committed a sync.

    .venv/bin/python -m bench.sync_host_rss [--counts 10 100 500]
"""

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from bench.common import register, start_services

ROOT = Path(__file__).resolve().parent.parent


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def start_host(capacity: int) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "manage.py", "sync_host", "--capacity", str(capacity)],
        cwd=ROOT,
        env=os.environ.copy(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


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

    from accounts.matrix import client_api
    from accounts.matrix.http import matrix_request, quote
    from accounts.models import MatrixAccount
    from rooms.models import SyncState

    call_command("migrate", verbosity=0)
    empty = empty_host_rss()
    results = []
    try:
        for count in args.counts:
            MatrixAccount.objects.all().delete()
            sessions = [register(services.synapse)[2] for _ in range(count)]
            for first, second in zip(sessions[::2], sessions[1::2], strict=False):
                room = matrix_request(
                    services.synapse.url,
                    "POST",
                    "/_matrix/client/v3/createRoom",
                    token=first.access_token,
                    body={"invite": [second.user_id]},
                )
                client_api.join_room(
                    services.synapse.url,
                    access_token=second.access_token,
                    room_id_or_alias=room["room_id"],
                )
                matrix_request(
                    services.synapse.url,
                    "PUT",
                    f"/_matrix/client/v3/rooms/{quote(room['room_id'])}/send/m.room.message/t1",
                    token=first.access_token,
                    body={"msgtype": "m.text", "body": "hello"},
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
            host = start_host(count)
            try:
                started = time.monotonic()
                while SyncState.objects.exclude(next_batch="").count() < count:
                    if time.monotonic() - started > 300:
                        raise RuntimeError("accounts did not all sync within 300 s")
                    time.sleep(0.5)
                synced_after = time.monotonic() - started
                time.sleep(5)  # a few long-polls in flight, as in steady state
                total = rss_mb(host.pid)
            finally:
                host.terminate()
                host.wait(timeout=60)
            results.append((count, total, (total - empty) / count, synced_after))
            SyncState.objects.all().delete()
            get_user_model().objects.all().delete()
    finally:
        services.stop()
    print(f"empty host: {empty:.1f} MB RSS")
    print(f"{'accounts':>9} {'host RSS MB':>12} {'MB/account':>11} {'all synced after s':>19}")
    for count, total, per_account, synced_after in results:
        print(f"{count:>9} {total:>12.1f} {per_account:>11.2f} {synced_after:>19.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
