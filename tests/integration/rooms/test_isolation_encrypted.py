"""A colleague's device decrypted a message, the viewer's device could not: the shared row holds
the clear text, yet nothing of it reaches the viewer (real Synapse, sync host and Olm devices)."""

import io

import pytest
from asgiref.sync import sync_to_async
from nio import RoomCreateResponse

from rooms.models import TimelineEntry
from tests.fixtures.images import PNG, encrypted_png_message
from tests.integration.rooms.helpers import join
from tests.integration.rooms.test_encryption import (
    ENCRYPTION,
    decrypted,
    encrypted_membership,
    encrypting_peer,
    peer_send,
    running_host,
    until,
)
from tests.integration.rooms.test_isolation_history import Person, drain_until, has_event, listen

pytestmark = pytest.mark.django_db(transaction=True)


def sealed_for(person: Person, event_id: str):
    def check():
        return TimelineEntry.objects.filter(
            account=person.account, event__event_id=event_id, sealed=True
        ).exists()

    check.__name__ = f"sealed for {person.creds.localpart}: {event_id}"
    return check


async def test_what_only_a_colleagues_device_could_decrypt_never_reaches_the_viewer(
    synapse, matrix_user_factory, tmp_path
):
    colleague = await sync_to_async(Person)(matrix_user_factory())
    viewer_creds = matrix_user_factory()
    peer = await encrypting_peer(synapse, matrix_user_factory(), tmp_path / "peer")
    created = await peer.room_create(
        name="Board", invite=[colleague.creds.user_id], initial_state=[ENCRYPTION]
    )
    assert isinstance(created, RoomCreateResponse)
    room_id = created.room_id
    await sync_to_async(join)(colleague.account, room_id)
    try:
        async with running_host():
            await until(encrypted_membership(colleague.account, room_id))
            secret = await peer_send(peer, room_id, "MARK-only-the-colleague-decrypted")
            uploaded, keys = await peer.upload(
                io.BytesIO(PNG), content_type="image/png", encrypt=True, filesize=len(PNG)
            )
            image = await peer.room_send(
                room_id,
                "m.room.message",
                encrypted_png_message(uploaded.content_uri, keys),
                ignore_unverified_devices=True,
            )
            await until(decrypted(secret))
            await until(decrypted(image.event_id))

            # The viewer joins later; the sender's device never gave its device those keys.
            viewer = await sync_to_async(Person)(viewer_creds)
            live = await listen(viewer)
            await peer.room_invite(room_id, viewer_creds.user_id)
            await sync_to_async(join)(viewer.account, room_id)
            await until(sealed_for(viewer, secret))
            await until(sealed_for(viewer, image.event_id))
            await until(has_event(viewer, await peer_send(peer, room_id, "welcome")))
            reply = await peer.room_send(
                room_id,
                "m.room.message",
                {
                    "msgtype": "m.text",
                    "body": "MARK-last",
                    "m.relates_to": {"m.in_reply_to": {"event_id": secret}},
                },
                ignore_unverified_devices=True,
            )
            await until(has_event(viewer, reply.event_id))
            await until(decrypted(reply.event_id))
            await drain_until(viewer, live, "MARK-last")

            seen = await sync_to_async(viewer.pages)(room_id) + "".join(viewer.pushed)
            assert "MARK-only-the-colleague-decrypted" not in seen
            assert "dot.png" not in seen
            assert "MARK-last" in seen and "Encrypted message" in seen
            by_event = {"room": room_id, "event": image.event_id}
            denied = await sync_to_async(viewer.client.get)("/media/encrypted/", by_event)
            assert denied.status_code == 404
            assert [status for status, _ in await viewer.media(uploaded.content_uri)] == [404, 404]

            theirs = await sync_to_async(colleague.pages)(room_id)
            assert "MARK-only-the-colleague-decrypted" in theirs and "dot.png" in theirs
            shown = await sync_to_async(colleague.client.get)("/media/encrypted/", by_event)
            assert shown.status_code == 200 and shown.content == PNG
            assert shown["Cache-Control"] == "private, no-store"
    finally:
        await peer.close()
