"""Search speed: N events across R rooms, one searcher in most rooms, another person in the rest.
Prints how long indexing took and the median / p95 of search_messages (the selector pages use:
isolation joins and the hit rendering included) for a common English word, a rarer one, a
two-character Japanese word, a one-character one, and a filtered query.

    .venv/bin/python -m bench.search [--events 1000000] [--rooms 200]
    .venv/bin/python -m bench.search --postgres postgres://postgres@127.0.0.1:5432/postgres

Rows go in with bulk inserts; the index is built by the real indexer (search_index_run).
"""

import argparse
import contextlib
import os
import random
import statistics
import sys
import tempfile
import time

ENGLISH = str.split(
    "the the the a a to of and in is for on it we that this with be at meeting budget report "
    "release review customer deploy lunch tomorrow today please thanks update server design "
    "draft invoice travel plan call team project sprint ticket bug fix test office coffee"
)
JAPANESE = [
    "明日の会議は10時です",
    "今日はありがとうございました",
    "資料を確認してください",
    "来週の予定を教えてください",
    "お疲れ様です",
    "今日の昼食はどこにしますか",
    "サーバーの更新が終わりました",
    "請求書を送りました",
    "出張の予定が変わりました",
    "レビューをお願いします",
]


def english_sentence(rng: random.Random) -> str:
    return " ".join(rng.choice(ENGLISH) for _ in range(rng.randint(4, 14)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--rooms", type=int, default=200)
    parser.add_argument("--runs", type=int, default=60)
    parser.add_argument("--postgres", help="a PostgreSQL server URL: bench there (fresh database)")
    args = parser.parse_args()
    os.environ.setdefault("WEBCLIENT_DATA_DIR", tempfile.mkdtemp(prefix="webclient-search-"))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webclient.settings.embedded")
    from bench.common import postgres_database

    database = postgres_database(args.postgres) if args.postgres else contextlib.nullcontext()
    with database as url:
        if url:
            os.environ["DATABASE_URL"] = url
        return run(args)


def run(args) -> int:
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection

    from accounts.models import MatrixAccount
    from rooms.models import Event, Membership, Room, TimelineEntry
    from rooms.search import SearchFilters, search_messages
    from rooms.search_index import search_index_run

    call_command("migrate", verbosity=0)
    rng = random.Random(7)
    users = get_user_model()
    searcher, other = (
        MatrixAccount.objects.create(
            user=users.objects.create_user(username=name),
            homeserver_url="http://127.0.0.1:9",
            mxid=f"@{name}:example.org",
            device_id="D",
        )
        for name in ("searcher", "other")
    )
    rooms = Room.objects.bulk_create(
        [Room(room_id=f"!r{n}:example.org") for n in range(args.rooms)]
    )
    # The searcher is in three rooms of four; the other person alone in the rest.
    theirs = {room.pk: (searcher if n % 4 else other) for n, room in enumerate(rooms)}
    Membership.objects.bulk_create(
        [Membership(account=theirs[r.pk], room=r, membership="join") for r in rooms]
    )
    senders = [f"@u{n}:example.org" for n in range(50)]
    started = time.monotonic()
    chunk = 5_000
    ts0 = 1_700_000_000_000
    for first in range(0, args.events, chunk):
        events = []
        for n in range(first, min(first + chunk, args.events)):
            body = rng.choice(JAPANESE) if rng.random() < 0.3 else english_sentence(rng)
            room = rooms[rng.randrange(len(rooms))]
            raw = {"type": "m.room.message", "content": {"msgtype": "m.text", "body": body}}
            events.append(
                Event(
                    event_id=f"$b{n}",
                    room=room,
                    sender=rng.choice(senders),
                    event_type="m.room.message",
                    origin_server_ts=ts0 + n * 1000,
                    raw=raw,
                )
            )
        stored = Event.objects.bulk_create(events)
        if connection.vendor == "sqlite":  # bulk_create returns no ids there before 3.35
            stored = Event.objects.filter(event_id__in=[e.event_id for e in events])
        TimelineEntry.objects.bulk_create(
            [
                TimelineEntry(
                    account=theirs[e.room_id],
                    room_id=e.room_id,
                    event_id=e.pk,
                    origin_server_ts=e.origin_server_ts,
                )
                for e in stored
            ]
        )
    loaded = time.monotonic() - started
    started = time.monotonic()
    while search_index_run(max_batches=200):
        pass
    indexed = time.monotonic() - started
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
    load = os.getloadavg()
    print(
        f"{connection.vendor}: {args.events:,} events in {args.rooms} rooms; rows stored in "
        f"{loaded:.0f} s, indexed in {indexed:.0f} s ({args.events / indexed:,.0f} events/s); "
        f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} on {os.cpu_count()} cores"
    )
    room_filter = SearchFilters(room_id=rooms[1].room_id)
    cases = [
        ("common English word", "the", SearchFilters()),
        ("rarer English word", "invoice", SearchFilters()),
        ("two English words", "budget review", SearchFilters()),
        ("two-character Japanese word", "会議", SearchFilters()),
        ("one Japanese character", "疲", SearchFilters()),
        ("Japanese phrase", "予定が変わり", SearchFilters()),
        ("common word in one room", "the", room_filter),
        ("word not in the corpus", "zebra", SearchFilters()),
    ]
    # min: the query's own cost when the CPU was free; median and p95 include the machine's load.
    print(f"{'query':<30} {'hits':>5} {'min ms':>7} {'median ms':>10} {'p95 ms':>8}")
    for label, query, filters in cases:
        timings = []
        for _ in range(args.runs):
            began = time.perf_counter()
            page = search_messages(account=searcher, query=query, filters=filters)
            timings.append((time.perf_counter() - began) * 1000)
        timings.sort()
        p95 = timings[int(len(timings) * 0.95) - 1]
        print(
            f"{label:<30} {len(page.hits):>5} {timings[0]:>7.1f} "
            f"{statistics.median(timings):>10.1f} {p95:>8.1f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
