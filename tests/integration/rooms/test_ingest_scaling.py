"""Ingest of a message costs each account the same, however many people share the room (issue 9:
"ingest cost per message in a room where 200 of our accounts are members grows with the number of
rows written, not with members squared"). Every member of ours ingests each message; if one
account's ingest read every member's state, or rendered the message again, the room's total would
grow with members times members.

Cost here is what the database does for one account's ingest: the queries and the rows they
return. The rooms and syncs are real (Synapse)."""

import contextlib

import pytest
from django.db import connection
from django.db.backends.utils import CursorWrapper
from django.test import Client
from django.test.utils import CaptureQueriesContext

from accounts.matrix.http import quote
from rooms import previews, rendering, services
from rooms.models import RoomState
from tests.integration.rooms.helpers import (
    as_user,
    claim_lease,
    create_room,
    fetch_sync,
    send_event,
    signed_in_account,
    sync_and_ingest,
    text,
)

pytestmark = pytest.mark.django_db(transaction=True)

OTHERS_IN_THE_BIG_ROOM = 24


@pytest.fixture(autouse=True)
def _no_preview_tasks(monkeypatch):
    monkeypatch.setattr(previews, "_enqueue", lambda account_id, event_ids: None)


@contextlib.contextmanager
def rows_fetched(monkeypatch):
    """Count the rows every query returns (Django fetches through the cursor wrapper)."""
    fetched = [0]

    def counting(name):
        def fetch(self, *args):
            rows = getattr(self.cursor, name)(*args)
            fetched[0] += len(rows) if isinstance(rows, list) else rows is not None
            return rows

        return fetch

    with monkeypatch.context() as patch:
        for name in ("fetchone", "fetchmany", "fetchall"):
            patch.setattr(CursorWrapper, name, counting(name), raising=False)
        yield fetched


def member_event(room_id: str, user_id: str) -> dict:
    """A member's event as the room's state here holds it."""
    row = RoomState.objects.get(
        room__room_id=room_id, event_type="m.room.member", state_key=user_id
    )
    return {
        "type": "m.room.member",
        "state_key": user_id,
        "event_id": row.event_id,
        "sender": row.sender,
        "content": row.content,
        "origin_server_ts": row.origin_server_ts,
    }


def ingest_cost(account, since: str, monkeypatch, body: str, sender) -> tuple[list[str], int, str]:
    """Queries and rows of ingesting the account's next real /sync, which must hold `body`.

    Lazy-loading homeservers send the sender's member event along with a message when they do
    not remember having sent it to this device, and Synapse's memory of that varies: every sync
    here carries it, so both rooms are measured alike (and describing the room is measured too)."""
    batch = fetch_sync(account, since=since)
    assert [e["content"]["body"] for room in batch.joined for e in room.timeline] == [body]
    for room in batch.joined:
        room.state = [member_event(room.room_id, sender.user_id)]
    lease = claim_lease(account)
    with rows_fetched(monkeypatch) as rows, CaptureQueriesContext(connection) as queries:
        services.sync_ingest(lease=lease, own_user_id=account.mxid, batch=batch)
    return [q["sql"] for q in queries.captured_queries], rows[0], batch.next_batch


def test_one_message_costs_each_account_the_same_in_a_small_and_a_crowded_room(
    client, matrix_user_factory, monkeypatch
):
    alice, carol, bob = matrix_user_factory(), matrix_user_factory(), matrix_user_factory()
    ours = [signed_in_account(client, alice), signed_in_account(Client(), carol)]
    small, crowded = create_room(bob, name="small"), create_room(bob, name="crowded")
    for person in (alice, carol):
        for room_id in (small, crowded):
            as_user(person, "POST", f"/_matrix/client/v3/join/{quote(room_id)}", {})
    since = {account.pk: sync_and_ingest(account).next_batch for account in ours}
    # People join while we follow the room: their member events become the room's state here.
    for _ in range(OTHERS_IN_THE_BIG_ROOM):
        as_user(matrix_user_factory(), "POST", f"/_matrix/client/v3/join/{quote(crowded)}", {})
    for account in ours:
        since[account.pk] = sync_and_ingest(account, since=since[account.pk]).next_batch
    members = RoomState.objects.filter(room__room_id=crowded, event_type="m.room.member")
    assert members.count() >= OTHERS_IN_THE_BIG_ROOM + 3

    renders = []
    real_sanitize = rendering.sanitize_html
    monkeypatch.setattr(services, "sanitize_html", lambda h: renders.append(h) or real_sanitize(h))
    cost = {}
    for room_id in (small, crowded):
        body = f"news in {room_id}"
        send_event(bob, room_id, text(body, format="org.matrix.custom.html", formatted_body=body))
        for account in ours:  # the first stores and renders the message, the second finds it
            queries, rows, since[account.pk] = ingest_cost(
                account, since[account.pk], monkeypatch, body, bob
            )
            cost[room_id, account.pk] = (len(queries), rows)
            state_writes = [q for q in queries if '"rooms_roomstate"' in q and "SELECT" not in q]
            assert state_writes == [], "a member event we hold was written again"
            if account is ours[1]:
                inserts = [q for q in queries if q.startswith("INSERT") and '"rooms_event"' in q]
                assert inserts == [], "the message was stored again"
        assert len(renders) == 1, "the message was rendered again for the second account"
        renders.clear()

    for account in ours:
        assert cost[crowded, account.pk] == cost[small, account.pk], cost
