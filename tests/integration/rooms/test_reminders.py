"""'Remind me about this message' against a real Synapse: the reminder reaches the person's open
page at (not before) its time, once, with the message's text from their own timeline; a host that
lost the account's lease delivers nothing; a message not in their timeline cannot be chosen."""

import asyncio
import time
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.utils import timezone

from rooms import open_pages, reminders, scheduled
from rooms.models import Reminder, TimelineEntry
from rooms.notify import account_group
from rooms.services import LeaseHandle
from rooms.sync.leases import LeaseLost
from tests.integration.rooms.test_encryption import running_host, until
from tests.integration.rooms.test_outbox import shared_room

pytestmark = pytest.mark.django_db(transaction=True)


async def next_push(layer, channel, timeout: float) -> str:
    message = await asyncio.wait_for(layer.receive(channel), timeout)
    return message.get("html", "")


async def reminder_pushes(layer, channel, seconds: float) -> list[str]:
    """Every reminder notice pushed to the page within `seconds`."""
    found, deadline = [], time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        try:
            html = await next_push(layer, channel, left)
        except TimeoutError:
            break
        if "reminder-notice" in html:
            found.append(html)
    return found


async def test_a_reminder_reaches_the_open_page_at_its_time_once(
    client, matrix_user_factory, nio_peer_factory
):
    account, room, peer = await shared_room(client, matrix_user_factory, nio_peer_factory)
    sent = await peer.room_send(
        room.room_id, "m.room.message", {"msgtype": "m.text", "body": "quarterly numbers"}
    )
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add(account_group(account.pk), channel)
    await open_pages.page_seen(account.pk, channel)

    def in_timeline():
        return TimelineEntry.objects.filter(account=account, event__event_id=sent.event_id).exists()

    async with running_host():
        await until(in_timeline, timeout=60)
        with pytest.raises(scheduled.ScheduleRejected, match="not in this room"):
            await sync_to_async(reminders.reminder_set)(
                account_id=account.pk,
                room=room,
                event_id="$not-here",
                remind_at=timezone.now() + timedelta(minutes=1),
            )
        remind_at = timezone.now() + timedelta(seconds=8)
        reminder = await sync_to_async(reminders.reminder_set)(
            account_id=account.pk, room=room, event_id=sent.event_id, remind_at=remind_at
        )
        pushes = []
        deadline = time.monotonic() + 90
        while not pushes and time.monotonic() < deadline:
            await open_pages.page_seen(account.pk, channel)  # the page is still open
            pushes = await reminder_pushes(layer, channel, 2)
        arrived = timezone.now()
        assert pushes, "no reminder reached the page"
        assert arrived >= remind_at, "reminded before its time"
        print(f"reminder shown {(arrived - remind_at).total_seconds():.2f} s after its time")
        assert "quarterly numbers" in pushes[0] and "Reminder:" in pushes[0]
        # Once: the following rounds of the sender do not show it again.
        assert await reminder_pushes(layer, channel, 20) == []
    row = await sync_to_async(Reminder.objects.get)(pk=reminder.pk)
    assert row.delivered_at is not None and row.delivered_at >= remind_at


async def test_a_host_without_the_lease_delivers_no_reminder(
    client, matrix_user_factory, nio_peer_factory
):
    account, room, peer = await shared_room(client, matrix_user_factory, nio_peer_factory)
    sent = await peer.room_send(
        room.room_id, "m.room.message", {"msgtype": "m.text", "body": "ping me"}
    )

    def in_timeline():
        return TimelineEntry.objects.filter(account=account, event__event_id=sent.event_id).exists()

    async with running_host():
        await until(in_timeline, timeout=60)
    reminder = await sync_to_async(Reminder.objects.create)(
        account=account, room=room, event_id=sent.event_id, remind_at=timezone.now()
    )
    await open_pages.page_seen(account.pk, "a-page")
    stale = LeaseHandle(account.pk, "gone-host", 999_999)
    with pytest.raises(LeaseLost):
        await sync_to_async(reminders.reminders_deliver_due)(lease=stale)
    row = await sync_to_async(Reminder.objects.get)(pk=reminder.pk)
    assert row.delivered_at is None
