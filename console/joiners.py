"""Joiners: a new person is joined to the configured spaces and rooms through Synapse's admin API.

A join is a row first (written with the person), then a call: the row stays until the homeserver
said yes, so a homeserver that is down or a room that refuses costs a retry, never the join."""

from datetime import timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts import services as accounts
from accounts.matrix import synapse_admin
from accounts.matrix.errors import MatrixError
from accounts.models import MatrixAccount
from console.models import AutoJoinRoom, PendingJoin
from records.audit import record_action

MAX_PAUSE = timedelta(hours=1)


def joins_queue(*, account: MatrixAccount) -> int:
    """Write the account's joins of every configured room (once each). Returns how many."""
    now = timezone.now()
    rows = [
        PendingJoin(account=account, room=room, next_attempt_at=now)
        for room in AutoJoinRoom.objects.values_list("room", flat=True)
    ]
    PendingJoin.objects.bulk_create(rows, ignore_conflicts=True)
    return len(rows)


def retry_pause(attempts: int) -> timedelta:
    """5 s, 10 s, 20 s ... up to an hour between tries."""
    return min(timedelta(seconds=5 * 2 ** min(attempts, 20)), MAX_PAUSE)


def joins_due(*, limit: int = 100) -> list[int]:
    now = timezone.now()
    due = PendingJoin.objects.filter(joined_at__isnull=True, next_attempt_at__lte=now)
    due = due.filter(Q(account__is_active=True))
    return list(due.order_by("next_attempt_at").values_list("pk", flat=True)[:limit])


def join_attempt(*, pending_id: int) -> bool:
    """Try one join; on success the row is marked and audited, on failure the error and the
    next try are written. Returns whether it joined."""
    pending = PendingJoin.objects.select_related("account").get(pk=pending_id)
    if pending.joined_at is not None:
        return True
    account = pending.account
    try:
        room_id = synapse_admin.join_user_to_room(
            account.homeserver_url,
            admin_token=accounts.synapse_admin_token(),
            room=pending.room,
            user_id=account.mxid,
        )
    except MatrixError as error:
        attempts = pending.attempts + 1
        PendingJoin.objects.filter(pk=pending.pk).update(
            attempts=attempts,
            last_error=error.message[:500],
            next_attempt_at=timezone.now() + retry_pause(attempts),
        )
        return False
    with transaction.atomic():
        PendingJoin.objects.filter(pk=pending.pk).update(
            attempts=pending.attempts + 1, last_error="", room_id=room_id, joined_at=timezone.now()
        )
        record_action(
            action="person.auto_join",
            target=account.mxid,
            details={"room": pending.room, "room_id": room_id, "attempts": pending.attempts + 1},
        )
    return True


def joins_run(*, limit: int = 100) -> tuple[int, int]:
    """Every due join, once. Returns (joined, still pending)."""
    joined = failed = 0
    for pending_id in joins_due(limit=limit):
        if join_attempt(pending_id=pending_id):
            joined += 1
        else:
            failed += 1
    return joined, failed
