"""Interop with a second, independent E2EE implementation: matrix-js-sdk with its Rust crypto (the
stack Element Web runs), set to share keys only with devices their owner cross-signed (MSC4153,
Element's "exclude insecure devices")."""

import asyncio

import pytest
from asgiref.sync import sync_to_async

from accounts.models import MatrixAccount
from rooms import selectors, services
from rooms.models import DeviceTrust, Event, Room, WithheldKey
from tests.integration.rooms.helpers import signed_in_account
from tests.integration.rooms.test_encryption import (
    cross_signed,
    decrypted,
    running_host,
    sent,
    until,
)
from tests.interop.js_peer import JsPeer

pytestmark = pytest.mark.django_db(transaction=True)


async def room_shared_with(js: JsPeer, account: MatrixAccount, other, name: str):
    """Once our device is published and cross-signed, a new private (encrypted) room of ours that
    the js user has joined: (account reloaded, room id, the js side's join answer)."""
    account = await until(cross_signed(account))
    room_id = await sync_to_async(services.room_create)(
        account=account, name=name, topic="", public=False
    )
    await sync_to_async(services.room_invite)(
        account=account, room_id=room_id, user_id=other.user_id
    )
    joined = await asyncio.to_thread(js.join, room_id)
    return account, room_id, joined


async def test_matrix_js_sdk_peer_exchanges_encrypted_messages_and_trusts_our_device(
    client, synapse, matrix_user_factory
):
    me = matrix_user_factory()
    account = await sync_to_async(signed_in_account)(client, me)
    other = matrix_user_factory()
    js = await asyncio.to_thread(JsPeer)
    try:
        await asyncio.to_thread(js.start, synapse.url, other.user_id, other.password)
        await asyncio.to_thread(js.set_only_signed, True)
        async with running_host():
            account, room_id, joined = await room_shared_with(js, account, other, "Interop")
            assert joined["encrypted"] is True
            # Element's check: our device is cross-signed by its owner.
            status = await asyncio.to_thread(js.device_status, me.user_id, account.device_id)
            assert status["known"] and status["signed_by_owner"], status

            room = await sync_to_async(Room.objects.get)(room_id=room_id)
            ours = await sync_to_async(services.message_send)(
                account_id=account.pk, room=room, body="hello from webclient"
            )
            our_event_id = await until(sent(ours.txn_id))
            seen = await asyncio.to_thread(js.wait_message, room_id, "hello from webclient")
            assert seen["event_id"] == our_event_id
            assert seen["decrypted"] is True

            theirs = await asyncio.to_thread(js.send, room_id, "hello from matrix-js-sdk")
            event = await until(decrypted(theirs))
            assert event.raw["content"]["body"] == "hello from matrix-js-sdk"
            assert event.encrypted_raw["type"] == "m.room.encrypted"

            # Our side checks the js device's cross-signing chain too, for the room indicator.
            trust = await until(
                lambda: DeviceTrust.objects.filter(
                    account=account, user_id=other.user_id, cross_signed=True
                ).first()
            )
            assert not trust.verified
            security = await sync_to_async(selectors.room_security)(
                account=account,
                membership=await sync_to_async(selectors.membership_for)(
                    account=account, room_id=room_id
                ),
            )
            assert security.encrypted and security.devices == 1 and security.all_trusted
    finally:
        await asyncio.to_thread(js.close)


async def test_a_withheld_key_is_explained_in_place_of_the_message(
    client, synapse, matrix_user_factory
):
    me = matrix_user_factory()
    account = await sync_to_async(signed_in_account)(client, me)
    other = matrix_user_factory()
    js = await asyncio.to_thread(JsPeer)
    try:
        await asyncio.to_thread(js.start, synapse.url, other.user_id, other.password)
        # Element's "never send to unverified sessions": our device is cross-signed by its owner,
        # but the js user never verified us, so the key is withheld (m.unverified).
        await asyncio.to_thread(js.set_only_verified, True)
        async with running_host():
            account, room_id, _ = await room_shared_with(js, account, other, "Strict")
            # The js side must know our device to refuse it (else it simply never hears of it).
            status = await asyncio.to_thread(js.device_status, me.user_id, account.device_id)
            assert status["known"], status
            event_id = await asyncio.to_thread(js.send, room_id, "verified eyes only")
            await until(
                lambda: WithheldKey.objects.filter(account=account, code="m.unverified").first()
            )
            event = await until(lambda: Event.objects.filter(event_id=event_id).first())
            assert event.event_type == "m.room.encrypted"
            room = await sync_to_async(Room.objects.get)(room_id=room_id)
            items = await sync_to_async(selectors.timeline_items)(account=account, room=room)
            shown = next(i for i in items if i.event_id == event_id)
            assert "shares keys only with devices it has verified" in shown.body
            assert "verified eyes only" not in shown.body
    finally:
        await asyncio.to_thread(js.close)
