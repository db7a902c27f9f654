"""The archive's own machinery on the real database (SQLite and PostgreSQL), without a homeserver:
the archiver's high-water mark and holes, the hash chain's verdicts on tampered rows, and retention
folding a chain into a checkpoint. tests/integration/records/test_archive.py runs the same paths on
events from a real Synapse."""

import threading
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.db import connection, connections, transaction
from django.utils import timezone

from accounts.models import MatrixAccount
from records import archiver, retention
from records.models import (
    ArchiveChain,
    ArchiveRecord,
    ArchiverState,
    AuditEntry,
    LegalHold,
    RetentionPolicy,
)
from records.verify import verify_room
from rooms.models import Event, Room, TimelineEntry

pytestmark = pytest.mark.django_db(transaction=True)

ROOM = "!chain:hs"


def account(name: str) -> MatrixAccount:
    user = get_user_model().objects.create_user(username=name)
    return MatrixAccount.objects.create(
        user=user,
        homeserver_url="http://127.0.0.1:9",
        mxid=f"@{name}:hs",
        device_id="D",
        access_token="syt_secret",
        is_active=False,  # no sync host is asked to claim it
    )


def receive(acct: MatrixAccount, n: int, *, ts: int | None = None, sender: str = "@peer:hs"):
    """`acct` receives event $n (stored once, one timeline row per account)."""
    room, _ = Room.objects.get_or_create(room_id=ROOM)
    ts = ts if ts is not None else int(timezone.now().timestamp() * 1000)
    raw = {
        "event_id": f"${n}",
        "type": "m.room.message",
        "sender": sender,
        "origin_server_ts": ts,
        "content": {"msgtype": "m.text", "body": f"message {n}"},
    }
    event, _ = Event.objects.get_or_create(
        event_id=f"${n}",
        defaults=dict(
            room=room, sender=sender, event_type="m.room.message", origin_server_ts=ts, raw=raw
        ),
    )
    return TimelineEntry.objects.create(account=acct, room=room, event=event, origin_server_ts=ts)


def test_one_link_per_event_whoever_received_it_and_runs_resume():
    ada, bob = account("ada"), account("bob")
    for n in range(3):
        receive(ada, n)
        receive(bob, n)
    stats = archiver.archive_run(batch=4)  # two batches
    assert (stats.events_archived, stats.recipients_added) == (3, 6)
    assert archiver.archive_run().events_archived == 0  # nothing new: nothing appended
    receive(bob, 3)
    assert archiver.archive_run().events_archived == 1
    receive(ada, 3)  # another account receives a known event later: a recipient, not a link
    stats = archiver.archive_run()
    assert (stats.events_archived, stats.recipients_added) == (0, 1)
    links = ArchiveRecord.objects.filter(room_id=ROOM).order_by("position")
    assert [link.event_id for link in links] == ["$0", "$1", "$2", "$3"]
    assert sorted(links[0].recipients.values_list("user_id", flat=True)) == ["@ada:hs", "@bob:hs"]
    assert verify_room(ROOM).broken is None


def test_a_row_committed_after_a_later_one_is_not_skipped():
    """What PostgreSQL does when two transactions insert: the later id commits first. Here the
    earlier row is made to appear late by deleting and re-inserting it with its id."""
    ada = account("ada")
    entries = [receive(ada, n) for n in range(4)]
    late = entries[1]
    TimelineEntry.objects.filter(pk=late.pk).delete()
    archiver.archive_run()
    state = ArchiverState.objects.get()
    assert state.high_water == entries[-1].pk and str(late.pk) in state.holes
    TimelineEntry.objects.create(
        id=late.pk, account=ada, room=late.room, event=late.event, origin_server_ts=0
    )
    archiver.archive_run()
    assert ArchiveRecord.objects.filter(event_id="$1").exists()
    assert str(late.pk) not in ArchiverState.objects.get().holes


def test_an_uncommitted_row_on_postgresql_is_archived_once_it_commits():
    if connection.vendor != "postgresql":
        pytest.skip("SQLite serialises writers: a later id never commits first")
    ada = account("ada")
    Room.objects.create(room_id=ROOM)  # made first: both writers below insert only their own rows
    inserted, release = threading.Event(), threading.Event()

    def slow_writer():
        try:
            with transaction.atomic():
                receive(ada, 100)
                inserted.set()
                release.wait(30)
        finally:
            connections.close_all()

    writer = threading.Thread(target=slow_writer)
    writer.start()
    assert inserted.wait(30)
    receive(ada, 101)  # a later id, committed first
    archiver.archive_run()
    assert not ArchiveRecord.objects.filter(event_id="$100").exists()
    assert ArchiveRecord.objects.filter(event_id="$101").exists()  # even on the very first run
    release.set()
    writer.join(30)
    archiver.archive_run()
    assert ArchiveRecord.objects.filter(event_id="$100").exists()


@pytest.fixture
def archived_room():
    ada = account("ada")
    for n in range(5):
        receive(ada, n)
    archiver.archive_run()
    return ada


def verify_fails() -> str:
    with pytest.raises(CommandError) as failed:
        call_command("verify_archive")
    return str(failed.value)


def test_an_edited_row_is_named(archived_room):
    call_command("verify_archive")
    link = ArchiveRecord.objects.get(event_id="$2")
    envelope = {**link.envelope, "content": {"msgtype": "m.text", "body": "nothing to see"}}
    ArchiveRecord.objects.filter(pk=link.pk).update(envelope=envelope)
    message = verify_fails()
    assert f"{ROOM} position {link.position} (event $2)" in message
    assert "content differs" in message


def test_a_row_moved_in_the_chain_is_named(archived_room):
    a, b = ArchiveRecord.objects.get(event_id="$1"), ArchiveRecord.objects.get(event_id="$3")
    with transaction.atomic():  # swap their places (through a free one: positions are unique)
        ArchiveRecord.objects.filter(pk=a.pk).update(position=-1)
        ArchiveRecord.objects.filter(pk=b.pk).update(position=a.position)
        ArchiveRecord.objects.filter(pk=a.pk).update(position=b.position)
    assert f"position {a.position} (event $3)" in verify_fails()


def test_a_rehashed_row_breaks_the_next_link_and_a_deleted_one_is_missed(archived_room):
    link = ArchiveRecord.objects.get(event_id="$2")
    link.envelope = {**link.envelope, "content": {"body": "rewritten"}}
    from records.chain import digest_of, link_hash

    link.digest = digest_of(link)
    link.hash = link_hash(link.prev_hash, link.digest)
    link.save()
    assert f"position {link.position + 1} (event $3)" in verify_fails()
    ArchiveRecord.objects.filter(event_id__in=["$2", "$3"]).delete()
    assert f"position {link.position}: link missing" in verify_fails()
    ArchiveChain.objects.all().delete()  # the head row too: the room is still checked
    assert "position 1 (event $0): the room's chain head is missing" in verify_fails()


def test_retention_purges_what_is_due_keeps_what_is_held_and_the_chain_still_holds():
    ada, bob = account("ada"), account("bob")
    day = 86_400_000
    now = timezone.now()
    old = int((now - timedelta(days=10)).timestamp() * 1000)
    receive(ada, 1, ts=old)
    receive(ada, 2, ts=old + 1, sender="@held:hs")
    receive(ada, 3, ts=old + 2)
    receive(bob, 3, ts=old + 2)  # bob received it too
    receive(ada, 4, ts=old + 3)
    receive(ada, 5, ts=int(now.timestamp() * 1000) + day)  # sent later: inside the policy
    archiver.archive_run()
    now += timedelta(days=30, hours=1)  # the run comes when what we archived today is 30 days old
    RetentionPolicy.objects.create(room_id="", keep_days=30)
    LegalHold.objects.create(kind=LegalHold.PERSON, target="@held:hs", reason="case 7")
    LegalHold.objects.create(kind=LegalHold.PERSON, target="@bob:hs", reason="case 8")

    [result] = retention.retention_run(now=now)
    assert (result.purged, result.kept_by_hold, result.local_events) == (2, 2, 2)
    assert set(Event.objects.values_list("event_id", flat=True)) == {"$2", "$3", "$5"}
    purged = ArchiveRecord.objects.filter(kind="event", purged_at__isnull=False)
    # $1 led the chain: folded into its base. $4 comes after held ones: emptied in place.
    assert set(purged.values_list("event_id", flat=True)) == {"$4"}
    assert not ArchiveRecord.objects.filter(event_id="$1").exists()
    assert ArchiveRecord.objects.get(event_id="$4").envelope is None
    assert verify_room(ROOM).broken is None, verify_room(ROOM).broken
    assert AuditEntry.objects.filter(action="retention.purge", target=ROOM).count() == 1

    # Released holds: everything due goes, the leading run folds into a checkpoint.
    LegalHold.objects.update(released_at=now)
    [result] = retention.retention_run(now=now)
    assert result.purged == 2
    assert set(Event.objects.values_list("event_id", flat=True)) == {"$5"}
    chain = ArchiveChain.objects.get(room_id=ROOM)
    assert chain.base_position > 0
    assert not ArchiveRecord.objects.filter(event_id__in=["$1", "$2", "$3", "$4"]).exists()
    assert ArchiveRecord.objects.filter(event_id="$5", envelope__isnull=False).exists()
    assert verify_room(ROOM).broken is None, verify_room(ROOM).broken
    call_command("verify_archive")

    # Deleting the oldest link and moving the base past it (as if retention had) is named.
    first = ArchiveRecord.objects.filter(room_id=ROOM).order_by("position").first()
    first.delete()
    ArchiveChain.objects.filter(room_id=ROOM).update(
        base_position=first.position, base_hash=first.hash
    )
    assert f"position {first.position}: the chain's base is not vouched for" in verify_fails()


def test_a_held_room_keeps_everything():
    ada = account("ada")
    old = int((timezone.now() - timedelta(days=10)).timestamp() * 1000)
    receive(ada, 1, ts=old)
    archiver.archive_run()
    RetentionPolicy.objects.create(room_id=ROOM, keep_days=1)
    LegalHold.objects.create(kind=LegalHold.ROOM, target=ROOM, reason="regulator")
    [result] = retention.retention_run(now=timezone.now() + timedelta(days=2))
    assert (result.purged, result.kept_by_hold) == (0, 1)
    assert Event.objects.filter(event_id="$1").exists()
    assert ArchiveRecord.objects.filter(event_id="$1", purged_at__isnull=True).exists()
    assert not AuditEntry.objects.exists()  # nothing removed: nothing to log every hour


def test_a_link_emptied_outside_retention_is_named(archived_room):
    """Emptying a link by hand (as if purged) without a purge link naming it is caught."""
    link = ArchiveRecord.objects.get(event_id="$3")
    ArchiveRecord.objects.filter(pk=link.pk).update(
        envelope=None, purged_at=timezone.now(), purged_by=link.position + 1
    )
    assert f"position {link.position} (event $3): emptied by purge" in verify_fails()


def test_rooms_without_a_policy_keep_everything():
    ada = account("ada")
    old = int((timezone.now() - timedelta(days=400)).timestamp() * 1000)
    receive(ada, 1, ts=old)
    archiver.archive_run()
    RetentionPolicy.objects.create(room_id="!another:hs", keep_days=1)
    assert retention.retention_run() == []
    assert Event.objects.filter(event_id="$1").exists()
    assert ArchiveRecord.objects.filter(event_id="$1", purged_at__isnull=True).exists()


def test_a_run_that_finds_another_running_leaves_it_the_work():
    if connection.vendor != "postgresql":
        pytest.skip("SQLite has one writer at a time anyway")
    ada = account("ada")
    receive(ada, 1)
    archiver.archive_run()
    receive(ada, 2)
    locked, release = threading.Event(), threading.Event()

    def other_run():
        try:
            with transaction.atomic():
                ArchiverState.objects.select_for_update().get()
                locked.set()
                release.wait(30)
        finally:
            connections.close_all()

    holder = threading.Thread(target=other_run)
    holder.start()
    assert locked.wait(30)
    try:
        assert archiver.archive_run().rows_read == 0  # returned at once instead of queueing
    finally:
        release.set()
        holder.join(30)
    assert archiver.archive_run().events_archived == 1


def test_a_forged_ancient_timestamp_does_not_purge_a_record_early():
    """origin_server_ts comes from the sender's server: retention also waits for the policy's
    days since we archived the event."""
    ada = account("ada")
    receive(ada, 1, ts=1)  # "sent" in 1970
    archiver.archive_run()
    RetentionPolicy.objects.create(room_id="", keep_days=30)
    assert retention.retention_run() == []
    assert Event.objects.filter(event_id="$1").exists()
    [result] = retention.retention_run(now=timezone.now() + timedelta(days=31))
    assert result.purged == 1
