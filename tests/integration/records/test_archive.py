"""The archive against a real Synapse: two peers' messages, plain and end-to-end encrypted, edits
and redactions, received by several of our accounts, land in the archive once each; a redacted
message's original is kept and marked; a message whose key came after it reaches the archive in
clear; verify_archive names an edited link; retention purges what is due and a legal hold keeps
what it covers."""

import time
import uuid
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.core.management import CommandError, call_command
from django.db import connections
from django.utils import timezone

from accounts.matrix.http import quote
from records import archiver, retention
from records.models import ArchiveRecord, AuditEntry, LegalHold, RetentionPolicy
from records.selectors import archived_events
from records.verify import verify_room
from rooms import services
from rooms.models import Event, SyncState
from rooms.sync.leases import lease_claim, lease_release
from tests.integration.rooms.helpers import (
    as_user,
    create_room,
    fetch_sync,
    join,
    send_event,
    signed_in_account,
    sync_and_ingest,
    text,
)
from tests.integration.rooms.test_encryption import (
    decrypted,
    encrypted_membership,
    encrypted_room,
    peer_send,
    running_host,
    stored,
    until,
)

pytestmark = pytest.mark.django_db(transaction=True)


def links_of(event_id: str, kind: str = ArchiveRecord.EVENT) -> list[ArchiveRecord]:
    return list(ArchiveRecord.objects.filter(event_id=event_id, kind=kind))


def the_link(event_id: str) -> ArchiveRecord:
    [link] = links_of(event_id)  # exactly once, whoever received it
    return link


def redact(creds, room_id: str, event_id: str, reason: str) -> str:
    path = f"/_matrix/client/v3/rooms/{quote(room_id)}/redact/{quote(event_id)}/{uuid.uuid4().hex}"
    return as_user(creds, "PUT", path, {"reason": reason})["event_id"]


def edit_of(event_id: str, body: str) -> dict:
    return {
        "msgtype": "m.text",
        "body": f"* {body}",
        "m.new_content": {"msgtype": "m.text", "body": body},
        "m.relates_to": {"rel_type": "m.replace", "event_id": event_id},
    }


def sign_in(client, creds):
    client.logout()
    return signed_in_account(client, creds)


def test_two_peers_messages_edits_and_a_redaction_are_archived_once_each(
    client, synapse, matrix_user_factory
):
    alice, bob = matrix_user_factory(), matrix_user_factory()
    ours = [matrix_user_factory() for _ in range(3)]
    first, second = sign_in(client, ours[0]), sign_in(client, ours[1])
    room_id = create_room(alice, invite=[bob.user_id], name="Trading desk")
    for who in (bob,):
        as_user(who, "POST", f"/_matrix/client/v3/join/{quote(room_id)}", {})
    join(first, room_id)
    join(second, room_id)
    hello = send_event(alice, room_id, text("hello from alice"))
    reply = send_event(bob, room_id, text("hello from bob"))
    edit = send_event(alice, room_id, edit_of(hello, "hello from alice, edited"))
    regret = send_event(bob, room_id, text("buy before the announcement"))
    since = {a.pk: sync_and_ingest(a).next_batch for a in (first, second)}
    redaction = redact(bob, room_id, regret, "deleted")
    sync_and_ingest(first, since=since[first.pk])
    # A colleague who joins now receives the message already redacted by the server, and the
    # shared row takes that form before the archiver ever saw the original.
    third = sign_in(client, ours[2])
    join(third, room_id)
    sync_and_ingest(third)
    assert Event.objects.get(event_id=regret).raw["content"] == {}, "precondition: wiped"

    archiver.archive_run()

    for event_id in (hello, reply, edit, regret, redaction):
        the_link(event_id)
    everyone = sorted(a.mxid for a in (first, second, third))
    assert sorted(the_link(hello).recipients.values_list("user_id", flat=True)) == everyone
    got_redaction = sorted(the_link(redaction).recipients.values_list("user_id", flat=True))
    assert got_redaction == sorted([first.mxid, third.mxid])  # second has not synced since
    kept = the_link(regret)
    assert kept.envelope["content"]["body"] == "buy before the announcement"
    assert kept.redacted_by == redaction
    assert the_link(edit).envelope["content"]["m.new_content"]["body"] == "hello from alice, edited"
    # Replays change nothing: a second run and a rescan append no link.
    before = ArchiveRecord.objects.count()
    archiver.archive_run()
    archiver.archive_rescan()
    assert ArchiveRecord.objects.count() == before
    streamed = {e.event_id: e for e in archived_events(room_id=room_id)}
    assert streamed[regret].redacted_by == redaction
    assert {e.event_id for e in archived_events(room_id=room_id, person=bob.user_id)} >= {
        reply,
        regret,
        redaction,
    }

    call_command("verify_archive", room=room_id)
    ArchiveRecord.objects.filter(pk=the_link(reply).pk).update(
        envelope={**the_link(reply).envelope, "content": {"body": "hello from nobody"}}
    )
    with pytest.raises(CommandError) as broken:
        call_command("verify_archive")
    link = the_link(reply)
    assert f"{room_id} position {link.position} (event {reply})" in str(broken.value)


async def test_encrypted_messages_edits_redactions_and_a_late_key_reach_the_archive(
    client, synapse, matrix_user_factory, tmp_path
):
    account, peer, room_id = await encrypted_room(client, synapse, matrix_user_factory, tmp_path)
    try:
        async with running_host():
            await until(encrypted_membership(account, room_id))
            plan = await peer_send(peer, room_id, "the launch is on Tuesday")
            await until(decrypted(plan))
            response = await peer.room_send(
                room_id,
                "m.room.message",
                edit_of(plan, "Wednesday"),
                ignore_unverified_devices=True,
            )
            edit = response.event_id
            await until(decrypted(edit))
            redaction = (await peer.room_redact(room_id, plan, reason="wrong day")).event_id
            await until(stored(redaction))
        await sync_to_async(archiver.archive_run)()

        # The next message is stored before our device reads it (a plain sync, as when the key
        # is late), archived sealed, and read in place when the host runs again.
        since = await sync_to_async(lambda: SyncState.objects.get(account=account).next_batch)()
        late = await peer_send(peer, room_id, "a key that came late")
        await sync_to_async(_ingest_sealed)(account, since)
        await sync_to_async(archiver.archive_run)()
        sealed = await sync_to_async(the_link)(late)
        assert sealed.sealed and sealed.clear is None
        assert sealed.envelope["type"] == "m.room.encrypted"
        async with running_host():
            await until(decrypted(late))
        await sync_to_async(archiver.archive_run)()
        await sync_to_async(_check_encrypted)(plan, edit, redaction, late, room_id)
    finally:
        await peer.close()
        await sync_to_async(connections.close_all)()  # asgiref's thread's, as running_host does


def _ingest_sealed(account, since: str) -> None:
    """One plain /sync ingested as a host would (no device to decrypt with): the late message is
    stored still encrypted. The lease goes back at once so the real host can take the account."""
    deadline = time.monotonic() + 30
    while (token := lease_claim(account_id=account.pk, owner="plain", seconds=60)) is None:
        assert time.monotonic() < deadline, "the stopped host's lease did not run out"
        time.sleep(0.5)
    lease = services.LeaseHandle(account.pk, "plain", token)
    services.sync_ingest(
        lease=lease, own_user_id=account.mxid, batch=fetch_sync(account, since=since)
    )
    lease_release(account_id=account.pk, owner="plain", token=token)
    # The host syncs from where it was, so its device receives the late message (and its key).
    SyncState.objects.filter(account=account).update(next_batch=since)


def _check_encrypted(plan: str, edit: str, redaction: str, late: str, room_id: str) -> None:
    original = the_link(plan)
    assert original.clear["content"]["body"] == "the launch is on Tuesday"
    assert "ciphertext" in original.envelope["content"]
    assert original.redacted_by == redaction
    assert the_link(edit).clear["content"]["m.new_content"]["body"] == "Wednesday"
    [decryption] = links_of(late, ArchiveRecord.DECRYPTION)
    assert decryption.clear["content"]["body"] == "a key that came late"
    assert not the_link(late).sealed
    streamed = {e.event_id: e for e in archived_events(room_id=room_id)}
    assert streamed[late].clear["content"]["body"] == "a key that came late"
    assert verify_room(room_id).broken is None


def test_retention_purges_only_what_is_due_and_a_legal_hold_keeps_it(
    client, synapse, matrix_user_factory
):
    alice, bob = matrix_user_factory(), matrix_user_factory()
    ours = signed_in_account(client, matrix_user_factory())
    room_id = create_room(alice, invite=[bob.user_id])
    as_user(bob, "POST", f"/_matrix/client/v3/join/{quote(room_id)}", {})
    join(ours, room_id)
    from_alice = [send_event(alice, room_id, text(f"alice {n}")) for n in range(3)]
    from_bob = [send_event(bob, room_id, text(f"bob {n}")) for n in range(2)]
    # Bob (held) answers Alice and edits her words away: kept, though what they point at goes.
    reply = text(
        "answering alice 0", **{"m.relates_to": {"m.in_reply_to": {"event_id": from_alice[0]}}}
    )
    from_bob.append(send_event(bob, room_id, reply))
    from_bob.append(send_event(bob, room_id, edit_of(from_alice[1], "bob's version")))
    sync_and_ingest(ours)
    archiver.archive_run()
    RetentionPolicy.objects.create(room_id=room_id, keep_days=1)
    LegalHold.objects.create(kind=LegalHold.PERSON, target=bob.user_id, reason="inquiry 12")
    later = timezone.now() + timedelta(days=2)

    retention.retention_run(now=timezone.now())  # nothing is a day old yet
    assert Event.objects.filter(event_id__in=from_alice + from_bob).count() == 7
    retention.retention_run(now=later)

    assert not Event.objects.filter(event_id__in=from_alice).exists()
    assert Event.objects.filter(event_id__in=from_bob).count() == 4
    live = ArchiveRecord.objects.filter(kind="event", purged_at__isnull=True)
    assert not live.filter(event_id__in=from_alice).exists()
    assert live.filter(event_id__in=from_bob).count() == 4
    page = client.get(f"/rooms/{room_id}/")  # the room still shows what is left
    assert page.status_code == 200
    assert b"answering alice 0" in page.content and b"alice 2" not in page.content
    assert verify_room(room_id).broken is None
    entry = AuditEntry.objects.filter(action="retention.purge", target=room_id).latest("id")
    assert entry.details["kept_by_hold"] >= 2

    LegalHold.objects.update(released_at=timezone.now())
    retention.retention_run(now=later)
    assert not Event.objects.filter(event_id__in=from_bob).exists()
    assert not ArchiveRecord.objects.filter(kind="event", purged_at__isnull=True).exists()
    assert verify_room(room_id).broken is None
    call_command("verify_archive")
