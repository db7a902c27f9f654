"""Ingest cost per message in a room where N of our accounts are members, without a homeserver:
every account ingests the same one-message sync (with the sender's member event, as lazy loading
may send it), timed in-process. Issue 9: it must grow with the rows written (N), not with N².

    .venv/bin/python -m bench.ingest_cost [--members 20 200] [--rounds 5]
"""

import argparse
import os
import sys
import tempfile
import time


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, nargs="+", default=[20, 200])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    os.environ.setdefault("WEBCLIENT_DATA_DIR", tempfile.mkdtemp(prefix="webclient-ingest-"))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webclient.settings.embedded")
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from accounts.models import MatrixAccount
    from rooms import services
    from rooms.sync.batch import JoinedRoomBatch, SyncBatch
    from rooms.sync.leases import lease_claim

    call_command("migrate", verbosity=0)
    print(f"{'members':>8} {'ms per message (all members)':>29} {'ms per account':>15}")
    for size in args.members:
        room_id = f"!bench-{size}:example.org"
        peer = "@peer:example.org"
        leases, users = [], []
        for n in range(size):
            mxid = f"@m{size}-{n}:example.org"
            user = get_user_model().objects.create_user(username=f"m{size}-{n}")
            account = MatrixAccount.objects.create(
                user=user, homeserver_url="http://hs", mxid=mxid, device_id="D", access_token="t"
            )
            token = lease_claim(account_id=account.pk, owner="bench", seconds=3600)
            leases.append(services.LeaseHandle(account.pk, "bench", token))
            users.append(mxid)
        joins = [_member(user, 1000 + n) for n, user in enumerate([peer, *users])]
        name = {
            "type": "m.room.name",
            "state_key": "",
            "event_id": f"$name-{size}",
            "sender": peer,
            "content": {"name": "Busy"},
            "origin_server_ts": 999,
        }
        for lease, user in zip(leases, users, strict=True):  # everyone joined, state known
            batch = SyncBatch(
                next_batch="s0",
                joined=[JoinedRoomBatch(room_id, state=[name, *joins], joined_count=size + 1)],
            )
            services.sync_ingest(lease=lease, own_user_id=user, batch=batch, initial=True)
        timings = []
        for r in range(args.rounds):
            message = {
                "type": "m.room.message",
                "event_id": f"$msg-{size}-{r}",
                "sender": peer,
                "origin_server_ts": 5000 + r,
                "content": {
                    "msgtype": "m.text",
                    "body": f"news {r}",
                    "format": "org.matrix.custom.html",
                    "formatted_body": f"<b>news</b> {r}",
                },
            }
            started = time.perf_counter()
            for lease, user in zip(leases, users, strict=True):
                batch = SyncBatch(
                    next_batch=f"s{r + 1}",
                    joined=[JoinedRoomBatch(room_id, state=[joins[0]], timeline=[message])],
                )
                services.sync_ingest(lease=lease, own_user_id=user, batch=batch)
            timings.append((time.perf_counter() - started) * 1000)
        best = min(timings)
        print(f"{size:>8} {best:>29.1f} {best / size:>15.2f}")
    return 0


def _member(user_id: str, ts: int) -> dict:
    return {
        "type": "m.room.member",
        "state_key": user_id,
        "event_id": f"$join-{user_id}",
        "sender": user_id,
        "content": {"membership": "join", "displayname": user_id[1:].split(":")[0]},
        "origin_server_ts": ts,
    }


if __name__ == "__main__":
    sys.exit(main())
