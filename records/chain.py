"""The hash chain of a room's archive.

Each link stores `digest` = sha256 of its canonical payload (room, position, kind, event id,
sender, type, timestamp, envelope, clear content, body, archived-at) and `hash` = sha256 of the
previous link's hash and its own digest. Editing a link's content breaks its digest; moving it
changes its position and so its digest; rewriting a digest breaks its hash; rewriting a hash breaks
the next link. A purged link keeps its digest, so the chain verifies without the content it no
longer holds."""

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.utils import timezone

from records.models import ArchiveChain, ArchiveRecord

GENESIS = "0" * 64


def canonical(value: Any) -> bytes:
    """JSON with sorted keys and no spaces: the same bytes on SQLite and PostgreSQL (jsonb keeps
    neither key order nor spacing, so the stored form cannot be hashed as it comes back)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def payload(record: ArchiveRecord) -> dict[str, Any]:
    return {
        "v": 1,
        "room_id": record.room_id,
        "position": record.position,
        "kind": record.kind,
        "event_id": record.event_id,
        "sender": record.sender,
        "type": record.event_type,
        "ts": record.origin_server_ts,
        "envelope": record.envelope,
        "clear": record.clear,
        "body": record.body,
        "archived_at": record.archived_at.astimezone(UTC).isoformat(),
    }


def digest_of(record: ArchiveRecord) -> str:
    return hashlib.sha256(canonical(payload(record))).hexdigest()


def link_hash(prev_hash: str, digest: str) -> str:
    return hashlib.sha256(f"{prev_hash}:{digest}".encode()).hexdigest()


def now_for_archive() -> datetime:
    """Whole seconds: every database gives the same value back, so the digest is stable."""
    return timezone.now().replace(microsecond=0)


def lock_chain(room_id: str) -> ArchiveChain:
    """The room's chain head, locked for the rest of the transaction (created on first use)."""
    ArchiveChain.objects.get_or_create(
        room_id=room_id, defaults={"base_hash": GENESIS, "head_hash": GENESIS}
    )
    return ArchiveChain.objects.select_for_update().get(room_id=room_id)


@dataclass
class Appender:
    """Links appended to one locked chain in one transaction; `save` writes them and the head."""

    chain: ArchiveChain
    pending: list[ArchiveRecord]

    @classmethod
    def open(cls, room_id: str) -> "Appender":
        return cls(chain=lock_chain(room_id), pending=[])

    def add(self, record: ArchiveRecord) -> ArchiveRecord:
        record.room_id = self.chain.room_id
        record.position = self.chain.head_position + 1
        record.archived_at = record.archived_at or now_for_archive()
        record.prev_hash = self.chain.head_hash
        record.digest = digest_of(record)
        record.hash = link_hash(record.prev_hash, record.digest)
        self.chain.head_position, self.chain.head_hash = record.position, record.hash
        self.pending.append(record)
        return record

    def save(self) -> list[ArchiveRecord]:
        if not self.pending:
            return []
        ArchiveRecord.objects.bulk_create(self.pending)
        self.chain.save(update_fields=["head_position", "head_hash", "updated_at"])
        saved, self.pending = self.pending, []
        return saved
