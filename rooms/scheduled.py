""" "Send later": a message queued in the outbox with a time, which its sender leaves alone until then.

The row is the send from the moment it is scheduled (its transaction id is chosen once), so when it
falls due it goes out exactly as a message typed then would: through the account's one outbox
sender, fenced by the account's lease, encrypted where the room is, retried under the same
transaction id after a host dies. Nothing turns a schedule into a send, so no two hosts can both do
it. Editing and cancelling are conditional updates that only touch a row still well ahead of its
time, so they cannot race the sender."""

from datetime import UTC, datetime, timedelta

from django.db import transaction
from django.utils import timezone

from rooms import notify, services
from rooms.models import OutboxMessage, Room

MAX_AHEAD = timedelta(days=365)
# Changes close this long before the time: the sender may already be reading the row after that.
LOCKED_BEFORE = timedelta(seconds=10)


class ScheduleRejected(ValueError):
    """The time or the text cannot be scheduled; the message says why."""


def parse_send_at(value: str, tz_offset: str, *, now: datetime | None = None) -> datetime:
    """The UTC moment the person meant: a datetime-local value ("2026-12-02T09:30") in their own
    time, with their browser's offset for that date (JavaScript's getTimezoneOffset: minutes to
    add to local time to get UTC)."""
    now = now or timezone.now()
    try:
        local = datetime.fromisoformat((value or "").strip())
    except ValueError:
        raise ScheduleRejected("Pick a date and time to send it at.") from None
    if local.tzinfo is not None:
        raise ScheduleRejected("Pick a date and time to send it at.")
    try:
        offset = int(tz_offset or "0")
    except ValueError:
        raise ScheduleRejected("Your browser did not say its time zone; reload the page.") from None
    if not -16 * 60 <= offset <= 16 * 60:
        raise ScheduleRejected("Your browser did not say its time zone; reload the page.")
    send_at = (local + timedelta(minutes=offset)).replace(tzinfo=UTC)
    if send_at <= now:
        raise ScheduleRejected("That time has passed: pick a time in the future.")
    if send_at > now + MAX_AHEAD:
        raise ScheduleRejected("That is more than a year ahead: pick a time within a year.")
    return send_at


def schedule_message(*, account_id: int, room: Room, body: str, send_at: datetime) -> OutboxMessage:
    """Queue a text message to go at `send_at` (already checked by parse_send_at)."""
    try:
        content = services.text_content(body)
    except services.MessageRejected as error:
        raise ScheduleRejected(str(error)) from None
    return services.queue_content(
        account_id=account_id, room=room, content=content, send_at=send_at
    )


def _changeable(account_id: int, room: Room, txn_id: str):
    return OutboxMessage.objects.filter(
        account_id=account_id,
        room=room,
        txn_id=txn_id,
        status=OutboxMessage.PENDING,
        send_at__gt=timezone.now() + LOCKED_BEFORE,
    )


TOO_LATE = "Too late to change: it is being sent now (or has gone)."


def scheduled_edit(
    *, account_id: int, room: Room, txn_id: str, body: str, send_at: datetime
) -> None:
    """New text and time for a message still well ahead of its time (one conditional UPDATE, so
    the sender, which only reads due rows, never sees half of it). Same transaction id."""
    try:
        content = services.text_content(body)
    except services.MessageRejected as error:
        raise ScheduleRejected(str(error)) from None
    with transaction.atomic():
        changed = _changeable(account_id, room, txn_id).update(content=content, send_at=send_at)
        if not changed:
            raise ScheduleRejected(TOO_LATE)
        # The sender wakes to re-read when its next message is due.
        transaction.on_commit(lambda: notify.outbox_nudge(account_id=account_id, txn_id=txn_id))


def scheduled_cancel(*, account_id: int, room: Room, txn_id: str) -> None:
    """Drop a message still well ahead of its time; one that is going already cannot be."""
    deleted, _ = _changeable(account_id, room, txn_id).delete()
    if not deleted:
        raise ScheduleRejected(TOO_LATE)


def scheduled_in_room(*, account_id: int, room: Room) -> list[OutboxMessage]:
    """The person's messages still waiting for their time in this room, soonest first."""
    return list(
        OutboxMessage.objects.filter(
            account_id=account_id,
            room=room,
            status=OutboxMessage.PENDING,
            send_at__gt=timezone.now(),
        )
        .select_related("room")
        .order_by("send_at", "id")
    )


def seconds_until_next_due(*, account_id: int) -> float | None:
    """How long the account's sender may sleep before a scheduled message falls due (None: none
    is scheduled)."""
    send_at = (
        OutboxMessage.objects.filter(
            account_id=account_id, status=OutboxMessage.PENDING, send_at__gt=timezone.now()
        )
        .order_by("send_at")
        .values_list("send_at", flat=True)
        .first()
    )
    if send_at is None:
        return None
    return max(0.0, (send_at - timezone.now()).total_seconds())
