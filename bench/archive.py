"""Archiving throughput: N events in a few rooms, each received by two accounts, appended to the
hash-chained archive by the archiver (as beat runs it), then verified, then purged by retention.

Prints events/s for each step, on a throwaway SQLite database (or an empty DATABASE_URL).

    .venv/bin/python -m bench.archive [--events 100000] [--rooms 10]
"""

import argparse
import os
import sys
import tempfile
import time

os.environ.setdefault("WEBCLIENT_DATA_DIR", tempfile.mkdtemp(prefix="webclient-bench-"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webclient.settings.embedded")

import django

django.setup()


from datetime import timedelta  # noqa: E402

from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.utils import timezone  # noqa: E402

from accounts.models import MatrixAccount  # noqa: E402
from records import archiver, retention  # noqa: E402
from records.models import RetentionPolicy  # noqa: E402
from records.verify import archived_rooms, verify_room  # noqa: E402
from rooms.models import Event, Room, TimelineEntry  # noqa: E402

BATCH = 5_000


def account(name: str) -> MatrixAccount:
    user = get_user_model().objects.create_user(username=name)
    return MatrixAccount.objects.create(
        user=user,
        homeserver_url="http://127.0.0.1:9",
        mxid=f"@{name}:hs",
        device_id="D",
        access_token="t",
        is_active=False,
    )


def fill(events: int, rooms: int, accounts: list[MatrixAccount]) -> None:
    """Events spread over the rooms, every one received by every account (one timeline row each),
    in arrival order as ingest would write them."""
    room_rows = [Room.objects.create(room_id=f"!bench{r}:hs") for r in range(rooms)]
    base = 1_700_000_000_000
    for start in range(0, events, BATCH):
        with transaction.atomic():
            batch = Event.objects.bulk_create(
                [
                    Event(
                        event_id=f"$bench-{n}",
                        room=room_rows[n % rooms],
                        sender="@alice:hs" if n % 2 else "@bob:hs",
                        event_type="m.room.message",
                        origin_server_ts=base + n,
                        raw={
                            "event_id": f"$bench-{n}",
                            "type": "m.room.message",
                            "sender": "@alice:hs" if n % 2 else "@bob:hs",
                            "origin_server_ts": base + n,
                            "content": {"msgtype": "m.text", "body": f"message number {n}"},
                        },
                    )
                    for n in range(start, min(events, start + BATCH))
                ]
            )
            TimelineEntry.objects.bulk_create(
                [
                    TimelineEntry(
                        account=a, room_id=e.room_id, event=e, origin_server_ts=e.origin_server_ts
                    )
                    for e in batch
                    for a in accounts
                ]
            )


def timed(label: str, count: int, work) -> object:
    started = time.perf_counter()
    result = work()
    elapsed = time.perf_counter() - started
    print(f"{label:<40} {count:>9,} in {elapsed:7.1f} s = {count / elapsed:>9,.0f} events/s")
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--rooms", type=int, default=10)
    args = parser.parse_args()
    call_command("migrate", verbosity=0)
    accounts = [account("ada"), account("bob")]
    fill(args.events, args.rooms, accounts)
    print(
        f"database: {connection.vendor}; {args.events:,} events in {args.rooms} rooms, "
        f"each received by {len(accounts)} accounts; load average {os.getloadavg()[0]:.1f}"
    )
    stats = timed("archive (archiver, from empty)", args.events, archiver.archive_run)
    assert stats.events_archived == args.events, stats
    timed("archive again (nothing new)", args.events, archiver.archive_run)
    timed(
        "verify every room's chain",
        args.events,
        lambda: [verify_room(room_id) for room_id in archived_rooms()],
    )
    RetentionPolicy.objects.create(room_id="", keep_days=1)
    later = timezone.now() + timedelta(days=2)  # every event is due (sent and archived >1 day ago)
    results = timed(
        "retention: purge all + local store",
        args.events,
        lambda: retention.retention_run(now=later),
    )
    assert sum(r.purged for r in results) == args.events, results
    assert all(verify_room(room_id).broken is None for room_id in archived_rooms())
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
