"""End-to-end encrypted rooms, both ways, against an independent nio client with its own Olm device.

The webclient side is the real sync host (crypto store and pickle key in the database);
the peer is a plain matrix-nio client with encryption on, as another Matrix client would be."""

import asyncio
import contextlib
import io
import json
import time
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connections
from nio import (
    AsyncClient,
    AsyncClientConfig,
    MegolmEvent,
    RoomCreateResponse,
    RoomMessageText,
    RoomSendResponse,
)

from accounts.matrix import attachments, media_api
from accounts.matrix.client_api import password_login
from accounts.matrix.cross_signing import CrossSigningKeys, public_key_of, verify_signature
from accounts.matrix.http import matrix_request
from accounts.models import CryptoStoreRecord, MatrixAccount
from rooms import media, selectors, services
from rooms.models import (
    BackedUpRoomKey,
    Event,
    Membership,
    OutboxMessage,
    Room,
    SyncState,
    TimelineEntry,
)
from rooms.sync.host import SyncHost
from tests.fixtures.images import PNG, encrypted_png_message
from tests.integration.accounts.test_secrets_at_rest import dump_database
from tests.integration.rooms.helpers import join, signed_in_account

pytestmark = pytest.mark.django_db(transaction=True)

ENCRYPTION = {
    "type": "m.room.encryption",
    "state_key": "",
    "content": {"algorithm": "m.megolm.v1.aes-sha2"},
}


async def encrypting_peer(synapse, creds, store: Path) -> AsyncClient:
    store.mkdir(parents=True, exist_ok=True)
    client = AsyncClient(
        synapse.url,
        creds.user_id,
        device_id=creds.device_id,
        store_path=str(store),
        config=AsyncClientConfig(
            encryption_enabled=True, store_sync_tokens=False, pickle_key="peer-test-key"
        ),
    )
    client.restore_login(creds.user_id, creds.device_id, creds.access_token)
    await client.keys_upload()
    await client.sync(timeout=0, full_state=True)
    return client


@contextlib.asynccontextmanager
async def running_host():
    host = SyncHost(capacity=10, lease_seconds=6)
    stop = asyncio.Event()
    task = asyncio.create_task(host.run(stop))
    try:
        yield host
    finally:
        stop.set()
        await task
        await sync_to_async(connections.close_all)()


async def until(condition, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = await sync_to_async(condition)()
        if value:
            return value
        await asyncio.sleep(0.2)
    raise AssertionError(f"{condition.__name__} did not hold within {timeout:.0f}s")


async def peer_send(peer: AsyncClient, room_id: str, body: str) -> str:
    await peer.sync(timeout=0)
    if peer.should_query_keys:  # as a client's sync loop would: know new members' devices
        await peer.keys_query()
    response = await peer.room_send(
        room_id,
        "m.room.message",
        {"msgtype": "m.text", "body": body},
        ignore_unverified_devices=True,
    )
    assert isinstance(response, RoomSendResponse), response
    return response.event_id


async def peer_reads(peer: AsyncClient, room_id: str, event_id: str, timeout: float = 30.0):
    """The event as the peer's own device decrypted it (or the undecryptable MegolmEvent)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        response = await peer.sync(timeout=1000)
        room = response.rooms.join.get(room_id)
        for event in room.timeline.events if room else []:
            if event.event_id == event_id:
                last = event
                if not isinstance(event, MegolmEvent):
                    return event
    return last


def stored(event_id: str):
    def check():
        return Event.objects.filter(event_id=event_id).first()

    check.__name__ = f"stored({event_id})"
    return check


def decrypted(event_id: str):
    """The event is stored as the message its sender wrote (decrypted)."""

    def check():
        return Event.objects.filter(event_id=event_id, event_type="m.room.message").first()

    check.__name__ = f"decrypted({event_id})"
    return check


def cross_signed(account: MatrixAccount):
    """Our device's keys are published and signed by the account's self-signing key."""

    def check():
        return MatrixAccount.objects.filter(pk=account.pk, cross_signing_state="signed").first()

    check.__name__ = f"cross_signed({account.mxid})"
    return check


def sent(txn_id: str):
    def check():
        row = OutboxMessage.objects.get(txn_id=txn_id)
        return row.event_id if row.status == OutboxMessage.SENT else None

    check.__name__ = f"sent({txn_id})"
    return check


async def encrypted_room(client, synapse, matrix_user_factory, tmp_path):
    me = matrix_user_factory()
    account = await sync_to_async(signed_in_account)(client, me)
    peer = await encrypting_peer(synapse, matrix_user_factory(), tmp_path / "peer")
    created = await peer.room_create(
        name="Secret plans", invite=[me.user_id], initial_state=[ENCRYPTION]
    )
    assert isinstance(created, RoomCreateResponse)
    await sync_to_async(join)(account, created.room_id)
    return account, peer, created.room_id


def encrypted_membership(account: MatrixAccount, room_id: str):
    def check():
        return Membership.objects.filter(
            account=account, room__room_id=room_id, membership="join", is_encrypted=True
        ).first()

    return check


async def test_messages_flow_encrypted_both_ways_and_survive_a_host_restart(
    client, synapse, matrix_user_factory, tmp_path
):
    account, peer, room_id = await encrypted_room(client, synapse, matrix_user_factory, tmp_path)
    try:
        async with running_host():
            await until(encrypted_membership(account, room_id))
            event_id = await peer_send(peer, room_id, "the launch is on Tuesday")
            event = await until(decrypted(event_id))
            assert event.raw["content"]["body"] == "the launch is on Tuesday"
            assert event.encrypted_raw["type"] == "m.room.encrypted"
            assert "ciphertext" in event.encrypted_raw["content"]

            room = await sync_to_async(Room.objects.get)(room_id=room_id)
            reply = await sync_to_async(services.message_send)(
                account_id=account.pk, room=room, body="Tuesday **works**"
            )
            our_event_id = await until(sent(reply.txn_id))
            seen = await peer_reads(peer, room_id, our_event_id)
            assert isinstance(seen, RoomMessageText), seen
            assert seen.body == "Tuesday **works**"
            assert seen.formatted_body == "<p>Tuesday <strong>works</strong></p>"
            ours = await until(stored(our_event_id))
            assert ours.encrypted_raw is not None, "our own echo is decrypted too"

        # A new host (a restart, or another machine) picks the crypto store up and goes on.
        async with running_host():
            later = await peer_send(peer, room_id, "after the restart")
            event = await until(decrypted(later))
            assert event.raw["content"]["body"] == "after the restart"
            again = await sync_to_async(services.message_send)(
                account_id=account.pk, room=room, body="still readable"
            )
            seen = await peer_reads(peer, room_id, await until(sent(again.txn_id)))
            assert isinstance(seen, RoomMessageText) and seen.body == "still readable"
    finally:
        await peer.close()


async def test_room_key_rotates_when_someone_leaves(client, synapse, matrix_user_factory, tmp_path):
    account, peer, room_id = await encrypted_room(client, synapse, matrix_user_factory, tmp_path)
    carol_creds = matrix_user_factory()
    carol = await encrypting_peer(synapse, carol_creds, tmp_path / "carol")
    try:
        await peer.room_invite(room_id, carol_creds.user_id)
        await carol.join(room_id)

        def session_of(event_id):
            return Event.objects.get(event_id=event_id).encrypted_raw["content"]["session_id"]

        async with running_host():
            await until(encrypted_membership(account, room_id))
            room = await sync_to_async(Room.objects.get)(room_id=room_id)
            first = await sync_to_async(services.message_send)(
                account_id=account.pk, room=room, body="carol can read this"
            )
            first_id = await until(sent(first.txn_id))
            seen = await peer_reads(carol, room_id, first_id)
            assert isinstance(seen, RoomMessageText) and seen.body == "carol can read this"
            await until(stored(first_id))

            await carol.room_leave(room_id)

            def carol_left():
                return Event.objects.filter(
                    room__room_id=room_id,
                    event_type="m.room.member",
                    state_key=carol_creds.user_id,
                    raw__content__membership="leave",
                ).exists()

            await until(carol_left)
            second = await sync_to_async(services.message_send)(
                account_id=account.pk, room=room, body="after carol left"
            )
            second_id = await until(sent(second.txn_id))
            await until(stored(second_id))
            first_session = await sync_to_async(session_of)(first_id)
            second_session = await sync_to_async(session_of)(second_id)
            assert first_session != second_session
            seen = await peer_reads(peer, room_id, second_id)
            assert isinstance(seen, RoomMessageText) and seen.body == "after carol left"
    finally:
        await carol.close()
        await peer.close()


async def test_crypto_store_and_database_hold_no_plaintext_keys_or_tokens(
    client, synapse, matrix_user_factory, tmp_path
):
    account, peer, room_id = await encrypted_room(client, synapse, matrix_user_factory, tmp_path)
    try:
        async with running_host():
            await until(encrypted_membership(account, room_id))
            event_id = await peer_send(peer, room_id, "keys stay locked")
            await until(decrypted(event_id))
        session = peer.olm.outbound_group_sessions[room_id]
        room_key = session.session_key  # what the room key message carries (base64)
        account = await sync_to_async(MatrixAccount.objects.get)(pk=account.pk)
        assert not (settings.CRYPTO_STORE_DIR / str(account.pk)).exists(), "nothing on the disk"
        records = await sync_to_async(list)(
            CryptoStoreRecord.objects.filter(account=account).values_list("kind", "value")
        )
        kinds = {kind for kind, _ in records}
        assert {"account", "olm", "megolm", "device"} <= kinds, (
            "the crypto store is in the database"
        )
        secrets = [account.access_token, account.pickle_key, room_key, room_key[:32]]
        for kind, value in records:
            for secret in secrets:
                assert secret not in value, f"{secret[:6]}... in a {kind} record"
        dump = await sync_to_async(dump_database)()
        assert "keys stay locked" in dump  # the dump is real (messages are kept for the records)
        for secret in (account.access_token, account.pickle_key, room_key[:32]):
            assert secret not in dump
    finally:
        await peer.close()


def keys_seen_by(homeserver_url: str, token: str, user_id: str) -> dict:
    return matrix_request(
        homeserver_url,
        "POST",
        "/_matrix/client/v3/keys/query",
        token=token,
        body={"device_keys": {user_id: []}},
    )


async def test_our_device_is_cross_signed_by_its_owner(
    client, synapse, matrix_user_factory, tmp_path
):
    me = matrix_user_factory()
    account = await sync_to_async(signed_in_account)(client, me)
    observer = matrix_user_factory()
    async with running_host():
        account = await until(cross_signed(account))
    keys = await sync_to_async(keys_seen_by)(synapse.url, observer.access_token, me.user_id)
    master = keys["master_keys"][me.user_id]
    self_signing = keys["self_signing_keys"][me.user_id]
    master_public = public_key_of(master)
    # The chain another client checks: master -> self-signing key -> our device.
    assert verify_signature(self_signing, me.user_id, master_public)
    device = keys["device_keys"][me.user_id][account.device_id]
    assert verify_signature(device, me.user_id, public_key_of(self_signing))
    # Our device vouches for the master key too, so our own other sessions can trust it.
    device_key_id = f"ed25519:{account.device_id}"
    assert verify_signature(master, me.user_id, device["keys"][device_key_id], device_key_id)
    stored = CrossSigningKeys.from_json(account.cross_signing_keys)
    assert stored.master.public == master_public

    # A restart finds everything in place and changes nothing: once the new owner has opened the
    # device and committed its first sync round, the keys are the same everywhere.
    def synced_at():
        return (
            SyncState.objects.filter(account=account).values_list("updated_at", flat=True).first()
        )

    before_restart = await sync_to_async(synced_at)()

    def new_owner_synced() -> bool:
        at = synced_at()
        return at is not None and (before_restart is None or at > before_restart)

    async with running_host():
        await until(new_owner_synced)
    again = await sync_to_async(keys_seen_by)(synapse.url, observer.access_token, me.user_id)
    assert public_key_of(again["master_keys"][me.user_id]) == master_public
    restarted = await sync_to_async(MatrixAccount.objects.get)(pk=account.pk)
    unchanged = restarted.cross_signing_keys == account.cross_signing_keys  # no key in the output
    assert unchanged, "the restarted owner replaced the stored cross-signing keys"
    dump = await sync_to_async(dump_database)()
    assert account.cross_signing_keys not in dump
    assert json.loads(account.cross_signing_keys)["master"] not in dump


async def test_room_keys_are_backed_up_and_a_new_device_reads_history_again(
    client, synapse, matrix_user_factory, tmp_path
):
    me = matrix_user_factory()
    account = await sync_to_async(signed_in_account)(client, me)
    peer = await encrypting_peer(synapse, matrix_user_factory(), tmp_path / "peer")
    created = await peer.room_create(
        name="Archive", invite=[me.user_id], initial_state=[ENCRYPTION]
    )
    room_id = created.room_id
    await sync_to_async(join)(account, room_id)
    try:
        async with running_host():
            await until(encrypted_membership(account, room_id))
            event_id = await peer_send(peer, room_id, "kept in the backup")
            await until(decrypted(event_id))
            backed_up = await until(
                lambda: (
                    MatrixAccount.objects.exclude(key_backup_version="")
                    .filter(pk=account.pk)
                    .first()
                )
            )
            session_id = (await until(stored(event_id))).encrypted_raw["content"]["session_id"]

            def in_backup():
                keys = matrix_request(
                    synapse.url,
                    "GET",
                    f"/_matrix/client/v3/room_keys/keys?version={backed_up.key_backup_version}",
                    token=account.access_token,
                )
                return session_id in keys.get("rooms", {}).get(room_id, {}).get("sessions", {})

            await until(in_backup)
            # Recorded, so a restarted owner uploads only keys the backup lacks.
            assert await sync_to_async(
                BackedUpRoomKey.objects.filter(
                    account=account, version=backed_up.key_backup_version, session_id=session_id
                ).exists
            )()

        # The device is lost: a new one signs in with an empty crypto store, and the message is
        # back to its encrypted form (as history fetched by a new device would be).
        def lose_the_device():
            session = password_login(synapse.url, user=me.user_id, password=me.password)
            MatrixAccount.objects.filter(pk=account.pk).update(
                device_id=session.device_id, access_token=session.access_token
            )
            CryptoStoreRecord.objects.filter(account=account).delete()  # its crypto store
            event = Event.objects.get(event_id=event_id)
            Event.objects.filter(pk=event.pk).update(
                raw=event.encrypted_raw, encrypted_raw=None, event_type="m.room.encrypted"
            )
            TimelineEntry.objects.filter(event=event).update(sealed=True)

        await sync_to_async(lose_the_device)()
        async with running_host():
            event = await until(decrypted(event_id))
        assert event.raw["content"]["body"] == "kept in the backup"
    finally:
        await peer.close()


async def test_each_account_sees_only_what_its_own_device_could_decrypt(
    client, synapse, matrix_user_factory, tmp_path
):
    account, peer, room_id = await encrypted_room(client, synapse, matrix_user_factory, tmp_path)
    late_creds = matrix_user_factory()
    try:
        async with running_host():
            await until(encrypted_membership(account, room_id))
            event_id = await peer_send(peer, room_id, "before the newcomer")
            await until(decrypted(event_id))
            # A colleague on the same workspace joins later; the sender never gave their device
            # the key, so they must not read it here either, though the text is in our database.
            await sync_to_async(client.logout)()
            late = await sync_to_async(signed_in_account)(client, late_creds)
            await peer.room_invite(room_id, late_creds.user_id)
            await sync_to_async(join)(late, room_id)
            room = await sync_to_async(Room.objects.get)(room_id=room_id)

            def sealed_for_late():
                return TimelineEntry.objects.filter(
                    account=late, event__event_id=event_id, sealed=True
                ).first()

            await until(sealed_for_late)
            theirs = await sync_to_async(selectors.timeline_items)(account=late, room=room)
            shown = next(i for i in theirs if i.event_id == event_id)
            assert shown.event_type == "m.room.encrypted"
            assert "sent before you joined" in shown.body
            assert "before the newcomer" not in shown.body + shown.html
            ours = await sync_to_async(selectors.timeline_items)(account=account, room=room)
            assert next(i for i in ours if i.event_id == event_id).body == "before the newcomer"

            # A message sent after they joined is theirs to read.
            after = await peer_send(peer, room_id, "welcome aboard")

            def readable_for_late():
                return TimelineEntry.objects.filter(
                    account=late, event__event_id=after, sealed=False
                ).first()

            await until(readable_for_late)
    finally:
        await peer.close()


async def test_room_key_rotates_as_often_as_the_room_asks(
    client, synapse, matrix_user_factory, tmp_path
):
    me = matrix_user_factory()
    account = await sync_to_async(signed_in_account)(client, me)
    peer = await encrypting_peer(synapse, matrix_user_factory(), tmp_path / "peer")
    strict = {**ENCRYPTION, "content": {**ENCRYPTION["content"], "rotation_period_msgs": 2}}
    created = await peer.room_create(name="Strict", invite=[me.user_id], initial_state=[strict])
    await sync_to_async(join)(account, created.room_id)
    try:
        async with running_host():
            await until(encrypted_membership(account, created.room_id))
            room = await sync_to_async(Room.objects.get)(room_id=created.room_id)
            sessions = []
            for n in range(3):
                queued = await sync_to_async(services.message_send)(
                    account_id=account.pk, room=room, body=f"message {n}"
                )
                event_id = await until(sent(queued.txn_id))
                event = await until(stored(event_id))
                sessions.append(event.encrypted_raw["content"]["session_id"])
        assert sessions[0] == sessions[1] != sessions[2]
    finally:
        await peer.close()


async def test_a_message_sent_right_after_joining_an_encrypted_room_is_encrypted(
    client, synapse, matrix_user_factory, tmp_path
):
    account, peer, room_id = await encrypted_room(client, synapse, matrix_user_factory, tmp_path)
    try:
        # Queued before any sync brought the room's state: the host must not assume plain text.
        room = await sync_to_async(Room.objects.create)(room_id=room_id)
        queued = await sync_to_async(services.message_send)(
            account_id=account.pk, room=room, body="first words, encrypted"
        )
        async with running_host():
            event_id = await until(sent(queued.txn_id))
        wire = await sync_to_async(matrix_request)(
            synapse.url,
            "GET",
            f"/_matrix/client/v3/rooms/{room_id}/event/{event_id}",
            token=account.access_token,
        )
        assert wire["type"] == "m.room.encrypted"
        seen = await peer_reads(peer, room_id, event_id)
        assert isinstance(seen, RoomMessageText) and seen.body == "first words, encrypted"
    finally:
        await peer.close()


async def test_files_in_encrypted_rooms_are_encrypted_both_ways(
    client, synapse, matrix_user_factory, tmp_path
):
    account, peer, room_id = await encrypted_room(client, synapse, matrix_user_factory, tmp_path)
    try:
        async with running_host():
            await until(encrypted_membership(account, room_id))
            # The peer sends an encrypted image, as Element does in an encrypted room.
            uploaded, keys = await peer.upload(
                io.BytesIO(PNG), content_type="image/png", encrypt=True, filesize=len(PNG)
            )
            await peer.sync(timeout=0)
            sent_image = await peer.room_send(
                room_id,
                "m.room.message",
                encrypted_png_message(uploaded.content_uri, keys),
                ignore_unverified_devices=True,
            )
            await until(
                lambda: Event.objects.filter(
                    event_id=sent_image.event_id, event_type="m.room.message"
                ).first()
            )
            shown = await sync_to_async(client.get)(
                "/media/encrypted/", {"room": room_id, "event": sent_image.event_id}
            )
            assert shown.status_code == 200 and shown.content == PNG
            assert shown["Content-Type"] == "image/png"
            assert shown["X-Content-Type-Options"] == "nosniff"
            elsewhere = await sync_to_async(client.get)(
                "/media/encrypted/", {"room": room_id, "event": "$not-ours"}
            )
            assert elsewhere.status_code == 404

            # Ours: the homeserver only ever gets ciphertext, and the peer decrypts it.
            room = await sync_to_async(Room.objects.get)(room_id=room_id)
            secret = b"quarterly numbers, not for the server"
            queued = await sync_to_async(media.media_send)(
                account=account,
                room=room,
                uploaded=SimpleUploadedFile("numbers.txt", secret, content_type="text/plain"),
            )
            assert "url" not in queued.content and "file" in queued.content
            event_id = await until(sent(queued.txn_id))
            seen = await peer_reads(peer, room_id, event_id)
            file = seen.source["content"]["file"]
            server_name, media_id = file["url"][len("mxc://") :].split("/", 1)
            ciphertext = await sync_to_async(media_api.download_bytes)(
                synapse.url,
                access_token=peer.access_token,
                server_name=server_name,
                media_id=media_id,
                max_bytes=10_000,
            )
            assert secret not in ciphertext
            assert attachments.decrypt(ciphertext, file) == secret
    finally:
        await peer.close()
