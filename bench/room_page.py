"""Room page server time with 50 events shown, for rooms holding 1k and 100k events.

Prints p50/p95 of the full Django request (selectors + template) through the test client, on a
throwaway SQLite database (or DATABASE_URL). Target: p95 <= 100 ms and flat in the room's size.

    .venv/bin/python -m bench.room_page [--sizes 1000 100000] [--requests 50]
"""

import argparse
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("WEBCLIENT_DATA_DIR", tempfile.mkdtemp(prefix="webclient-bench-"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webclient.settings.embedded")
os.environ.setdefault("DJANGO_ALLOWED_HOSTS", "testserver")

import django

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.test import Client  # noqa: E402

from accounts.models import MatrixAccount  # noqa: E402
from rooms.models import Event, Membership, Room, RoomState, TimelineEntry  # noqa: E402

BATCH = 5_000


def fill_room(account: MatrixAccount, room_id: str, size: int) -> Room:
    room = Room.objects.create(room_id=room_id)
    Membership.objects.create(account=account, room=room, membership="join", display_name=room_id)
    for sender in ("@alice:hs", "@bob:hs"):
        RoomState.objects.create(
            room=room,
            event_type="m.room.member",
            state_key=sender,
            event_id=f"$m{sender}{room_id}",
            sender=sender,
            content={"membership": "join", "displayname": sender[1:4]},
        )
    base = 1_700_000_000_000
    for start in range(0, size, BATCH):
        with transaction.atomic():
            events = Event.objects.bulk_create(
                [
                    Event(
                        event_id=f"${room_id}-{n}",
                        room=room,
                        sender="@alice:hs" if n % 2 else "@bob:hs",
                        event_type="m.room.message",
                        origin_server_ts=base + n,
                        raw={
                            "type": "m.room.message",
                            "content": {"msgtype": "m.text", "body": f"message number {n}"},
                        },
                    )
                    for n in range(start, min(size, start + BATCH))
                ]
            )
            if not all(e.pk for e in events):
                events = list(
                    Event.objects.filter(room=room, event_id__in=[e.event_id for e in events])
                )
            TimelineEntry.objects.bulk_create(
                [
                    TimelineEntry(
                        account=account, room=room, event=e, origin_server_ts=e.origin_server_ts
                    )
                    for e in events
                ]
            )
    if connection.vendor == "postgresql":
        # As autovacuum would in production: planner statistics for the freshly filled tables.
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE rooms_event, rooms_timelineentry")
    return room


def measure(client: Client, room: Room, requests: int) -> tuple[float, float, int]:
    url = f"/rooms/{room.room_id}/"
    client.get(url)  # warm caches and templates
    timings = []
    queries = []
    with connection.execute_wrapper(
        lambda execute, sql, *rest: queries.append(sql) or execute(sql, *rest)
    ):
        client.get(url)
    for _ in range(requests):
        started = time.perf_counter()
        response = client.get(url)
        timings.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200
    timings.sort()
    return statistics.median(timings), timings[int(len(timings) * 0.95) - 1], len(queries)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 100_000])
    parser.add_argument("--requests", type=int, default=50)
    args = parser.parse_args()
    call_command("migrate", verbosity=0)
    call_command("collectstatic", interactive=False, verbosity=0)
    user = get_user_model().objects.create_user(username="bench")
    account = MatrixAccount.objects.create(
        user=user,
        homeserver_url="http://127.0.0.1:9",
        mxid="@bench:hs",
        device_id="D",
        access_token="t",
    )
    client = Client()
    client.force_login(user)
    print(f"database: {connection.vendor}; {args.requests} requests per size")
    print(f"{'events in room':>15} {'p50 ms':>8} {'p95 ms':>8} {'queries':>8}")
    for size in args.sizes:
        room = fill_room(account, f"!bench{size}:hs", size)
        p50, p95, queries = measure(client, room, args.requests)
        print(f"{size:>15,} {p50:>8.1f} {p95:>8.1f} {queries:>8}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
