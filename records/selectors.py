"""Reads of the archive, for admin pages and (later) exports. `archived_events` streams: it reads
in pages by position and never holds more than one page, so an export of millions of events runs
in bounded memory."""

from collections.abc import Iterator
from dataclasses import dataclass

from django.db.models import Q

from records.models import ArchiveRecipient, ArchiveRecord

PAGE = 1000


@dataclass(frozen=True)
class ArchivedEvent:
    """An archived event as an export shows it: as it travelled, what it said in clear (from its
    late decryption link when the key came after it), who of ours received it, and whether it was
    taken back (its content is kept all the same)."""

    room_id: str
    position: int
    event_id: str
    sender: str
    event_type: str
    origin_server_ts: int
    envelope: dict | None
    clear: dict | None
    redacted_by: str
    recipients: tuple[str, ...]
    purged: bool


def archived_events(
    *,
    room_id: str,
    since_ts: int | None = None,
    until_ts: int | None = None,
    person: str | None = None,
) -> Iterator[ArchivedEvent]:
    """A room's archived events in chain order, optionally within [since_ts, until_ts) and only
    those a person (Matrix ID) sent or received. Three queries per page of PAGE events."""
    links = ArchiveRecord.objects.filter(room_id=room_id, kind=ArchiveRecord.EVENT)
    if since_ts is not None:
        links = links.filter(origin_server_ts__gte=since_ts)
    if until_ts is not None:
        links = links.filter(origin_server_ts__lt=until_ts)
    if person:
        received = ArchiveRecipient.objects.filter(user_id=person).values("record_id")
        links = links.filter(Q(sender=person) | Q(id__in=received))
    after = 0
    while True:
        page = list(links.filter(position__gt=after).order_by("position")[:PAGE])
        if not page:
            return
        after = page[-1].position
        event_ids = [link.event_id for link in page]
        late = dict(
            ArchiveRecord.objects.filter(
                room_id=room_id, kind=ArchiveRecord.DECRYPTION, event_id__in=event_ids
            ).values_list("event_id", "clear")
        )
        who: dict[int, list[str]] = {}
        for record_id, user_id in ArchiveRecipient.objects.filter(
            record_id__in=[link.id for link in page]
        ).values_list("record_id", "user_id"):
            who.setdefault(record_id, []).append(user_id)
        for link in page:
            yield ArchivedEvent(
                room_id=link.room_id,
                position=link.position,
                event_id=link.event_id,
                sender=link.sender,
                event_type=(late.get(link.event_id) or {}).get("type", link.event_type),
                origin_server_ts=link.origin_server_ts,
                envelope=link.envelope,
                clear=link.clear if link.clear is not None else late.get(link.event_id),
                redacted_by=link.redacted_by,
                recipients=tuple(sorted(who.get(link.id, []))),
                purged=link.purged,
            )
