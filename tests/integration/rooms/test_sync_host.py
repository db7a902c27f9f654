"""A sync host against a real Synapse: rooms, invites and timelines land in the store, once."""

import asyncio

import pytest
from asgiref.sync import sync_to_async
from nio import RoomCreateResponse, RoomSendResponse

from rooms import notify, services
from rooms.models import Event, Membership, SyncLease, SyncState, TimelineEntry
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
    client, monkeypatch, matrix_user_factory, nio_peer_factory
):
    me = matrix_user_factory()
    account = await sync_to_async(signed_in_account)(client, me)
    peer = await nio_peer_factory()
    created = await peer.room_create(name="Ops", invite=[me.user_id])
    await sync_to_async(join)(account, created.room_id)

    def since() -> str:
        return (
            SyncState.objects.filter(account=account).values_list("next_batch", flat=True).first()
            or ""
        )

    assert await run_host_until(since)
    before_messages = await sync_to_async(since)()
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
    stored = await sync_to_async(lambda: set(TimelineEntry.objects.values_list("id", flat=True)))()

    # A replay: the next owner starts from a since-token before the three messages (as after a
    # crash between the homeserver's answer and our commit) and gets them all again.
    await sync_to_async(SyncState.objects.filter(account=account).update)(
        next_batch=before_messages
    )
    pushed: list[int] = []
    real_push = notify.timeline_appended
    monkeypatch.setattr(
        notify,
        "timeline_appended",
        lambda **kwargs: (pushed.extend(kwargs["entry_ids"]), real_push(**kwargs)),
    )

    delivered: list[str] = []
    real_ingest = services.sync_ingest

    def ingest(**kwargs):
        delivered.extend(e["event_id"] for j in kwargs["batch"].joined for e in j.timeline)
        return real_ingest(**kwargs)

    monkeypatch.setattr(services, "sync_ingest", ingest)

    def replayed() -> bool:  # the new owner's first sync round has committed
        return since() not in ("", before_messages)

    assert await run_host_until(replayed)
    assert set(sent) <= set(delivered)  # the replay did bring the three messages again
    assert await sync_to_async(all_there)()
    count = await sync_to_async(Event.objects.filter(event_id__in=sent).count)()
    assert count == 3
    after = await sync_to_async(lambda: set(TimelineEntry.objects.values_list("id", flat=True)))()
    assert after == stored  # no new rows, and no old ones replaced
    assert pushed == []  # nothing announced to open pages as new
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
    from rooms.models import TimelineGap

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
