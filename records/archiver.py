"""The archiver: appends what our accounts received to the archive, after the fact.

It reads the local store's timeline rows in id order (one row per account and event: new events
and new recipients of known events alike) from a high-water mark, so the sync hosts' ingest does
no archive work at all. It is idempotent (an event is archived once, a recipient once) and
resumable (the mark and the links move in one transaction per batch).

PostgreSQL hands out ids at insert and rows become visible at commit, so a later id can be seen
before an earlier one. The ids the archiver steps over are kept as holes and read again on every
run until they appear or are older than ARCHIVE_HOLE_GRACE_SECONDS (a rolled-back insert leaves a
hole for ever); `archive_events --rescan` walks every row as a last resort.

Two things change after an event was archived: a key that came late makes it readable (a
`decryption` link, found by re-reading the archive's still-sealed events), and the homeserver's
redacted copy replacing our full one (rooms/redactions.py signals it first and the original is
kept in PreservedOriginal until it is archived)."""

import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from records.chain import Appender, now_for_archive
from records.models import ArchiveRecipient, ArchiveRecord, ArchiverState, PreservedOriginal
from rooms import archive_feed
from rooms.archive_feed import ReceivedEvent

log = logging.getLogger(__name__)

BATCH = 1000
MAX_HOLES = 50_000
MAX_GAP = 20_000
SEALED_RECENT = timedelta(days=2)  # re-read every run; older sealed events once a day
FULL_SWEEP_EVERY = timedelta(days=1)


@dataclass
class ArchiveStats:
    rows_read: int = 0
    events_archived: int = 0
    recipients_added: int = 0
    decryptions: int = 0
    holes_open: int = 0
    holes_expired: int = 0
    rooms: set[str] = field(default_factory=set)


def archive_run(*, batch: int = BATCH, max_batches: int | None = None) -> ArchiveStats:
    """Archive everything committed since the last run (batch by batch), then look for late
    decryptions. Safe to run concurrently with itself: the state row serialises the runs."""
    stats = ArchiveStats()
    batches = 0
    while max_batches is None or batches < max_batches:
        batches += 1
        # Holes are read again once per run (the first batch), not once per batch.
        if not _archive_batch(batch, stats, holes_too=batches == 1):
            break
    stats.decryptions += sweep_decryptions()
    return stats


def archive_rescan(*, batch: int = BATCH) -> ArchiveStats:
    """Walk every timeline row from the start (idempotent): for rows an outage of the rules above
    could have missed. Costs a read of the whole local store."""
    stats = ArchiveStats()
    after = 0
    while True:
        with transaction.atomic():
            rows = archive_feed.timeline_after(after_id=after, limit=batch)
            if not rows:
                break
            _archive_rows(rows, stats)
        after = rows[-1].entry_id
        stats.rows_read += len(rows)
    stats.decryptions += sweep_decryptions(full=True)
    return stats


def _lock_state() -> ArchiverState | None:
    """The state row, locked; None while another run holds it (PostgreSQL): that run is doing
    the work, and waiting for it would only pile runs up on the worker."""
    ArchiverState.objects.get_or_create(name="timeline")
    return ArchiverState.objects.select_for_update(skip_locked=True).filter(name="timeline").first()


def _archive_batch(batch: int, stats: ArchiveStats, *, holes_too: bool) -> bool:
    """One transaction: the holes that filled, the next rows, the new mark. True if more may wait."""
    with transaction.atomic():
        state = _lock_state()
        if state is None:
            return False
        holes: dict[str, float] = dict(state.holes)
        filled = []
        if holes and holes_too:
            filled = archive_feed.timeline_rows(entry_ids=[int(i) for i in holes])
        for row in filled:
            holes.pop(str(row.entry_id), None)
        fresh = archive_feed.timeline_after(after_id=state.high_water, limit=batch)
        now = time.time()
        expected = state.high_water + 1
        for row in fresh:
            # The ids just below a row may still be in open transactions; of a longer run of
            # missing ids (rows deleted since, or a first run on an old store) only the last
            # MAX_GAP are waited for.
            for missing in range(max(expected, row.entry_id - MAX_GAP), row.entry_id):
                holes.setdefault(str(missing), now)
            expected = row.entry_id + 1
        stats.holes_expired += _expire(holes, now)
        rows = filled + fresh
        for start in range(0, len(rows), batch):  # bounded IN lists, however many holes filled
            _archive_rows(rows[start : start + batch], stats)
        if fresh:
            state.high_water = fresh[-1].entry_id
        state.holes = holes
        state.last_run_at = timezone.now()
        state.save()
        stats.rows_read += len(filled) + len(fresh)
        stats.holes_open = len(holes)
    return len(fresh) == batch


def _expire(holes: dict[str, float], now: float) -> int:
    grace = getattr(settings, "ARCHIVE_HOLE_GRACE_SECONDS", 3600)
    expired = [i for i, seen in holes.items() if now - seen > grace]
    if len(holes) - len(expired) > MAX_HOLES:  # a pathological jump in ids: keep the newest
        oldest = sorted(set(holes) - set(expired), key=int)
        expired += oldest[: len(oldest) - MAX_HOLES]
    for i in expired:
        del holes[i]
    if expired:
        log.info("archiver: %d id(s) never committed, given up", len(expired))
    return len(expired)


def _archive_rows(rows: list[ReceivedEvent], stats: ArchiveStats) -> None:
    """Archive the events of these timeline rows not archived yet, and record every recipient."""
    if not rows:
        return
    event_ids = {row.event_id for row in rows}
    known = dict(
        ArchiveRecord.objects.filter(kind=ArchiveRecord.EVENT, event_id__in=event_ids).values_list(
            "event_id", "id"
        )
    )
    first: dict[str, ReceivedEvent] = {}
    for row in rows:
        if row.event_id not in known:
            first.setdefault(row.event_id, row)
    if first:
        known.update(_append_events(list(first.values()), stats))
    recipients = {(known[row.event_id], row.user_id) for row in rows}
    created = ArchiveRecipient.objects.bulk_create(
        [ArchiveRecipient(record_id=pk, user_id=user_id) for pk, user_id in sorted(recipients)],
        ignore_conflicts=True,
    )
    stats.recipients_added += len(created)


def _append_events(rows: list[ReceivedEvent], stats: ArchiveStats) -> dict[str, int]:
    """New event links, per room in arrival order; returns event_id -> link id."""
    originals = _preserved([row.event_id for row in rows if _redacted_because(row.raw)])
    event_ids = [row.event_id for row in rows]
    redacted_by = dict(  # redactions archived before the events they redact
        ArchiveRecord.objects.filter(kind=ArchiveRecord.EVENT, redacts__in=event_ids)
        .order_by("position")
        .values_list("redacts", "event_id")
    )
    by_room: dict[str, list[ReceivedEvent]] = defaultdict(list)
    for row in rows:
        by_room[row.room_id].append(row)
    at = now_for_archive()
    linked: dict[str, int] = {}
    for room_id in sorted(by_room):
        appender = Appender.open(room_id)
        for row in by_room[room_id]:
            record = _event_record(row, originals.get(row.event_id), at)
            record.redacted_by = redacted_by.get(row.event_id, record.redacted_by)
            appender.add(record)
        for record in appender.save():
            linked[record.event_id] = record.id
        stats.rooms.add(room_id)
    _mark_redacted([row for row in rows if row.redacts])
    if originals:
        PreservedOriginal.objects.filter(event_id__in=list(originals)).delete()
    stats.events_archived += len(linked)
    return linked


def _event_record(row: ReceivedEvent, original: tuple | None, at) -> ArchiveRecord:
    raw, encrypted_raw = original if original is not None else (row.raw, row.encrypted_raw)
    because = _redacted_because(row.raw)
    sealed = raw.get("type") == "m.room.encrypted"
    return ArchiveRecord(
        kind=ArchiveRecord.EVENT,
        event_id=row.event_id,
        sender=row.sender,
        event_type=raw.get("type", row.event_type) if isinstance(raw, dict) else row.event_type,
        origin_server_ts=row.origin_server_ts,
        envelope=encrypted_raw if encrypted_raw is not None else raw,
        clear=raw if encrypted_raw is not None else None,
        archived_at=at,
        redacts=row.redacts,
        redacted_by=because,
        sealed=sealed,
    )


def _redacted_because(raw: dict) -> str:
    """The redaction's event id when the homeserver gave us this event already redacted."""
    unsigned = raw.get("unsigned") if isinstance(raw, dict) else None
    because = unsigned.get("redacted_because") if isinstance(unsigned, dict) else None
    if isinstance(because, dict):
        return str(because.get("event_id") or "redacted")[:255]
    return ""


def _preserved(event_ids: list[str]) -> dict[str, tuple[dict, dict | None]]:
    if not event_ids:
        return {}
    rows = PreservedOriginal.objects.filter(event_id__in=event_ids)
    return {row.event_id: (row.raw, row.encrypted_raw) for row in rows}


def _mark_redacted(redactions: list[ReceivedEvent]) -> None:
    """The events these redactions name are marked (the first redaction wins)."""
    for row in redactions:
        ArchiveRecord.objects.filter(
            kind=ArchiveRecord.EVENT, event_id=row.redacts, redacted_by=""
        ).update(redacted_by=row.event_id)


def sweep_decryptions(*, full: bool | None = None) -> int:
    """Append a `decryption` link for each archived sealed event a device of ours has read since.
    Recent sealed events are looked at on every run, all of them once a day (keys restored from
    a backup can come months later). Returns how many became readable."""
    state = ArchiverState.objects.filter(name="timeline").first()
    now = timezone.now()
    if full is None:
        last = state.last_full_sweep_at if state else None
        full = last is None or now - last > FULL_SWEEP_EVERY
    sealed = ArchiveRecord.objects.filter(sealed=True, kind=ArchiveRecord.EVENT)
    if not full:
        sealed = sealed.filter(archived_at__gte=now - SEALED_RECENT)
    found = 0
    after = 0
    while True:
        chunk = list(
            sealed.filter(id__gt=after)
            .order_by("id")
            .values_list("id", "event_id", "room_id", "sender", "origin_server_ts")[:BATCH]
        )
        if not chunk:
            break
        after = chunk[-1][0]
        readable = archive_feed.events_readable(event_ids=[link[1] for link in chunk])
        if readable:
            found += _append_decryptions([link for link in chunk if link[1] in readable], readable)
    if full and state is not None:
        ArchiverState.objects.filter(pk=state.pk).update(last_full_sweep_at=now)
    return found


def _append_decryptions(links: list[tuple[int, str, str, str, int]], readable: dict) -> int:
    by_room: dict[str, list[tuple[int, str, str, int]]] = defaultdict(list)
    for pk, event_id, room_id, sender, ts in links:
        by_room[room_id].append((pk, event_id, sender, ts))
    count = 0
    for room_id in sorted(by_room):
        with transaction.atomic():
            appender = Appender.open(room_id)
            pks = [link[0] for link in by_room[room_id]]
            still = set(
                ArchiveRecord.objects.filter(pk__in=pks, sealed=True).values_list("pk", flat=True)
            )
            at = now_for_archive()
            redactions = []
            for pk, event_id, sender, ts in by_room[room_id]:
                clear, envelope = readable[event_id]
                if pk not in still or _redacted_because(clear):
                    continue  # another run took it, or the server's redacted copy is all we have
                appender.add(
                    ArchiveRecord(
                        kind=ArchiveRecord.DECRYPTION,
                        event_id=event_id,
                        sender=sender,
                        event_type=str(clear.get("type", ""))[:255],
                        origin_server_ts=ts,
                        envelope=envelope,
                        clear=clear,
                        archived_at=at,
                    )
                )
                count += 1
                if clear.get("type") == "m.room.redaction":
                    redactions.append((event_id, _redaction_target(clear)))
            appender.save()
            for event_id, target in redactions:
                ArchiveRecord.objects.filter(
                    kind=ArchiveRecord.EVENT, event_id=target, redacted_by=""
                ).update(redacted_by=event_id)
            ArchiveRecord.objects.filter(pk__in=pks).update(sealed=False)
    return count


def _redaction_target(event: dict) -> str:
    target = event.get("redacts")
    if not isinstance(target, str):  # room version 11 moved it into the content
        content = event.get("content")
        target = content.get("redacts") if isinstance(content, dict) else None
    return target if isinstance(target, str) else ""
