""" "Remind me about this message": a row with a time; at that time the account's sync host shows it
on the person's open pages (a notice, and a browser notification where they allowed them).

Delivery is marked in the same transaction as a lease check (as the outbox records its sends), so
a host that lost the account delivers nothing and two hosts never both deliver one reminder. A
reminder due while no page is open waits (the sender's idle round looks again) rather than being
marked delivered to nobody."""

from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone

from rooms import notify, open_pages
from rooms.models import Event, Reminder, Room
from rooms.scheduled import ScheduleRejected
from rooms.services import LeaseHandle
from rooms.sync.leases import lease_check


def reminder_set(*, account_id: int, room: Room, event_id: str, remind_at) -> Reminder:
    """Remember to remind the person of a message in their own timeline of this room."""
    if not _seen_body(account_id, room, event_id):
        raise ScheduleRejected("That message is not in this room's timeline.")
    with transaction.atomic():
        reminder = Reminder.objects.create(
            account_id=account_id, room=room, event_id=event_id, remind_at=remind_at
        )
        # The sender recomputes when to wake (it delivers reminders too).
        transaction.on_commit(lambda: notify.outbox_nudge(account_id=account_id))
    return reminder


def _seen_body(account_id: int, room: Room, event_id: str) -> str:
    """The message's text as this person's own timeline holds it (the isolation rule)."""
    event = Event.objects.filter(
        room=room, event_id=event_id, timeline_entries__account_id=account_id
    ).first()
    if event is None:
        return ""
    content = event.raw.get("content") if isinstance(event.raw, dict) else None
    body = content.get("body") if isinstance(content, dict) else None
    return str(body) if body else "a message"


def reminders_deliver_due(*, lease: LeaseHandle) -> int:
    """Show the account's due reminders on its open pages, each once; how many went."""
    account_id = lease.account_id
    if not open_pages.any_open(account_id):
        return 0  # nobody to show them to: they wait for a page
    with transaction.atomic():
        lease_check(account_id=account_id, owner=lease.owner, token=lease.token)
        due = list(
            Reminder.objects.select_for_update()
            .filter(account_id=account_id, delivered_at=None, remind_at__lte=timezone.now())
            .select_related("room")
            .order_by("remind_at")[:20]
        )
        if not due:
            return 0
        Reminder.objects.filter(pk__in=[r.pk for r in due]).update(delivered_at=timezone.now())
        notices = [
            {"reminder": r, "body": _seen_body(account_id, r.room, r.event_id)[:300]} for r in due
        ]
        html = render_to_string("rooms/scheduled.html#reminder-notices", {"notices": notices})
        transaction.on_commit(lambda: notify.push_html(account_id=account_id, html=html))
    return len(due)


def seconds_until_next_reminder(*, account_id: int) -> float | None:
    remind_at = (
        Reminder.objects.filter(
            account_id=account_id, delivered_at=None, remind_at__gt=timezone.now()
        )
        .order_by("remind_at")
        .values_list("remind_at", flat=True)
        .first()
    )
    if remind_at is None:
        return None
    return max(0.0, (remind_at - timezone.now()).total_seconds())
