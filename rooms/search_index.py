"""The search indexer: follows the Event table after commit and keeps SearchDocument in step.

It never runs inside ingest. It reads Event rows in id order from a high-water mark, in small
transactions; ids it skipped (PostgreSQL hands out ids before commit, so a slower transaction can
commit a lower id later) are kept as holes and read again until they appear or expire. Everything
it does is idempotent: a document is recomputed from the stored events, never patched, so running
twice, or two runs at once, ends the same. It runs from Celery beat and, right after a sync
stored new events, from a queued task (schedule()).

What changes a document: the message itself (text, file), its latest edit by the same sender,
and a redaction (of the message, or of the edit). An event still encrypted for every device here
gets a pending document, read again once a late key turns its row into clear text.
"""

import logging
import time
from collections.abc import Iterable

from celery import current_app
from django.db import transaction

from rooms.models import Event, Room, SearchDocument, SearchIndexState
from rooms.powers import room_powers
from rooms.relations import strip_reply_fallback
from rooms.search_tokens import document_tokens

log = logging.getLogger(__name__)

BATCH = 500  # events per transaction: short write locks on SQLite
MAX_BATCHES = 40  # per run; the next run continues
HOLE_SECONDS = 600  # a skipped id not committed by then was rolled back
MAX_HOLES = 5_000
FILE_TYPES = ("m.file", "m.image", "m.video", "m.audio")
_FIELDS = (
    "id",
    "event_id",
    "room_id",
    "sender",
    "event_type",
    "origin_server_ts",
    "raw",
    "rel_type",
    "relates_to",
    "redacts",
)
TS_LIMIT = 9_000_000_000_000  # ms (year 2255): keeps the sort key inside a signed 64-bit int


def sort_key(origin_server_ts: int, event_pk: int) -> int:
    """Newest first by the sender's clock; the event id breaks ties (see SearchDocument)."""
    ts = min(max(int(origin_server_ts or 0), 0), TS_LIMIT)
    return ts * 1_000_000 + event_pk % 1_000_000


def search_index_run(*, max_batches: int = MAX_BATCHES) -> int:
    """Index what was stored since the last run; returns how many events were read."""
    read = 0
    for _ in range(max_batches):
        count, more = _next_batch()
        read += count
        if not more:
            break
    read += _pending_decrypted()
    return read


def _next_batch() -> tuple[int, bool]:
    with transaction.atomic():
        state = _state()
        hole_ids = [hole[0] for hole in state.holes]
        rows = list(
            Event.objects.filter(id__gt=state.high_water).order_by("id").values(*_FIELDS)[:BATCH]
        )
        if hole_ids:
            rows += list(Event.objects.filter(id__in=hole_ids).values(*_FIELDS))
        _index(rows)
        now = int(time.time())
        found = {row["id"] for row in rows}
        holes = [h for h in state.holes if h[0] not in found and now - h[1] < HOLE_SECONDS]
        new_ids = sorted(row["id"] for row in rows if row["id"] > state.high_water)
        previous = state.high_water
        for event_pk in new_ids:
            holes.extend([pk, now] for pk in range(previous + 1, event_pk))
            previous = event_pk
        state.holes = holes[-MAX_HOLES:]
        state.high_water = max(state.high_water, previous)
        state.save(update_fields=["high_water", "holes", "updated_at"])
    return len(rows), len(new_ids) == BATCH


def _state() -> SearchIndexState:
    state = SearchIndexState.objects.select_for_update().filter(pk=1).first()
    if state is None:
        state, _ = SearchIndexState.objects.get_or_create(pk=1)
    return state


def _pending_decrypted() -> int:
    """Documents waiting for a key whose event has since been decrypted (or redacted)."""
    rows = list(
        Event.objects.filter(search_document__pending=True)
        .exclude(event_type="m.room.encrypted")
        .values(*_FIELDS)[:BATCH]
    )
    if rows:
        with transaction.atomic():
            _index(rows)
    return len(rows)


def reindex_events(event_ids: Iterable[str]) -> None:
    """Recompute these events' documents now (tests, repairs); normally the runs do it."""
    rows = list(Event.objects.filter(event_id__in=list(event_ids)).values(*_FIELDS))
    with transaction.atomic():
        _index(rows)


def _index(rows: list[dict]) -> None:
    """Recompute the documents the events in `rows` affect: their own, their edit's or
    redaction's target, in a handful of queries for the whole batch."""
    targets: set[str] = set()
    pending: list[dict] = []
    for row in rows:
        if row["event_type"] == "m.room.encrypted":
            pending.append(row)
        elif row["rel_type"] == "m.replace" and row["relates_to"]:
            targets.add(row["relates_to"])
            targets.add(row["event_id"])  # an edit that was pending has no document any more
        elif row["event_type"] == "m.room.redaction" and row["redacts"]:
            targets.add(row["redacts"])
        else:
            targets.add(row["event_id"])
    known = {row["event_id"]: row for row in rows}
    missing = [t for t in targets if t not in known]
    if missing:
        known.update(
            {r["event_id"]: r for r in Event.objects.filter(event_id__in=missing).values(*_FIELDS)}
        )
    # An edit that was redacted: its original is recomputed too.
    for event_id in list(targets):
        row = known.get(event_id)
        if row and row["rel_type"] == "m.replace" and row["relates_to"]:
            targets.add(row["relates_to"])
    missing = [t for t in targets if t not in known]
    if missing:
        known.update(
            {r["event_id"]: r for r in Event.objects.filter(event_id__in=missing).values(*_FIELDS)}
        )
    messages = [known[t] for t in targets if t in known and _is_message(known[t])]
    drop = [known[t]["id"] for t in targets if t in known and not _is_message(known[t])]
    documents = _documents(messages)
    keep = {d.event_id for d in documents}
    drop += [m["id"] for m in messages if m["id"] not in keep]
    if drop:
        SearchDocument.objects.filter(event_id__in=drop).delete()
    pending_documents = [
        SearchDocument(
            id=sort_key(row["origin_server_ts"], row["id"]),
            event_id=row["id"],
            room_id=row["room_id"],
            sender=row["sender"],
            origin_server_ts=row["origin_server_ts"],
            pending=True,
        )
        for row in pending
    ]
    _upsert(documents + pending_documents)


def _is_message(row: dict) -> bool:
    return row["event_type"] == "m.room.message" and row["rel_type"] not in ("m.replace",)


def _content(raw: dict) -> dict:
    content = raw.get("content")
    return content if isinstance(content, dict) else {}


def _redacted_by_server(raw: dict) -> bool:
    unsigned = raw.get("unsigned")
    return isinstance(unsigned, dict) and "redacted_because" in unsigned


def _documents(messages: list[dict]) -> list[SearchDocument]:
    """Documents for these messages, with their latest valid edit applied and the redacted ones
    left out (three queries whatever the count)."""
    if not messages:
        return []
    ids = [m["event_id"] for m in messages]
    room_ids = {m["room_id"] for m in messages}
    edits = list(
        Event.objects.filter(room_id__in=room_ids, relates_to__in=ids, rel_type="m.replace").values(
            "id", "event_id", "sender", "relates_to", "origin_server_ts", "raw"
        )
    )
    redactions = list(
        Event.objects.filter(
            room_id__in=room_ids,
            redacts__in=ids + [e["event_id"] for e in edits],
            event_type="m.room.redaction",
        ).values("sender", "redacts", "room_id")
    )
    senders = {m["event_id"]: m["sender"] for m in messages}
    senders.update({e["event_id"]: e["sender"] for e in edits})
    powers: dict[int, object] = {}
    redacted = set()
    for redaction in redactions:
        target_sender = senders.get(redaction["redacts"], "")
        if redaction["sender"] != target_sender:
            room_id = redaction["room_id"]
            if room_id not in powers:
                powers[room_id] = room_powers(Room(pk=room_id))
            power = powers[room_id]
            if power.level(redaction["sender"]) < power.redact:
                continue  # not allowed: the homeserver applies it to nobody's copy
        redacted.add(redaction["redacts"])
    latest_edit: dict[str, dict] = {}
    for edit in edits:
        new = _content(edit["raw"]).get("m.new_content")
        if (
            edit["sender"] != senders[edit["relates_to"]]
            or edit["event_id"] in redacted
            or not isinstance(new, dict)
        ):
            continue
        current = latest_edit.get(edit["relates_to"])
        if current is None or (edit["origin_server_ts"], edit["event_id"]) > (
            current["origin_server_ts"],
            current["event_id"],
        ):
            latest_edit[edit["relates_to"]] = edit
    documents = []
    for message in messages:
        if message["event_id"] in redacted or _redacted_by_server(message["raw"]):
            continue
        edit = latest_edit.get(message["event_id"])
        content = _content(edit["raw"]).get("m.new_content") if edit else _content(message["raw"])
        body = content.get("body")
        if not isinstance(body, str) or not body.strip():
            continue
        body = strip_reply_fallback(body)
        documents.append(
            SearchDocument(
                id=sort_key(message["origin_server_ts"], message["id"]),
                event_id=message["id"],
                room_id=message["room_id"],
                sender=message["sender"],
                origin_server_ts=message["origin_server_ts"],
                has_file=content.get("msgtype") in FILE_TYPES,
                body=body,
                tokens=document_tokens(body),
                text_event_id=edit["id"] if edit else None,
            )
        )
    return documents


def _upsert(documents: list[SearchDocument]) -> None:
    if not documents:
        return
    SearchDocument.objects.bulk_create(
        documents,
        update_conflicts=True,
        unique_fields=["id"],
        update_fields=["has_file", "pending", "body", "tokens", "text_event"],
    )


def schedule() -> None:
    """After this transaction commits, queue an indexer run so new messages are found within
    seconds (beat runs it anyway). Never lets the broker break the caller."""
    transaction.on_commit(_enqueue, robust=True)


_last_enqueued = 0.0
ENQUEUE_EVERY = 1.0  # seconds: a busy sync host queues one run per second, not one per batch


def _enqueue() -> None:
    global _last_enqueued
    now = time.monotonic()
    if now - _last_enqueued < ENQUEUE_EVERY:
        return
    _last_enqueued = now
    try:
        current_app.send_task("rooms.tasks.search_index_run")
    except Exception:  # search is a nicety next to ingest
        log.warning("search indexing not queued", exc_info=True)
