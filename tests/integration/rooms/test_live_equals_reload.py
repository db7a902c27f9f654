"""What live pushes add to an open page equals what a fresh page load shows (Zulip's rule)."""

import re

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from accounts.models import MatrixAccount
from rooms import notify, open_pages, services
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


def test_pushed_fragments_equal_the_reloaded_timeline(monkeypatch):
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
