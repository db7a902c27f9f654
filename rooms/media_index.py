"""The index of mxc:// URIs that events, room state and uploads point at (rooms.MediaReference).

Written at ingest, so the media proxy can tell in one indexed query whether a person was shown a
URI (rooms/visibility.py). Only an event's `content` counts: `unsigned` differs between the
accounts that received the same event, and the stored row is whichever copy came first."""

import re
from collections.abc import Iterable

from accounts.matrix.media_api import parse_mxc
from rooms.links import link_of
from rooms.models import LinkPreview, MediaReference, Room, RoomState

# Anything that may be an mxc URI inside a string (a url field, or an <img src> in formatted_body);
# parse_mxc then keeps only the well-formed ones.
_MXC_IN_TEXT = re.compile(r"mxc://[^\s\"'<>/]{1,300}/[A-Za-z0-9_-]{1,255}")
MAX_DEPTH = 20


def mxc_in(value: object, depth: int = 0) -> set[tuple[str, str]]:
    """(server_name, media_id) of every well-formed mxc URI anywhere in a JSON value."""
    found: set[tuple[str, str]] = set()
    if depth > MAX_DEPTH:
        return found
    if isinstance(value, str):
        if "mxc://" in value:
            for match in _MXC_IN_TEXT.findall(value):
                parsed = parse_mxc(match)
                if parsed is not None:
                    found.add(parsed)
    elif isinstance(value, dict):
        for item in value.values():
            found |= mxc_in(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            found |= mxc_in(item, depth + 1)
    return found


def references_of(event: dict) -> set[tuple[str, str]]:
    """The media an event's content shows: files, images, thumbnails, avatars, inline images,
    and the same inside an edit's m.new_content."""
    content = event.get("content") if isinstance(event, dict) else None
    return mxc_in(content) if isinstance(content, dict) else set()


def index_events(events: Iterable[dict], stored: dict[str, int]) -> None:
    """Record the media of stored events (`stored`: event id -> Event pk), and the preview image
    of a link they carry when that preview is already known. Replays change nothing."""
    rows = []
    links: dict[str, list[int]] = {}
    for event in events:
        pk = stored.get(event.get("event_id"))
        if pk is None:
            continue
        rows += [
            MediaReference(event_id=pk, server_name=server, media_id=media)
            for server, media in references_of(event)
        ]
        if link := link_of(event):
            links.setdefault(link, []).append(pk)
    if links:
        for url, image in LinkPreview.objects.filter(
            url_hash__in=[LinkPreview.hash_of(link) for link in links]
        ).values_list("url", "image_mxc"):
            rows += _preview_rows(image, links.get(url, []))
    if rows:
        MediaReference.objects.bulk_create(rows, ignore_conflicts=True)


def index_preview(preview: LinkPreview, event_pks: list[int]) -> None:
    """A link preview's image belongs to the messages that carry the link."""
    rows = _preview_rows(preview.image_mxc, event_pks)
    if rows:
        MediaReference.objects.bulk_create(rows, ignore_conflicts=True)


def _preview_rows(image_mxc: str, event_pks: list[int]) -> list[MediaReference]:
    parsed = parse_mxc(image_mxc)
    if parsed is None:
        return []
    return [
        MediaReference(event_id=pk, server_name=parsed[0], media_id=parsed[1]) for pk in event_pks
    ]


def index_state(room: Room, events: Iterable[dict]) -> None:
    """Bring the references of the room's current state in line with what was just stored for
    these events' (type, state_key): avatars of the room and its members. Read back from the
    table, because older history never overwrites newer state."""
    keys = {
        (event.get("type"), event.get("state_key"))
        for event in events
        if isinstance(event.get("state_key"), str) and isinstance(event.get("type"), str)
    }
    if not keys:
        return
    current = {
        pk: mxc_in(content)
        for pk, event_type, state_key, content in RoomState.objects.filter(
            room=room,
            event_type__in={t for t, _ in keys},
            state_key__in={k for _, k in keys},
        ).values_list("id", "event_type", "state_key", "content")
        if (event_type, state_key) in keys
    }
    if not current:
        return
    existing = {
        (state_id, server, media): pk
        for pk, state_id, server, media in MediaReference.objects.filter(
            state_id__in=list(current)
        ).values_list("id", "state_id", "server_name", "media_id")
    }
    wanted = {(pk, server, media) for pk, refs in current.items() for server, media in refs}
    stale = [pk for key, pk in existing.items() if key not in wanted]
    if stale:
        MediaReference.objects.filter(pk__in=stale).delete()
    fresh = [
        MediaReference(state_id=pk, server_name=server, media_id=media)
        for pk, server, media in wanted
        if (pk, server, media) not in existing
    ]
    if fresh:
        MediaReference.objects.bulk_create(fresh, ignore_conflicts=True)


def index_upload(account_id: int, uri: str) -> None:
    """Media a person uploaded themselves is theirs to see, before any message shows it."""
    parsed = parse_mxc(uri)
    if parsed is not None:
        MediaReference.objects.get_or_create(
            uploader_id=account_id, server_name=parsed[0], media_id=parsed[1]
        )
