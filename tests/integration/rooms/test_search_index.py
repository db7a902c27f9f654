"""The search index and selector on the real database (SQLite or PostgreSQL, by DATABASE_URL):
stored rows in, search_messages out. The same cases through a real homeserver are in
test_search.py; these cover the indexer's own rules quickly."""

import itertools

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from accounts.models import MatrixAccount
from rooms.models import Event, Membership, Room, SearchDocument, SearchIndexState, TimelineEntry
from rooms.redactions import apply_server_redactions
from rooms.search import SearchFilters, search_messages
from rooms.search_index import reindex_events, search_index_run

pytestmark = pytest.mark.django_db(transaction=True)
_ids = itertools.count(1)


def person(name: str) -> MatrixAccount:
    user = get_user_model().objects.create_user(username=name)
    return MatrixAccount.objects.create(
        user=user, homeserver_url="http://127.0.0.1:9", mxid=f"@{name}:hs", device_id="D"
    )


def room_of(*accounts: MatrixAccount, room_id: str = "!r:hs") -> Room:
    room, _ = Room.objects.get_or_create(room_id=room_id)
    for account in accounts:
        Membership.objects.get_or_create(account=account, room=room, membership="join")
    return room


def event(room: Room, sender: str, content: dict, *, seen_by=(), sealed=(), **fields) -> Event:
    n = next(_ids)
    event_type = fields.pop("event_type", "m.room.message")
    stored = Event.objects.create(
        event_id=f"$e{n}",
        room=room,
        sender=sender,
        event_type=event_type,
        origin_server_ts=1_700_000_000_000 + n * 1000,
        raw={"type": event_type, "event_id": f"$e{n}", "sender": sender, "content": content},
        **fields,
    )
    for account in seen_by:
        TimelineEntry.objects.create(
            account=account,
            room=room,
            event=stored,
            origin_server_ts=stored.origin_server_ts,
            sealed=account in sealed,
        )
    return stored


def found(account: MatrixAccount, query: str, **filters) -> list[str]:
    page = search_messages(account=account, query=query, filters=SearchFilters(**filters))
    return [hit.event_id for hit in page.hits]


def test_english_and_japanese_are_found_in_the_searchers_own_timeline_only():
    alice, bob = person("alice"), person("bob")
    room = room_of(alice, bob)
    ja = event(room, alice.mxid, {"body": "明日の会議は10時"}, seen_by=[alice])
    en = event(room, alice.mxid, {"body": "The budget Meeting moved"}, seen_by=[alice, bob])
    search_index_run()
    assert found(alice, "会議") == [ja.event_id]
    assert found(alice, "会") == [ja.event_id]
    assert found(alice, "の会議は") == [ja.event_id]
    assert found(alice, "議会") == []
    assert found(alice, "meeting") == [en.event_id]
    assert found(alice, "budget MEETING") == [en.event_id]
    assert found(bob, "会議") == []  # stored once, but bob's account never received it
    assert found(bob, "budget") == [en.event_id]


def test_a_message_the_searchers_device_could_not_decrypt_is_not_found():
    alice, bob = person("alice"), person("bob")
    room = room_of(alice, bob)
    secret = event(room, alice.mxid, {"body": "secret plans"}, seen_by=[alice, bob], sealed=[bob])
    search_index_run()
    assert found(alice, "plans") == [secret.event_id]
    assert found(bob, "plans") == []


def test_a_late_decrypted_message_is_indexed_on_the_next_run():
    alice = person("alice")
    room = room_of(alice)
    late = event(
        room, "@carol:hs", {"ciphertext": "x"}, seen_by=[alice], event_type="m.room.encrypted"
    )
    search_index_run()
    assert SearchDocument.objects.get(event=late).pending
    late.event_type = "m.room.message"
    late.raw = {"type": "m.room.message", "content": {"body": "arrived late"}}
    late.save()
    search_index_run()
    assert found(alice, "late") == [late.event_id]


def test_edits_replace_the_text_and_redactions_remove_it():
    alice, mallory = person("alice"), person("mallory")
    room = room_of(alice, mallory)
    original = event(room, alice.mxid, {"body": "lunch at noon"}, seen_by=[alice])
    edit = event(
        room,
        alice.mxid,
        {"body": "* dinner at eight", "m.new_content": {"body": "dinner at eight"}},
        seen_by=[alice],
        rel_type="m.replace",
        relates_to=original.event_id,
    )
    forged = event(  # someone else's "edit" is not an edit
        room,
        mallory.mxid,
        {"body": "* hacked", "m.new_content": {"body": "hacked"}},
        seen_by=[alice],
        rel_type="m.replace",
        relates_to=original.event_id,
    )
    search_index_run()
    assert found(alice, "lunch") == []
    assert found(alice, "dinner") == [original.event_id]
    assert found(alice, "hacked") == []
    event(
        room, alice.mxid, {}, seen_by=[alice], event_type="m.room.redaction", redacts=edit.event_id
    )
    search_index_run()
    assert found(alice, "lunch") == [original.event_id]  # back to the text before the edit
    event(
        room,
        mallory.mxid,
        {},
        seen_by=[alice],
        event_type="m.room.redaction",
        redacts=original.event_id,
    )
    search_index_run()
    assert found(alice, "lunch") == [original.event_id]  # mallory may not delete it
    event(
        room,
        alice.mxid,
        {},
        seen_by=[alice],
        event_type="m.room.redaction",
        redacts=original.event_id,
    )
    search_index_run()
    assert found(alice, "lunch") == []
    assert forged.event_id  # (kept for the reader)


def test_filters_and_pages():
    alice = person("alice")
    room, other = room_of(alice), room_of(alice, room_id="!other:hs")
    a = event(room, alice.mxid, {"body": "report one"}, seen_by=[alice])
    b = event(other, "@bob:hs", {"body": "report two"}, seen_by=[alice])
    c = event(
        room,
        "@bob:hs",
        {"body": "report.pdf", "msgtype": "m.file", "url": "mxc://hs/x"},
        seen_by=[alice],
    )
    search_index_run()
    assert found(alice, "report") == [c.event_id, b.event_id, a.event_id]
    assert found(alice, "report", room_id=other.room_id) == [b.event_id]
    assert found(alice, "report", sender="@bob:hs") == [c.event_id, b.event_id]
    assert found(alice, "report", has_file=True) == [c.event_id]
    page = search_messages(account=alice, query="report", limit=2)
    assert [h.event_id for h in page.hits] == [c.event_id, b.event_id]
    rest = search_messages(account=alice, query="report", before=page.next_key, limit=2)
    assert [h.event_id for h in rest.hits] == [a.event_id] and rest.next_key is None


def test_ids_committed_out_of_order_are_read_when_they_appear():
    alice = person("alice")
    room = room_of(alice)
    first = event(room, alice.mxid, {"body": "alpha"}, seen_by=[alice], id=1000)
    last = event(room, alice.mxid, {"body": "charlie"}, seen_by=[alice], id=1002)
    search_index_run()  # id 1001 was handed out but its transaction had not committed yet
    assert [hole[0] for hole in SearchIndexState.objects.get().holes][-1] == 1001
    assert found(alice, "charlie") == [last.event_id] and found(alice, "alpha") == [first.event_id]
    skipped = event(room, alice.mxid, {"body": "bravo"}, seen_by=[alice], id=1001)
    search_index_run()
    assert found(alice, "bravo") == [skipped.event_id]
    assert 1001 not in [hole[0] for hole in SearchIndexState.objects.get().holes]


def test_search_page_escapes_message_html_and_opens_the_message_in_context():
    alice = person("alice")
    room = room_of(alice)
    before = [event(room, alice.mxid, {"body": f"earlier {n}"}, seen_by=[alice]) for n in range(3)]
    evil = event(
        room,
        alice.mxid,
        {
            "body": '<img src=x onerror="alert(1)"> quarterly <script>alert(2)</script>',
            "format": "org.matrix.custom.html",
            "formatted_body": '<img src=x onerror="alert(1)"> quarterly',
        },
        seen_by=[alice],
        html="quarterly",  # what the ingest sanitizer keeps of formatted_body
    )
    event(room, alice.mxid, {"body": "later"}, seen_by=[alice])
    search_index_run()
    client = Client()
    client.force_login(alice.user)
    page = client.get("/search/", {"q": "quarterly"}).content.decode()
    assert "<mark>quarterly</mark>" in page
    assert "<img src=x" not in page and "<script>alert" not in page
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in page
    entry = TimelineEntry.objects.get(account=alice, event=evil)
    assert f"/rooms/{room.room_id}/messages/{entry.pk}/?q=quarterly#ev-{entry.pk}" in page
    context = client.get(f"/rooms/{room.room_id}/messages/{entry.pk}/").content.decode()
    assert f'id="ev-{entry.pk}"' in context and "earlier 0" in context and "later" in context
    assert "<img src=x" not in context and "<script>alert" not in context
    assert before


def test_another_persons_message_cannot_be_opened_in_context():
    alice, bob = person("alice"), person("bob")
    room = room_of(alice, bob)
    secret = event(room, alice.mxid, {"body": "only alice"}, seen_by=[alice])
    entry = TimelineEntry.objects.get(account=alice, event=secret)
    client = Client()
    client.force_login(bob.user)
    assert client.get(f"/rooms/{room.room_id}/messages/{entry.pk}/").status_code == 404
    assert "only alice" not in client.get("/search/", {"q": "alice"}).content.decode()


def test_bad_filters_get_a_clear_message():
    alice = person("alice")
    client = Client()
    client.force_login(alice.user)
    page = client.get(
        "/search/", {"q": "x", "since": "yesterday", "sender": "bob"}
    ).content.decode()
    assert "From must be a date" in page and "Sender must be a Matrix ID" in page


def test_a_copy_the_server_redacted_removes_the_message_from_search():
    alice = person("alice")
    room = room_of(alice)
    gone = event(room, alice.mxid, {"body": "withdrawn offer"}, seen_by=[alice])
    search_index_run()
    assert found(alice, "offer") == [gone.event_id]
    redacted_copy = {
        "type": "m.room.message",
        "event_id": gone.event_id,
        "content": {},
        "unsigned": {"redacted_because": {"type": "m.room.redaction"}},
    }
    apply_server_redactions([redacted_copy], {gone.event_id: gone.pk})
    assert found(alice, "offer") == []
    reindex_events([gone.event_id])  # recomputing from the stored row keeps it out
    assert found(alice, "offer") == []
