"""Full-text search over the messages one person may read: the one selector for both databases.

A hit is a SearchDocument whose event is in the searcher's own timeline and that their own device
could read (TimelineEntry not sealed), and, for an edited message, whose edit they could read too:
the isolation rule of rooms/visibility.py. So rooms they never joined, events before they joined,
and messages their device could not decrypt are never found, even though the document is shared.

Results come newest first in document id order (see SearchDocument), a page at a time: both full-
text indexes are read in that order and stop once a page is full (one query).
"""

import html
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from django.db import connection
from django.utils.safestring import SafeString, mark_safe

from accounts.models import MatrixAccount
from rooms.models import Membership, Room, RoomState
from rooms.search_tokens import Term, fts5_query, postgres_tsquery, query_terms

PAGE = 20
SNIPPET_CHARS = 240


class SearchQueryError(ValueError):
    """A search that cannot run, with a message for the person."""


@dataclass(frozen=True)
class SearchFilters:
    room_id: str = ""  # a Matrix room id
    sender: str = ""  # a Matrix user id
    since: date | None = None  # first day included
    until: date | None = None  # last day included
    has_file: bool = False


@dataclass(frozen=True)
class SearchHit:
    key: int  # the document id: the next page starts below it
    event_id: str
    room_id: str
    room_name: str
    sender: str
    sender_name: str
    origin_server_ts: int
    stream_id: int  # the searcher's own timeline entry (opens the message in context)
    snippet: SafeString  # escaped text with the matches in <mark>


@dataclass(frozen=True)
class SearchPage:
    hits: list[SearchHit]
    next_key: int | None  # pass as `before` for the next page; None when this is the last


def _day_ms(day: date, *, end: bool) -> int:
    moment = datetime.combine(day + timedelta(days=1) if end else day, time(), UTC)
    return int(moment.timestamp() * 1000)


def search_messages(
    *,
    account: MatrixAccount,
    query: str,
    filters: SearchFilters = SearchFilters(),
    before: int | None = None,
    limit: int = PAGE,
) -> SearchPage:
    """A page of the messages this account may read that match every word of `query`."""
    terms = query_terms(query)
    if not terms:
        raise SearchQueryError("Type a word to search for.")
    where, params = [], []
    if filters.room_id:
        room = Room.objects.filter(room_id=filters.room_id).values_list("id", flat=True).first()
        if room is None:
            return SearchPage([], None)
        where.append("d.room_id = %s")
        params.append(room)
    if filters.sender:
        where.append("d.sender = %s")
        params.append(filters.sender)
    if filters.since:
        where.append("d.origin_server_ts >= %s")
        params.append(_day_ms(filters.since, end=False))
    if filters.until:
        where.append("d.origin_server_ts < %s")
        params.append(_day_ms(filters.until, end=True))
    if filters.has_file:
        where.append("d.has_file")
    if before is not None:
        where.append("d.id < %s")
        params.append(before)
    rows = _query(account.pk, terms, where, params, limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    return SearchPage(_hits(account, rows, terms), rows[-1][0] if more else None)


_SELECT = (
    "SELECT d.id, e.event_id, d.room_id, d.sender, d.origin_server_ts, d.body, t.id "
    "FROM {source} "
    "JOIN rooms_timelineentry t ON t.event_id = d.event_id AND t.account_id = %s "
    "AND t.sealed = %s "
    "JOIN rooms_event e ON e.id = d.event_id "
    "WHERE {match} AND d.pending = %s AND (d.text_event_id IS NULL OR EXISTS ("
    "SELECT 1 FROM rooms_timelineentry t2 WHERE t2.account_id = %s "
    "AND t2.event_id = d.text_event_id AND t2.sealed = %s)) {filters} "
    "ORDER BY {order} DESC LIMIT %s"
)


def _query(account_id: int, terms: list[Term], where: list[str], params: list, limit: int):
    filters = "".join(f" AND {clause}" for clause in where)
    if connection.vendor == "postgresql":
        sql = _SELECT.format(
            source="rooms_searchdocument d",
            match="d.tsv @@ to_tsquery('simple', %s)",
            filters=filters,
            order="d.id",
        )
        match = postgres_tsquery(terms)
    else:
        # The FTS5 table drives the loop in rowid (= document id) order, so a common word stops
        # after a page instead of sorting every match.
        sql = _SELECT.format(
            source="rooms_search_fts f JOIN rooms_searchdocument d ON d.id = f.rowid",
            match="rooms_search_fts MATCH %s",
            filters=filters,
            order="f.rowid",
        )
        match = fts5_query(terms)
    with connection.cursor() as cursor:
        cursor.execute(sql, [account_id, False, match, False, account_id, False, *params, limit])
        return cursor.fetchall()


def _hits(account: MatrixAccount, rows: list, terms: list[Term]) -> list[SearchHit]:
    if not rows:
        return []
    room_ids = {row[2] for row in rows}
    memberships = Membership.objects.filter(account=account, room_id__in=room_ids).select_related(
        "room"
    )
    rooms = {m.room_id: (m.room.room_id, m.display_name or m.room.room_id) for m in memberships}
    names = _sender_names(room_ids, {row[3] for row in rows})
    return [
        SearchHit(
            key=key,
            event_id=event_id,
            room_id=rooms.get(room_pk, ("", ""))[0],
            room_name=rooms.get(room_pk, ("", "a room you left"))[1],
            sender=sender,
            sender_name=names.get((room_pk, sender), sender),
            origin_server_ts=ts,
            stream_id=stream_id,
            snippet=highlight(body, terms),
        )
        for key, event_id, room_pk, sender, ts, body, stream_id in rows
    ]


def _sender_names(room_ids: set[int], senders: set[str]) -> dict[tuple[int, str], str]:
    names = {}
    for room_id, user_id, content in RoomState.objects.filter(
        room_id__in=room_ids, event_type="m.room.member", state_key__in=senders
    ).values_list("room_id", "state_key", "content"):
        name = content.get("displayname") if isinstance(content, dict) else None
        if isinstance(name, str) and name.strip():
            names[(room_id, user_id)] = name
    return names


def _pattern(terms: list[Term]) -> re.Pattern | None:
    words = sorted({t.text for t in terms if t.text}, key=len, reverse=True)
    if not words:
        return None
    return re.compile("|".join(re.escape(w) for w in words), re.IGNORECASE)


def highlight(body: str, terms: list[Term]) -> SafeString:
    """The body as plain text (every character escaped: a message's HTML is never used here),
    around the first match, with each match in <mark>."""
    pattern = _pattern(terms)
    first = pattern.search(body) if pattern else None
    start = max(0, first.start() - SNIPPET_CHARS // 3) if first else 0
    text = body[start : start + SNIPPET_CHARS]
    prefix = "…" if start else ""
    suffix = "…" if start + SNIPPET_CHARS < len(body) else ""
    out, last = [], 0
    for match in pattern.finditer(text) if pattern else ():
        out.append(html.escape(text[last : match.start()]))
        out.append(f"<mark>{html.escape(match.group(0))}</mark>")
        last = match.end()
    out.append(html.escape(text[last:]))
    return mark_safe(prefix + "".join(out) + suffix)  # noqa: S308 (every part escaped above)
