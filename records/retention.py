"""Retention and legal hold: which archived events have outlived their policy, and purging them
from the archive and the local store, logged in the audit log.

A purge keeps each link's place in its room's chain: the link is emptied (content, sender and
recipients go; its digest stays, so the chain still verifies) and a `purge` link names the links
it emptied. Once the oldest links of a room are all emptied they are folded into the chain's base,
and a `checkpoint` link records the hash the chain continues from."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Q
from django.http import HttpRequest
from django.utils import timezone

from records.audit import record_action
from records.chain import Appender, now_for_archive
from records.models import ArchiveChain, ArchiveRecipient, ArchiveRecord, LegalHold, RetentionPolicy
from rooms import retention as local_store

CHUNK = 2000


@dataclass(frozen=True)
class RoomPurge:
    room_id: str
    keep_days: int
    purged: int  # events emptied in the archive
    kept_by_hold: int  # events past retention kept by a legal hold
    local_events: int  # events deleted from the local store
    folded: int  # links folded into the chain's base


def policies() -> tuple[int | None, dict[str, int]]:
    """(the workspace's keep_days or None, room_id -> keep_days of rooms with their own)."""
    rows = dict(RetentionPolicy.objects.values_list("room_id", "keep_days"))
    return rows.pop("", None), rows


def active_holds() -> tuple[set[str], set[str]]:
    """(held people's Matrix IDs, held rooms' IDs)."""
    rows = LegalHold.objects.filter(released_at__isnull=True).values_list("kind", "target")
    people = {target for kind, target in rows if kind == LegalHold.PERSON}
    rooms = {target for kind, target in rows if kind == LegalHold.ROOM}
    return people, rooms


def retention_run(*, now: datetime | None = None) -> list[RoomPurge]:
    """Apply every room's policy (its own, else the workspace's) to the archive and the local
    store. A held room is skipped whole; a held person's events (sent or received) are kept."""
    now = now or timezone.now()
    workspace, per_room = policies()
    held_people, held_rooms = active_holds()
    results = []
    for room_id in ArchiveChain.objects.order_by("room_id").values_list("room_id", flat=True):
        keep_days = per_room.get(room_id, workspace)
        if keep_days is None:
            continue
        cutoff_at = now - timedelta(days=keep_days)
        cutoff = int(cutoff_at.timestamp() * 1000)
        # Old by its own timestamp AND archived that long ago: origin_server_ts is whatever the
        # sender's server wrote, and a forged ancient one must not make a record vanish early.
        due = ArchiveRecord.objects.filter(
            room_id=room_id,
            kind=ArchiveRecord.EVENT,
            origin_server_ts__lt=cutoff,
            archived_at__lt=cutoff_at,
        )
        if room_id in held_rooms:
            kept = due.filter(purged_at__isnull=True).count()
            if kept:
                results.append(_logged(RoomPurge(room_id, keep_days, 0, kept, 0, 0), cutoff))
            continue
        results.extend(_purge_room(room_id, keep_days, cutoff, due, held_people))
    return results


def _purge_room(room_id: str, keep_days: int, cutoff: int, due, held_people: set[str]):
    kept = 0
    if held_people:
        held = Q(sender__in=held_people) | Q(recipients__user_id__in=held_people)
        kept = due.filter(held, purged_at__isnull=True).distinct().count()
        due = due.exclude(sender__in=held_people).exclude(recipients__user_id__in=held_people)
    purged = local = folded = 0
    after = 0
    while True:
        with transaction.atomic():
            chunk = list(
                due.filter(position__gt=after)
                .order_by("position")
                .values_list("position", "event_id", "purged_at")[:CHUNK]
            )
            if not chunk:
                break
            after = chunk[-1][0]
            fresh = [event_id for _, event_id, purged_at in chunk if purged_at is None]
            purged += _empty(room_id, fresh, keep_days, cutoff)
            # Every event past retention, even one emptied before: history a page fetched
            # again from the homeserver comes back into the local store and goes again.
            local += local_store.events_purge(event_ids=[e for _, e, _ in chunk])
    with transaction.atomic():
        folded = fold(room_id)
    if not (purged or kept or local or folded):
        return []
    result = RoomPurge(room_id, keep_days, purged, kept, local, folded)
    return [_logged(result, cutoff)]


def _logged(result: RoomPurge, cutoff: int) -> RoomPurge:
    """One audit entry per room and run that removed something. A run that only found events
    kept by a hold writes none: hourly entries for a held room would grow the log for nothing."""
    if not (result.purged or result.local_events or result.folded):
        return result
    record_action(
        action="retention.purge",
        target=result.room_id,
        details={
            "keep_days": result.keep_days,
            "cutoff_ts": cutoff,
            "archive_events": result.purged,
            "kept_by_hold": result.kept_by_hold,
            "local_events": result.local_events,
            "folded_links": result.folded,
        },
    )
    return result


def _empty(room_id: str, event_ids: list[str], keep_days: int, cutoff: int) -> int:
    """Empty these events' links (and their late decryptions) and name them in a purge link."""
    if not event_ids:
        return 0
    appender = Appender.open(room_id)
    links = ArchiveRecord.objects.filter(
        room_id=room_id,
        kind__in=[ArchiveRecord.EVENT, ArchiveRecord.DECRYPTION],
        event_id__in=event_ids,
        purged_at__isnull=True,
    )
    positions = sorted(links.values_list("position", flat=True))
    purge = appender.add(
        ArchiveRecord(
            kind=ArchiveRecord.PURGE,
            body={"positions": positions, "keep_days": keep_days, "cutoff_ts": cutoff},
        )
    )
    appender.save()
    ArchiveRecipient.objects.filter(record__in=links).delete()
    links.update(
        envelope=None,
        clear=None,
        sender="",
        redacts="",
        sealed=False,
        purged_at=timezone.now(),
        purged_by=purge.position,
    )
    return len(event_ids)


def fold(room_id: str) -> int:
    """Fold the room's leading run of emptied, purge and checkpoint links into the chain's base,
    vouched for by a new checkpoint link. Returns how many links went (0: nothing to fold)."""
    appender = Appender.open(room_id)
    chain = appender.chain
    live = (
        ArchiveRecord.objects.filter(
            room_id=room_id,
            kind__in=[ArchiveRecord.EVENT, ArchiveRecord.DECRYPTION],
            purged_at__isnull=True,
        )
        .order_by("position")
        .values_list("position", flat=True)
        .first()
    )
    upto = (live - 1) if live is not None else chain.head_position
    foldable = ArchiveRecord.objects.filter(
        room_id=room_id, position__gt=chain.base_position, position__lte=upto
    )
    if not foldable.exclude(kind=ArchiveRecord.CHECKPOINT).exists():
        return 0  # nothing but the last checkpoint: folding it would only add another
    last = ArchiveRecord.objects.get(room_id=room_id, position=upto)
    folded, _ = foldable.delete()
    chain.base_position, chain.base_hash = upto, last.hash
    appender.add(
        ArchiveRecord(
            kind=ArchiveRecord.CHECKPOINT, body={"base": [upto, last.hash], "folded": folded}
        )
    )
    appender.save()
    chain.save(update_fields=["base_position", "base_hash", "updated_at"])
    return folded


# --- managing policies and holds (admin actions, each logged) ---


def policy_saved(*, policy: RetentionPolicy, created: bool, request: HttpRequest) -> None:
    record_action(
        action="retention.policy_set" if not created else "retention.policy_add",
        target=policy.room_id or "workspace",
        request=request,
        details={"keep_days": policy.keep_days, "note": policy.note},
    )


def policy_deleted(*, policy: RetentionPolicy, request: HttpRequest) -> None:
    record_action(
        action="retention.policy_remove",
        target=policy.room_id or "workspace",
        request=request,
        details={"keep_days": policy.keep_days},
    )


def hold_placed(*, hold: LegalHold, request: HttpRequest) -> None:
    record_action(
        action="legal_hold.place",
        target=hold.target,
        request=request,
        details={"kind": hold.kind, "reason": hold.reason, "hold": hold.pk},
    )


def hold_release(*, hold: LegalHold, actor: AbstractBaseUser, request: HttpRequest) -> bool:
    """Release an active hold (retention applies again from the next run). False if it was not."""
    with transaction.atomic():
        released = LegalHold.objects.filter(pk=hold.pk, released_at__isnull=True).update(
            released_at=now_for_archive(), released_by=actor
        )
        if released:
            record_action(
                action="legal_hold.release",
                target=hold.target,
                request=request,
                details={"kind": hold.kind, "reason": hold.reason, "hold": hold.pk},
            )
    return bool(released)
