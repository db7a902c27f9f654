"""A sync host against a real Synapse: rooms, invites and timelines land in the store, once."""

import asyncio

import pytest
from asgiref.sync import sync_to_async
from nio import RoomCreateResponse, RoomSendResponse

from rooms.models import Event, Membership, SyncLease, TimelineEntry
from rooms.sync.host import SyncHost
from tests.integration.rooms.helpers import join, run_host_until, signed_in_account

pytestmark = pytest.mark.django_db(transaction=True)


async def test_invites_and_joined_rooms_appear_with_names(
    client, matrix_user_factory, nio_peer_factory
):
    me = matrix_user_factory()
    account = await sync_to_async(signed_in_account)(client, me)
    peer = await nio_peer_factory()
    created = await peer.room_create(name="Quarterly planning", invite=[me.user_id])
    assert isinstance(created, RoomCreateResponse)

    def invited() -> bool:
        return Membership.objects.filter(
            account=account, room__room_id=created.room_id, membership="invite"
        ).exists()

    assert await run_host_until(invited)
    invite = await sync_to_async(Membership.objects.get)(
        account=account, room__room_id=created.room_id
    )
    assert invite.display_name == "Quarterly planning"
    assert invite.inviter == peer.user_id


async def test_timeline_is_stored_once_and_leases_are_released(
    client, matrix_user_factory, nio_peer_factory
):
    me = matrix_user_factory()
    account = await sync_to_async(signed_in_account)(client, me)
    peer = await nio_peer_factory()
    created = await peer.room_create(name="Ops", invite=[me.user_id])
    await sync_to_async(join)(account, created.room_id)
    sent = []
    for text in ("one", "two", "three"):
        response = await peer.room_send(
            created.room_id, "m.room.message", {"msgtype": "m.text", "body": text}
        )
        assert isinstance(response, RoomSendResponse)
        sent.append(response.event_id)

    def all_there() -> bool:
        return TimelineEntry.objects.filter(account=account, event__event_id__in=sent).count() == 3

    assert await run_host_until(all_there)
    # A second host run replays from the stored since-token: nothing doubles.
    assert await run_host_until(all_there, timeout=3) is True
    count = await sync_to_async(Event.objects.filter(event_id__in=sent).count)()
    assert count == 3
    bodies = await sync_to_async(list)(
        TimelineEntry.objects.filter(account=account, event__event_id__in=sent)
        .order_by("id")
        .values_list("event__raw__content__body", flat=True)
    )
    assert bodies == ["one", "two", "three"]
    lease = await sync_to_async(SyncLease.objects.get)(account=account)
    assert lease.owner == ""


async def test_two_hosts_one_account_only_one_syncs(client, matrix_user_factory):
    me = matrix_user_factory()
    account = await sync_to_async(signed_in_account)(client, me)
    first, second = SyncHost(capacity=10, lease_seconds=30), SyncHost(capacity=10, lease_seconds=30)
    stop = asyncio.Event()
    tasks = [asyncio.create_task(h.run(stop)) for h in (first, second)]
    try:
        for _ in range(50):
            if account.pk in first.owned or account.pk in second.owned:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(1)
        owners = [h for h in (first, second) if account.pk in h.owned]
        assert len(owners) == 1
        lease = await sync_to_async(SyncLease.objects.get)(account=account)
        assert lease.owner == owners[0].host_id
    finally:
        stop.set()
        await asyncio.gather(*tasks)


async def test_a_limited_sync_gap_is_filled_and_survives_a_restart(
    client, matrix_user_factory, nio_peer_factory
):
    from rooms.models import SyncState, TimelineGap

    me = matrix_user_factory()
    account = await sync_to_async(signed_in_account)(client, me)
    peer = await nio_peer_factory()
    created = await peer.room_create(name="Busy", invite=[me.user_id])
    await sync_to_async(join)(account, created.room_id)

    def synced() -> bool:
        return SyncState.objects.filter(account=account).exclude(next_batch="").exists()

    assert await run_host_until(synced)
    sent = []
    for n in range(70):  # more than the sync filter's timeline limit of 50: a gap
        response = await peer.room_send(
            created.room_id, "m.room.message", {"msgtype": "m.text", "body": f"busy {n}"}
        )
        sent.append(response.event_id)

    def all_stored() -> bool:
        return TimelineEntry.objects.filter(account=account, event__event_id__in=sent).count() == 70

    assert await run_host_until(all_stored)
    assert not await sync_to_async(TimelineGap.objects.filter(account=account).exists)()
