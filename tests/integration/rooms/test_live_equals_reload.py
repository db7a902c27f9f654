"""What live pushes add to an open page equals what a fresh page load shows (Zulip's rule)."""

import re

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from accounts.models import MatrixAccount
from rooms import notify, open_pages, services
from rooms.models import TimelineGap
from rooms.services import LeaseHandle
from rooms.sync.batch import JoinedRoomBatch, SyncBatch
from rooms.sync.leases import lease_claim

pytestmark = pytest.mark.django_db(transaction=True)
EVENT_LI = re.compile(r'<li class="event[^"]*" id="ev-\d+".*?</li>', re.S)


def message(n: int, sender: str, **content) -> dict:
    return {
        "event_id": f"$e{n}",
        "type": "m.room.message",
        "sender": sender,
        "origin_server_ts": 1_700_000_000_000 + n * 1000,
        "content": {"msgtype": "m.text", "body": f"message {n}", **content},
    }


@pytest.fixture
def hamlet(monkeypatch) -> tuple:
    """(user, account, lease, pushed): an account whose live pushes are collected in `pushed`, as
    a page of its own (open) would receive them."""
    user = get_user_model().objects.create_user(username="hamlet")
    account = MatrixAccount.objects.create(
        user=user,
        homeserver_url="http://127.0.0.1:9",
        mxid="@hamlet:hs",
        device_id="D",
        access_token="syt_x",
    )
    pushed: list[str] = []
    monkeypatch.setattr(notify, "_push_html", lambda account_id, html: pushed.append(html))
    monkeypatch.setattr(open_pages, "any_open", lambda account_id: True)  # a page is open
    token = lease_claim(account_id=account.pk, owner="test-host", seconds=60)
    lease = LeaseHandle(account.pk, "test-host", token)
    return user, account, lease, pushed


def test_pushed_fragments_equal_the_reloaded_timeline(hamlet):
    user, account, lease, pushed = hamlet
    room_id = "!elsinore:hs"
    member = {
        "event_id": "$m",
        "type": "m.room.member",
        "state_key": "@ophelia:hs",
        "sender": "@ophelia:hs",
        "content": {"membership": "join", "displayname": "Ophelia"},
    }
    batches = [
        [member, message(1, "@ophelia:hs"), message(2, "@hamlet:hs")],
        [
            message(
                3,
                "@ophelia:hs",
                format="org.matrix.custom.html",
                formatted_body="<b>bold</b><script>alert(1)</script>",
            )
        ],
        [message(4, "@hamlet:hs"), message(5, "@ophelia:hs")],
    ]
    for number, events in enumerate(batches):
        services.sync_ingest(
            lease=lease,
            own_user_id=account.mxid,
            batch=SyncBatch(
                next_batch=f"s{number}",
                joined=[JoinedRoomBatch(room_id=room_id, timeline=events)],
            ),
        )
    live = [li for html in pushed for li in EVENT_LI.findall(html)]
    client = Client()
    client.force_login(user)
    page = client.get(f"/rooms/{room_id}/").content.decode()
    reloaded = EVENT_LI.findall(page)
    assert len(live) == 6  # member event + five messages
    assert live == reloaded
    assert "<script>" not in page and "<b>bold</b>" in page


KEYED_LI = re.compile(
    r'<li class="(?P<cls>event|gap)[^"]*" id="(?P<id>(?:ev|gap)-\d+)"[^>]*?data-ts="(?P<ts>\d+)"'
)
DELETED = re.compile(r'<li id="(gap-\d+)" hx-swap-oob="delete">')


def apply_pushes(pushed: list[str]) -> list[str]:
    """What app.js does with pushed rows: each goes above the first row with a later
    (data-ts, data-stream) key; a gap marker replaces the one shown; a deletion removes it."""
    rows: list[tuple[int, int, str]] = []
    for html in pushed:
        for match in KEYED_LI.finditer(html):
            row_id = match["id"]
            stream = int(row_id.split("-")[1]) if match["cls"] == "event" else 0
            rows = [r for r in rows if r[2] != row_id]
            key = (int(match["ts"]), stream, row_id)
            index = next((i for i, r in enumerate(rows) if r[:2] > key[:2]), len(rows))
            rows.insert(index, key)
        for gap_id in DELETED.findall(html):
            rows = [r for r in rows if r[2] != gap_id]
    return [r[2] for r in rows]


def test_back_filled_rows_and_gap_markers_pushed_live_equal_the_reload(hamlet):
    user, account, lease, pushed = hamlet
    room_id = "!elsinore:hs"
    client = Client()
    client.force_login(user)

    def sync(events: list[dict], number: int, **timeline) -> None:
        services.sync_ingest(
            lease=lease,
            own_user_id=account.mxid,
            batch=SyncBatch(
                next_batch=f"s{number}",
                joined=[JoinedRoomBatch(room_id=room_id, timeline=events, **timeline)],
            ),
        )

    def reloaded() -> list[str]:
        page = client.get(f"/rooms/{room_id}/").content.decode()
        return [m["id"] for m in KEYED_LI.finditer(page)]

    sync([message(n, "@ophelia:hs") for n in (1, 2, 3)], 1)
    # Too much happened between two syncs: 4 to 7 are missing, and a gap is recorded.
    sync([message(n, "@ophelia:hs") for n in (8, 9, 10)], 2, limited=True, prev_batch="p7")
    gap_id = TimelineGap.objects.get(account=account).pk
    assert apply_pushes(pushed) == reloaded()
    assert reloaded().index(f"gap-{gap_id}") == 3  # between 3 and 8

    # The filler brings 7 to 5 (newest first): new, higher stream ids, older timestamps.
    services.history_ingest(
        account_id=account.pk,
        room_id=room_id,
        chunk=[message(n, "@ophelia:hs") for n in (7, 6, 5)],
        lease=lease,
        gap_id=gap_id,
        next_token="p4",
        announce=True,
    )
    assert apply_pushes(pushed) == reloaded()
    assert reloaded().index(f"gap-{gap_id}") == 3  # still above what it has filled
    # Then 4 and 3, which we had: the gap is complete and its marker goes.
    services.history_ingest(
        account_id=account.pk,
        room_id=room_id,
        chunk=[message(n, "@ophelia:hs") for n in (4, 3)],
        lease=lease,
        gap_id=gap_id,
        next_token="p2",
        announce=True,
    )
    assert not TimelineGap.objects.filter(account=account).exists()
    live = apply_pushes(pushed)
    assert live == reloaded()
    bodies = [
        m.group(1)
        for m in re.finditer(r">message (\d+)<", client.get(f"/rooms/{room_id}/").content.decode())
    ]
    assert bodies == [str(n) for n in range(1, 11)]
    assert not any(row.startswith("gap-") for row in live)
