"""The outbox's writes from the sending side: what one attempt to send a queued message came to.

A transient failure (the homeserver down, overloaded or rate limiting) keeps the message queued and
shown as waiting for the server, for as long as GIVE_UP_AFTER; a refusal (forbidden, too large...)
fails that message alone, with a Retry button. Pages hear of every change they show."""

from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from rooms import notify
from rooms.models import Event, OutboxMessage
from rooms.services import LeaseHandle
from rooms.sync.leases import lease_check

# A message the homeserver could not take for this long is shown as not sent (with Retry): by then
# the person should decide whether it still makes sense to send it.
GIVE_UP_AFTER = timedelta(days=1)


def outbox_record_attempt(
    *,
    lease: LeaseHandle,
    txn_id: str,
    event_id: str = "",
    error: str = "",
    permanent: bool = False,
    maybe_delivered: bool = False,
) -> OutboxMessage | None:
    """The sync host's report on one send: accepted (event id), refused for good (`permanent`), or
    a transient failure that leaves the message queued; `maybe_delivered` when the request may have
    reached the homeserver all the same (so the next attempt looks for its echo first)."""
    with transaction.atomic():
        lease_check(account_id=lease.account_id, owner=lease.owner, token=lease.token)
        message = (
            OutboxMessage.objects.select_for_update()
            .filter(account_id=lease.account_id, txn_id=txn_id)
            .first()
        )
        if message is None or message.status != OutboxMessage.PENDING:
            return message
        was_waiting = message.waiting
        message.attempts += 1
        if event_id:
            message.status, message.event_id, message.error = OutboxMessage.SENT, event_id, ""
            message.maybe_delivered = False
        else:
            message.error = error[:2000]
            message.maybe_delivered = message.maybe_delivered or maybe_delivered
            queued_at = max(message.created_at, message.send_at or message.created_at)
            if permanent or timezone.now() - queued_at > GIVE_UP_AFTER:
                message.status = OutboxMessage.FAILED
        message.save(
            update_fields=[
                "status",
                "event_id",
                "error",
                "attempts",
                "maybe_delivered",
                "updated_at",
            ]
        )
        if message.status != OutboxMessage.PENDING or message.waiting != was_waiting:
            account_id, txn = lease.account_id, txn_id
            transaction.on_commit(lambda: notify.outbox_status(account_id=account_id, txn_id=txn))
        return message


def message_retry(*, account_id: int, txn_id: str) -> OutboxMessage:
    """Put a failed message back in the queue under the same transaction id (and the same doubt
    about an earlier attempt: its echo is still looked for before it goes again)."""
    with transaction.atomic():
        message = OutboxMessage.objects.select_for_update().get(
            account_id=account_id, txn_id=txn_id
        )
        if message.status == OutboxMessage.FAILED:
            message.status, message.error, message.attempts = OutboxMessage.PENDING, "", 0
            message.save(update_fields=["status", "error", "attempts", "updated_at"])
            transaction.on_commit(lambda: notify.outbox_nudge(account_id=account_id, txn_id=txn_id))
    return message


def outbox_echo_stored(*, room_id: str, sender: str, txn_id: str) -> str:
    """The event id of a message's echo when our store already holds it as our own sync gave it
    (with its transaction id: only the sending device sees that), else ''."""
    return (
        Event.objects.filter(
            room__room_id=room_id, sender=sender, raw__unsigned__transaction_id=txn_id
        )
        .values_list("event_id", flat=True)
        .first()
        or ""
    )
