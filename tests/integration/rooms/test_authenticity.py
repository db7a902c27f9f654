"""E2EE authenticity, as Element shows it: messages our device cannot vouch for are marked, a
colleague's changed identity warns, the room indicator counts everyone's devices, and keys a
sender withheld are not asked for again. Against the real Synapse with nio peers."""

import asyncio
import uuid

import pytest
from asgiref.sync import sync_to_async
from nio import RoomCreateResponse

from accounts.matrix.client_api import password_login
from accounts.matrix.cross_signing import CrossSigningKeys
from accounts.matrix.http import matrix_request, quote
from accounts.models import CryptoStoreRecord, MatrixAccount
from rooms import selectors, services
from rooms.models import (
    BackedUpRoomKey,
    Event,
    Membership,
    PinnedIdentity,
    Room,
    TimelineEntry,
    WithheldKey,
)
from tests.integration.rooms.helpers import join, signed_in_account
from tests.integration.rooms.test_encryption import (
    ENCRYPTION,
    encrypted_membership,
    encrypting_peer,
    peer_send,
    running_host,
    sent,
    stored,
    until,
)

pytestmark = pytest.mark.django_db(transaction=True)


def mark_of(account, event_id: str, mark: str):
    """The account's entry of the event carries `mark` ("" for none)."""

    def check():
        return TimelineEntry.objects.filter(
            account=account, event__event_id=event_id, sealed=False, authenticity=mark
        ).first()

    check.__name__ = f"mark_of({event_id}) == {mark!r}"
    return check


def room_page(client, room_id: str) -> str:
    response = client.get(f"/rooms/{room_id}/")
    assert response.status_code == 200
    return response.content.decode()


def cross_sign(homeserver_url: str, creds, device_id: str, *, reset: bool = False):
    """The peer's own client makes cross-signing keys and signs its device with them, as Element
    does (a reset replaces the keys, which the homeserver allows after a password check)."""
    keys = CrossSigningKeys.generate()
    body = keys.upload_body(creds.user_id, None)
    if reset:
        body["auth"] = {
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": creds.user_id},
            "password": creds.password,
        }
    matrix_request(
        homeserver_url,
        "POST",
        "/_matrix/client/v3/keys/device_signing/upload",
        token=creds.access_token,
        body=body,
    )
    own = matrix_request(
        homeserver_url,
        "POST",
        "/_matrix/client/v3/keys/query",
        token=creds.access_token,
        body={"device_keys": {creds.user_id: [device_id]}},
    )
    device = own["device_keys"][creds.user_id][device_id]
    matrix_request(
        homeserver_url,
        "POST",
        "/_matrix/client/v3/keys/signatures/upload",
        token=creds.access_token,
        body={creds.user_id: {device_id: keys.self_signing.sign(device, creds.user_id)}},
    )
    return keys


async def peer_room(client, synapse, matrix_user_factory, tmp_path, *, name="Plans"):
    """We and a nio peer (whose credentials we keep) in an encrypted room the peer made."""
    me = matrix_user_factory()
    account = await sync_to_async(signed_in_account)(client, me)
    peer_creds = matrix_user_factory()
    peer = await encrypting_peer(synapse, peer_creds, tmp_path / "peer")
    created = await peer.room_create(name=name, invite=[me.user_id], initial_state=[ENCRYPTION])
    assert isinstance(created, RoomCreateResponse)
    await sync_to_async(join)(account, created.room_id)
    return me, account, peer_creds, peer, created.room_id


async def test_a_message_from_an_unverified_device_is_marked_until_its_owner_cross_signs_it(
    client, synapse, matrix_user_factory, tmp_path
):
    _, account, peer_creds, peer, room_id = await peer_room(
        client, synapse, matrix_user_factory, tmp_path
    )
    try:
        async with running_host():
            await until(encrypted_membership(account, room_id))
            event_id = await peer_send(peer, room_id, "from a device nobody vouched for")
            await until(mark_of(account, event_id, "unverified"))
            page = await sync_to_async(room_page)(client, room_id)
            assert 'data-authenticity="unverified"' in page
            assert "Encrypted by a device not verified by its owner." in page

            # Our own messages are ours: no mark.
            room = await sync_to_async(Room.objects.get)(room_id=room_id)
            ours = await sync_to_async(services.message_send)(
                account_id=account.pk, room=room, body="mine"
            )
            await until(mark_of(account, await until(sent(ours.txn_id)), ""))

            # The peer cross-signs that device (as Element would): the mark goes.
            await sync_to_async(cross_sign)(synapse.url, peer_creds, peer.device_id)
            await until(mark_of(account, event_id, ""))
            page = await sync_to_async(room_page)(client, room_id)
            assert 'data-authenticity="unverified"' not in page
    finally:
        await peer.close()


async def test_a_key_restored_from_the_backup_marks_its_messages(
    client, synapse, matrix_user_factory, tmp_path
):
    me, account, _, peer, room_id = await peer_room(client, synapse, matrix_user_factory, tmp_path)
    try:
        async with running_host():
            await until(encrypted_membership(account, room_id))
            event_id = await peer_send(peer, room_id, "kept in the backup")
            await until(mark_of(account, event_id, "unverified"))
            session_id = (await until(stored(event_id))).encrypted_raw["content"]["session_id"]
            await until(
                lambda: BackedUpRoomKey.objects.filter(
                    account=account, session_id=session_id
                ).first()
            )

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
            TimelineEntry.objects.filter(event=event).update(sealed=True, authenticity="")

        await sync_to_async(lose_the_device)()
        async with running_host():
            # Readable again, but only the backup vouches for that key: anyone who can write
            # to the backup could have made it.
            await until(mark_of(account, event_id, "unsafe_key"))
        page = await sync_to_async(room_page)(client, room_id)
        assert 'data-authenticity="unsafe_key"' in page
        assert "kept in the backup" in page
    finally:
        await peer.close()


async def test_a_plain_message_in_an_encrypted_room_is_marked_not_encrypted(
    client, synapse, matrix_user_factory, tmp_path
):
    _, account, peer_creds, peer, room_id = await peer_room(
        client, synapse, matrix_user_factory, tmp_path
    )
    try:
        async with running_host():
            await until(encrypted_membership(account, room_id))
            encrypted_id = await peer_send(peer, room_id, "sealed properly")
            # A member's client (or a script) PUTs a raw message into the encrypted room.
            plain_id = (
                await sync_to_async(matrix_request)(
                    synapse.url,
                    "PUT",
                    f"/_matrix/client/v3/rooms/{quote(room_id)}/send/m.room.message/"
                    f"{uuid.uuid4().hex}",
                    token=peer_creds.access_token,
                    body={"msgtype": "m.text", "body": "in the clear"},
                )
            )["event_id"]
            await until(mark_of(account, plain_id, "plaintext"))
            await until(mark_of(account, encrypted_id, "unverified"))
            page = await sync_to_async(room_page)(client, room_id)
            assert 'data-authenticity="plaintext"' in page
            assert page.count("Not encrypted</span>") == 1
    finally:
        await peer.close()


async def test_a_colleague_who_resets_their_identity_triggers_a_warning_until_acknowledged(
    client, synapse, matrix_user_factory, tmp_path
):
    _, account, peer_creds, peer, room_id = await peer_room(
        client, synapse, matrix_user_factory, tmp_path
    )
    try:
        first = await sync_to_async(cross_sign)(synapse.url, peer_creds, peer.device_id)
        async with running_host():
            await until(encrypted_membership(account, room_id))

            def pinned():
                return PinnedIdentity.objects.filter(
                    account=account,
                    user_id=peer_creds.user_id,
                    pinned_master_key=first.master.public,
                ).first()

            await until(pinned)
            page = await sync_to_async(room_page)(client, room_id)
            assert "identity has changed" not in page

            # The peer resets its cross-signing: a new master key.
            second = await sync_to_async(cross_sign)(
                synapse.url, peer_creds, peer.device_id, reset=True
            )

            def changed():
                return PinnedIdentity.objects.filter(
                    account=account,
                    user_id=peer_creds.user_id,
                    seen_master_key=second.master.public,
                    changed_at__isnull=False,
                ).first()

            await until(changed)
        page = await sync_to_async(room_page)(client, room_id)
        assert "identity has changed" in page and peer_creds.user_id in page
        security = (await sync_to_async(client.get)("/security/")).content.decode()
        assert "identity has changed" in security

        response = await sync_to_async(client.post)(
            "/security/identities/acknowledge/",
            {"user_id": peer_creds.user_id, "room_id": room_id},
        )
        assert response.status_code == 302 and response["Location"].endswith(f"/rooms/{room_id}/")
        page = await sync_to_async(room_page)(client, room_id)
        assert "identity has changed" not in page
        row = await sync_to_async(PinnedIdentity.objects.get)(
            account=account, user_id=peer_creds.user_id
        )
        assert row.pinned_master_key == second.master.public
        again = await sync_to_async(client.post)(
            "/security/identities/acknowledge/", {"user_id": peer_creds.user_id}, follow=True
        )
        assert "no identity change to acknowledge" in again.content.decode()
    finally:
        await peer.close()


async def test_the_device_count_includes_members_who_never_spoke(
    client, synapse, matrix_user_factory, tmp_path
):
    me = matrix_user_factory()
    account = await sync_to_async(signed_in_account)(client, me)
    peer = await encrypting_peer(synapse, matrix_user_factory(), tmp_path / "peer")
    silent = [
        await encrypting_peer(synapse, matrix_user_factory(), tmp_path / f"silent{n}")
        for n in range(2)
    ]
    created = await peer.room_create(
        name="Town hall", invite=[s.user_id for s in silent], initial_state=[ENCRYPTION]
    )
    room_id = created.room_id
    try:
        for member in silent:
            await member.join(room_id)
        # Enough chatter that the silent members' joins fall out of our first sync's timeline:
        # lazy-loading then never tells us about them.
        for n in range(55):
            await sync_to_async(matrix_request)(
                synapse.url,
                "PUT",
                f"/_matrix/client/v3/rooms/{quote(room_id)}/send/org.example.chatter/{n}",
                token=peer.access_token,
                body={"n": n},
            )
        await peer.room_invite(room_id, me.user_id)
        await sync_to_async(join)(account, room_id)

        def counted_everyone():
            membership = Membership.objects.filter(
                account=account, room__room_id=room_id, is_encrypted=True
            ).first()
            if membership is None:
                return None
            security = selectors.room_security(account=account, membership=membership)
            return security if security.devices == 3 else None

        async with running_host():
            security = await until(counted_everyone)
        assert security.untrusted == 3
        page = await sync_to_async(room_page)(client, room_id)
        assert "3 of 3 devices not verified or cross-signed" in page
    finally:
        for member in silent:
            await member.close()
        await peer.close()


def key_requests_seen(homeserver_url: str, token: str, since: str, counts: dict) -> str:
    """Drain a device's to-device inbox, counting room key requests by session id."""
    reply = matrix_request(
        homeserver_url,
        "GET",
        f"/_matrix/client/v3/sync?timeout=0&since={quote(since)}",
        token=token,
    )
    for event in reply.get("to_device", {}).get("events", []):
        content = event.get("content", {})
        if event.get("type") == "m.room_key_request" and content.get("action") == "request":
            session_id = content.get("body", {}).get("session_id")
            counts[session_id] = counts.get(session_id, 0) + 1
    return reply["next_batch"]


async def test_key_requests_for_a_withheld_key_stop(client, synapse, matrix_user_factory, tmp_path):
    me = matrix_user_factory()
    account = await sync_to_async(signed_in_account)(client, me)
    # Our other device: key requests go to every device of ours, so it counts them.
    other = await sync_to_async(password_login)(synapse.url, user=me.user_id, password=me.password)
    first = await sync_to_async(matrix_request)(
        synapse.url, "GET", "/_matrix/client/v3/sync?timeout=0", token=other.access_token
    )
    since = first["next_batch"]
    peer = await encrypting_peer(synapse, matrix_user_factory(), tmp_path / "peer")
    created = await peer.room_create(name="Before you", initial_state=[ENCRYPTION])
    room_id = created.room_id
    try:
        # Two messages, two room keys, both sent before we were in the room.
        control_id = await peer_send(peer, room_id, "asked for again, later and later")
        peer.olm.outbound_group_sessions.pop(room_id)
        withheld_id = await peer_send(peer, room_id, "its key is withheld")
        await peer.room_invite(room_id, me.user_id)
        await sync_to_async(join)(account, room_id)

        def session_of(event_id):
            return Event.objects.get(event_id=event_id).raw["content"]["session_id"]

        counts: dict[str, int] = {}
        async with running_host():
            await until(stored(control_id))
            await until(stored(withheld_id))
            control = await sync_to_async(session_of)(control_id)
            withheld = await sync_to_async(session_of)(withheld_id)
            await sync_to_async(matrix_request)(
                synapse.url,
                "PUT",
                f"/_matrix/client/v3/sendToDevice/m.room_key.withheld/{uuid.uuid4().hex}",
                token=peer.access_token,
                body={
                    "messages": {
                        me.user_id: {
                            account.device_id: {
                                "algorithm": "m.megolm.v1.aes-sha2",
                                "room_id": room_id,
                                "session_id": withheld,
                                "sender_key": peer.olm.account.identity_keys["curve25519"],
                                "code": "m.unauthorised",
                                "reason": "You are not allowed to read this",
                            }
                        }
                    }
                },
            )
            await until(
                lambda: WithheldKey.objects.filter(account=account, session_id=withheld).first()
            )
            since = await sync_to_async(key_requests_seen)(
                synapse.url, other.access_token, since, counts
            )
            before = dict(counts)

            async def control_asked_again():
                nonlocal since
                since = await sync_to_async(key_requests_seen)(
                    synapse.url, other.access_token, since, counts
                )
                return counts.get(control, 0) > before.get(control, 0)

            # The host asks again for the control key (it keeps lacking it); every such round
            # would have asked for the withheld one too, just before it (newest first).
            for _ in range(150):
                if await control_asked_again():
                    break
                await asyncio.sleep(0.2)
            else:
                raise AssertionError("the missing control key was never asked for again")
            since = await sync_to_async(key_requests_seen)(
                synapse.url, other.access_token, since, counts
            )
        assert counts.get(withheld, 0) == before.get(withheld, 0), counts
    finally:
        await peer.close()
