"""Events the homeserver already redacted for everyone.

The Event table keeps the first copy any account received. When another account later receives
the same event already redacted by the server (`unsigned.redacted_because`: it joined after the
deletion, or fetched that history later), the fuller copy must not reach it: the server has removed
the content for everyone, so the shared row takes the redacted form, and its media references go.

`content_removing` is sent, inside that transaction, with the rows about to lose their content:
the organisation's archive keeps the original (the law asks for it), and rooms never imports it."""

from collections.abc import Iterable

from django.dispatch import Signal

from rooms.models import Event, MediaReference, SearchDocument

# sender=Event, rows=[Event, ...] still holding their full content.
content_removing = Signal()


def _redacted_by_server(event: dict) -> bool:
    unsigned = event.get("unsigned")
    return isinstance(unsigned, dict) and "redacted_because" in unsigned


def apply_server_redactions(events: Iterable[dict], stored: dict[str, int]) -> list[str]:
    """Replace stored fuller copies by the redacted ones just received; returns their event ids.
    No query unless a received event is redacted."""
    redacted = {
        event["event_id"]: event
        for event in events
        if _redacted_by_server(event) and event.get("event_id") in stored
    }
    if not redacted:
        return []
    rows = [
        row
        for row in Event.objects.filter(event_id__in=list(redacted))
        if not _redacted_by_server(row.raw)
    ]
    if rows:
        content_removing.send(sender=Event, rows=rows)
    changed = []
    for row in rows:
        clear = redacted[row.event_id]
        row.raw, row.encrypted_raw, row.html = clear, None, ""
        row.event_type = clear.get("type", row.event_type)
        row.relates_to = row.rel_type = row.reply_to = ""
        row.save(
            update_fields=[
                "raw",
                "encrypted_raw",
                "html",
                "event_type",
                "relates_to",
                "rel_type",
                "reply_to",
            ]
        )
        changed.append(row.event_id)
    if changed:
        MediaReference.objects.filter(event__event_id__in=changed).delete()
        SearchDocument.objects.filter(event__event_id__in=changed).delete()
    return changed
