"""Purging events from the local store when the organisation's retention says so (records/
decides what and calls this; nothing here knows about policies or holds)."""

from collections.abc import Iterable

from django.db import transaction

from rooms.models import Event, OutboxMessage


def events_purge(*, event_ids: Iterable[str]) -> int:
    """Delete these events with every account's timeline rows and media references (cascades),
    and the sent outbox rows that still hold their content. Returns how many events went."""
    event_ids = list(event_ids)
    if not event_ids:
        return 0
    with transaction.atomic():
        OutboxMessage.objects.filter(event_id__in=event_ids, status=OutboxMessage.SENT).delete()
        _deleted, by_model = Event.objects.filter(event_id__in=event_ids).delete()
    return by_model.get(Event._meta.label, 0)
