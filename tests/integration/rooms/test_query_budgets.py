"""Query budgets: the room page and the ingest of one message cost a fixed number of queries,
whatever the room holds. The rooms are real: built on the homeserver by two people (messages,
reactions, replies, edits, a thread, a deletion, a link, read receipts) and ingested from a real
/sync, as a sync host does.

The budgets are the counts measured when they were set; a change that needs more queries raises
them here, on purpose and in review."""

import re

import pytest
from asgiref.sync import async_to_sync
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.matrix.http import quote
from rooms import open_pages, previews, services
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

# Raised with issue 8 from 27/27: reply previews read through the viewer's own timeline (and its
# own view of deletions), identity warnings, gaps still filling (page); the media index, the local
# read marker, authenticity marks and gap bookkeeping (ingest).
ROOM_PAGE_BUDGET = 27  # lowered with issue 9 from 30: a page load no longer saves the session
INGEST_ONE_MESSAGE_BUDGET = 30


def busy_room(alice, bob, *, messages: int, name: str) -> str:
    """A room where Bob and Alice talk the way people do: every kind of relation the page folds
    into its messages, spread over the whole history."""
    room_id = create_room(bob, invite=[alice.user_id], name=name)
    as_user(alice, "POST", f"/_matrix/client/v3/join/{quote(room_id)}", {})
    sent: list[str] = []
    for n in range(messages):
        author = alice if n % 3 == 0 else bob
        content = text(f"{name} message {n}")
        if n % 7 == 6:
            content["m.relates_to"] = {"m.in_reply_to": {"event_id": sent[-1]}}
        if n == messages // 2:
            content = text(f"{name} plan at https://intranet.invalid/plan-{n}")
        sent.append(send_event(author, room_id, content))
        if n % 5 == 4:
            for who, key in ((alice, "👍"), (bob, "🎉")):
                send_event(who, room_id, _reaction(sent[-1], key), "m.reaction")
        if n % 10 == 8:
            edit = text(f"* {name} message {n}, corrected")
            edit["m.new_content"] = text(f"{name} message {n}, corrected")
            edit["m.relates_to"] = {"rel_type": "m.replace", "event_id": sent[-1]}
            send_event(author, room_id, edit)
    root = sent[-4]
    for n in range(3):
        reply = text(f"{name} thread reply {n}")
        reply["m.relates_to"] = {"rel_type": "m.thread", "event_id": root}
        send_event(alice if n % 2 else bob, room_id, reply)
    redact = f"/_matrix/client/v3/rooms/{quote(room_id)}/redact/{quote(sent[-3])}/r-{name}"
    as_user(bob, "PUT", redact, {})  # Bob takes back one of his own messages
    answer = text(f"{name} what did you delete?")  # every room quotes a deleted message
    answer["m.relates_to"] = {"m.in_reply_to": {"event_id": sent[-3]}}
    send_event(alice, room_id, answer)
    for who, seen in ((bob, sent[-2]), (alice, sent[-1])):
        receipt = f"/_matrix/client/v3/rooms/{quote(room_id)}/receipt/m.read/{quote(seen)}"
        as_user(who, "POST", receipt, {})
    return room_id


def _reaction(event_id: str, key: str) -> dict:
    return {"m.relates_to": {"rel_type": "m.annotation", "event_id": event_id, "key": key}}


@pytest.fixture(autouse=True)
def _no_preview_tasks(monkeypatch):
    """Ingest queues link previews for the worker; no worker here, and none is needed."""
    monkeypatch.setattr(previews, "_enqueue", lambda account_id, event_ids: None)


def page_queries(client, room_id: str) -> list[str]:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(f"/rooms/{room_id}/")
    assert response.status_code == 200
    return [query["sql"] for query in queries.captured_queries]


def test_the_room_page_costs_the_same_at_20_and_at_50_messages(client, matrix_user_factory):
    alice, bob = matrix_user_factory(), matrix_user_factory()
    account = signed_in_account(client, alice)
    small = busy_room(alice, bob, messages=20, name="small")
    large = busy_room(alice, bob, messages=50, name="large")
    sync_and_ingest(account)

    for room_id in (small, large):  # every kind of relation is on both pages
        page = client.get(f"/rooms/{room_id}/").content.decode()
        assert page.count('class="reaction') >= 4 and "reply-preview" in page, room_id
        assert "corrected" in page and "3 replies" in page and "Seen by" in page, room_id
        assert re.search(r'class="event[^"]* redacted', page), room_id
        assert "https://intranet.invalid/" in page, room_id
    small_queries = page_queries(client, small)
    large_queries = page_queries(client, large)
    assert len(large_queries) == len(small_queries), "\n".join(large_queries)
    assert len(large_queries) <= ROOM_PAGE_BUDGET, "\n".join(large_queries)


def ingest_queries(account, *, since: str, expect: list[str]) -> tuple[list[str], str]:
    """The queries of ingesting the account's next real /sync (the push to open pages, after
    commit, included), which must hold exactly the `expect`ed new messages."""
    batch = fetch_sync(account, since=since)
    assert [e["content"].get("body") for room in batch.joined for e in room.timeline] == expect
    lease = claim_lease(account)
    with CaptureQueriesContext(connection) as queries:
        services.sync_ingest(lease=lease, own_user_id=account.mxid, batch=batch)
    return [query["sql"] for query in queries.captured_queries], batch.next_batch


def test_ingesting_one_message_costs_a_fixed_few_queries(client, matrix_user_factory):
    alice, bob = matrix_user_factory(), matrix_user_factory()
    account = signed_in_account(client, alice)
    room_id = busy_room(alice, bob, messages=10, name="ingest")
    since = sync_and_ingest(account).next_batch

    # A page is open, so the push (rendered after commit) is counted too.
    async_to_sync(open_pages.page_seen)(account.pk, "budget-page")
    send_event(bob, room_id, text("one more thing"))
    one, since = ingest_queries(account, since=since, expect=["one more thing"])
    assert len(one) <= INGEST_ONE_MESSAGE_BUDGET, "\n".join(one)

    five_bodies = [f"and another {n}" for n in range(5)]
    for body in five_bodies:
        send_event(bob, room_id, text(body))
    five, _ = ingest_queries(account, since=since, expect=five_bodies)
    assert len(five) == len(one), "\n".join(five)  # a busier sync costs no more per message
