"""Pages of the timeline are made of visible items, whatever runs of reactions, edits and thread
replies lie between them; catch-up after a stream position pages until it is current."""

import re

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from accounts.models import MatrixAccount
from rooms import notify, open_pages, services
from rooms.models import Membership, TimelineEntry, TimelineGap
from rooms.services import LeaseHandle
from rooms.sync.batch import JoinedRoomBatch, SyncBatch
from rooms.sync.leases import lease_claim

pytestmark = pytest.mark.django_db(transaction=True)
T0 = 1_700_000_000_000
OPHELIA = "@ophelia:hs"


class Room:
    """One account (hamlet) in one room, fed through the real ingest service."""

    def __init__(self, name: str, room_id: str = "!elsinore:hs") -> None:
        user = get_user_model().objects.create_user(username=name)
        self.account = MatrixAccount.objects.create(
            user=user,
            homeserver_url="http://127.0.0.1:9",
            mxid=f"@{name}:hs",
            device_id="D",
            access_token="syt_x",
        )
        token = lease_claim(account_id=self.account.pk, owner="test-host", seconds=60)
        self.lease = LeaseHandle(self.account.pk, "test-host", token)
        self.room_id = room_id
        self.n = 0
        self.batches = 0
        self.client = Client()
        self.client.force_login(user)

    def event(self, event_type: str = "m.room.message", **content) -> dict:
        self.n += 1
        return {
            "event_id": f"${self.room_id[1:4]}{self.n}",
            "type": event_type,
            "sender": OPHELIA,
            "origin_server_ts": T0 + self.n * 1000,
            "content": content,
        }

    def message(self, body: str) -> dict:
        return self.event(msgtype="m.text", body=body)

    def hidden(self, target: str, kind: int) -> dict:
        """A reaction, an edit or a thread reply to `target`: none makes a line of its own."""
        if kind % 3 == 0:
            return self.event(
                "m.reaction",
                **{"m.relates_to": {"rel_type": "m.annotation", "event_id": target, "key": "👍"}},
            )
        if kind % 3 == 1:
            return self.event(
                body="* fixed",
                msgtype="m.text",
                **{
                    "m.new_content": {"msgtype": "m.text", "body": "fixed"},
                    "m.relates_to": {"rel_type": "m.replace", "event_id": target},
                },
            )
        return self.event(
            body=f"in thread {kind}",
            msgtype="m.text",
            **{"m.relates_to": {"rel_type": "m.thread", "event_id": target}},
        )

    def ingest(self, events: list[dict]) -> None:
        self.batches += 1
        services.sync_ingest(
            lease=self.lease,
            own_user_id=self.account.mxid,
            batch=SyncBatch(
                next_batch=f"s{self.batches}",
                joined=[JoinedRoomBatch(room_id=self.room_id, timeline=events)],
            ),
        )

    def page(self) -> str:
        return self.client.get(f"/rooms/{self.room_id}/").content.decode()

    def events(self, **params):
        return self.client.get(f"/rooms/{self.room_id}/events/", params)


def bodies(html: str) -> list[str]:
    return re.findall(r">(line \d+)<", html)


def first_stream_id(html: str) -> str:
    return re.search(r'id="ev-(\d+)"', html).group(1)


def test_a_run_of_hidden_events_never_empties_a_page_nor_hides_older_history():
    room = Room("hamlet")
    lines = [room.message(f"line {n}") for n in range(80)]
    room.ingest(lines)
    # 150 reactions, edits and thread replies in a row: more than a page of them.
    room.ingest([room.hidden("$elsewhere", k) for k in range(150)])
    page = room.page()
    assert bodies(page) == [f"line {n}" for n in range(30, 80)]
    assert "Earlier messages" in page
    older = room.events(before=first_stream_id(page)).content.decode()
    assert bodies(older) == [f"line {n}" for n in range(30)]
    assert "Earlier messages" not in older  # nothing older anywhere: no dead link either


def test_a_page_with_nothing_visible_still_offers_the_homeserver_history():
    room = Room("hamlet")
    room.ingest([room.hidden("$elsewhere", k) for k in range(60)])
    Membership.objects.filter(account=room.account).update(history_token="t1")
    page = room.page()
    assert "Earlier messages" in page
    assert re.search(r'href="\?before=0"', page)


def test_a_page_costs_the_same_queries_however_many_hidden_events_it_skips():
    def queries(room: Room, hidden: int) -> int:
        lines = [room.message(f"line {n}") for n in range(60)]
        room.ingest(lines[:30])
        room.ingest([room.hidden("$elsewhere", k) for k in range(hidden)])
        room.ingest(lines[30:])
        first = first_stream_id(room.page())
        with CaptureQueriesContext(connection) as captured:
            older = room.events(before=first).content.decode()
        assert bodies(older) == [f"line {n}" for n in range(10)]
        return len(captured)

    few = queries(Room("hamlet", "!few:hs"), 3)
    many = queries(Room("horatio", "!many:hs"), 300)
    assert few == many


def test_catch_up_pages_until_current():
    room = Room("hamlet")
    shown_before = [room.message(f"line {n}") for n in range(3)]
    room.ingest(shown_before)
    last = TimelineEntry.objects.filter(account=room.account).order_by("-id").first().id
    # While the page was away: 95 messages, and 250 reactions to a message it already shows.
    target = shown_before[0]["event_id"]
    room.ingest([room.message(f"line {n}") for n in range(3, 50)])
    room.ingest([room.hidden(target, 0) for _ in range(250)])
    room.ingest([room.message(f"line {n}") for n in range(50, 98)])
    shown, updates, position, pages = [], 0, last, 0
    while True:
        response = room.events(after=position)
        html = response.content.decode()
        fresh = re.sub(r"<li [^>]*data-update[^>]*>.*?</li>", "", html, flags=re.S)
        shown += bodies(fresh)
        updates += html.count("data-update")
        pages += 1
        assert int(response["X-Stream-Position"]) > position
        position = int(response["X-Stream-Position"])
        if response["X-Stream-More"] != "1":
            break
    assert shown == [f"line {n}" for n in range(3, 98)]
    assert updates >= 1 and pages > 1  # the reactions re-render the message they belong to
    # Current: asking again brings nothing, and says so.
    response = room.events(after=position)
    assert bodies(response.content.decode()) == [] and response["X-Stream-More"] == "0"


def test_only_a_room_we_already_follow_gets_a_gap_a_just_joined_one_scrolls_back():
    room = Room("hamlet")

    def limited(events: list[dict], prev_batch: str) -> None:
        room.batches += 1
        services.sync_ingest(
            lease=room.lease,
            own_user_id=room.account.mxid,
            batch=SyncBatch(
                next_batch=f"s{room.batches}",
                joined=[
                    JoinedRoomBatch(
                        room_id=room.room_id, timeline=events, limited=True, prev_batch=prev_batch
                    )
                ],
            ),
        )

    # Joined a room with years of history: no gap to fill it all, scrolling back reads it.
    limited([room.message(f"line {n}") for n in range(50)], "p-join")
    assert not TimelineGap.objects.filter(account=room.account).exists()
    assert Membership.objects.get(account=room.account).history_token == "p-join"
    # Later, too much happened between two syncs: that hole is recorded, where it is.
    later = [room.message(f"line {n}") for n in range(50, 100)]
    limited(later, "p-hole")
    gap = TimelineGap.objects.get(account=room.account)
    assert (gap.token, gap.anchor_ts) == ("p-hole", later[0]["origin_server_ts"])
    assert Membership.objects.get(account=room.account).history_token == "p-join"
    page = room.page()
    assert "Loading missed messages…" in page
    assert page.index("Loading missed messages…") < page.index(">line 50<")


def test_catch_up_carries_the_gaps_still_filling_and_only_those():
    room = Room("hamlet")
    had = [room.message(f"line {n}") for n in range(3)]
    room.ingest(had)
    position = TimelineEntry.objects.filter(account=room.account).order_by("-id").first().id
    room.batches += 1
    services.sync_ingest(
        lease=room.lease,
        own_user_id=room.account.mxid,
        batch=SyncBatch(
            next_batch=f"s{room.batches}",
            joined=[
                JoinedRoomBatch(
                    room_id=room.room_id,
                    timeline=[room.message(f"line {n}") for n in range(10, 13)],
                    limited=True,
                    prev_batch="p-hole",
                )
            ],
        ),
    )
    gap = TimelineGap.objects.get(account=room.account)
    # A page that was away while the gap was recorded learns of it, and where it is.
    response = room.events(after=position)
    html = response.content.decode()
    assert response["X-Gaps"] == str(gap.pk)
    assert f'id="gap-{gap.pk}"' in html and "Loading missed messages…" in html
    # Filled while the page was away again: the page is told to drop the marker.
    services.history_ingest(
        account_id=room.account.pk,
        room_id=room.room_id,
        chunk=[room.message("line 9"), had[-1]],  # reaches what we had: complete
        lease=room.lease,
        gap_id=gap.pk,
        next_token="p-older",
    )
    response = room.events(after=int(response["X-Stream-Position"]))
    assert response["X-Gaps"] == ""
    assert "gap-" not in response.content.decode()


def test_a_push_offers_earlier_messages_while_the_homeserver_has_more(monkeypatch):
    """A page opened before the room's first sync came in has no "Earlier messages" yet."""

    pushed: list[str] = []
    monkeypatch.setattr(notify, "_push_html", lambda account_id, html: pushed.append(html))
    monkeypatch.setattr(open_pages, "any_open", lambda account_id: True)  # a page is open
    room = Room("hamlet")
    room.batches += 1
    services.sync_ingest(
        lease=room.lease,
        own_user_id=room.account.mxid,
        batch=SyncBatch(
            next_batch="s1",
            joined=[
                JoinedRoomBatch(
                    room_id=room.room_id,
                    timeline=[room.message("line 1")],
                    limited=True,
                    prev_batch="p-join",
                )
            ],
        ),
    )
    offered = "".join(pushed)
    assert "Earlier messages" in offered and "?before=0" in offered
    # Once the homeserver has nothing older, pushes stop offering it.
    Membership.objects.filter(account=room.account).update(history_complete=True)
    pushed.clear()
    room.ingest([room.message("line 2")])
    assert "line 2" in "".join(pushed) and "Earlier messages" not in "".join(pushed)
