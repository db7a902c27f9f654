"""Every write to rooms and timelines. Ingest commits a sync response's events and its next_batch in
one transaction, checked against the host's lease; the live push happens only after commit."""

import logging
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from accounts.matrix import client_api
from accounts.matrix.errors import MatrixError
from accounts.models import MatrixAccount
from rooms import (
    authenticity,
    media_index,
    notify,
    open_pages,
    previews,
    read_markers,
    redactions,
    search_index,
)
from rooms.gaps import gap_advance, gap_record
from rooms.metrics import ingest_observed
from rooms.models import (
    Event,
    Membership,
    OutboxMessage,
    ReadReceipt,
    Room,
    RoomState,
    SyncState,
    TimelineEntry,
)
from rooms.naming import resolve_room
from rooms.rendering import markdown_to_html, sanitize_html
from rooms.sync.batch import (
    InvitedRoomBatch,
    JoinedRoomBatch,
    LeftRoomBatch,
    SyncBatch,
    is_room_event,
)
from rooms.sync.leases import lease_check

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LeaseHandle:
    account_id: int
    owner: str
    token: int


@dataclass(frozen=True)
class IngestResult:
    new_events: int
    rooms_changed: int
    gaps: int  # limited timelines recorded as TimelineGap rows, to fill next


@ingest_observed  # ingest time, and sync lag per host (rooms/metrics.py)
def sync_ingest(
    *, lease: LeaseHandle, own_user_id: str, batch: SyncBatch, initial: bool = False
) -> IngestResult:
    """Store one /sync response for one account, atomically with its next_batch."""
    new_events = 0
    gaps = 0
    with transaction.atomic():
        lease_check(account_id=lease.account_id, owner=lease.owner, token=lease.token)
        for joined in batch.joined:
            # A room's first timeline (just joined) is like an initial sync: older history comes
            # by scrolling back. Only a room whose timeline we already follow can have a gap.
            following = joined.limited and _has_timeline(lease.account_id, joined.room_id)
            new_events += _ingest_joined(
                lease.account_id, own_user_id, joined, batch.direct_room_ids
            )
            if joined.limited and joined.prev_batch:
                gaps += _record_gap(lease.account_id, joined, initial or not following)
        for invited in batch.invited:
            _ingest_invite(lease.account_id, own_user_id, invited, batch.direct_room_ids)
        for left in batch.left:
            new_events += _ingest_left(lease.account_id, left)
        read_moves = [
            moved
            for joined in batch.joined
            for moved in _store_receipts(joined.room_id, joined.receipts)
        ]
        if read_moves:
            account_id = lease.account_id
            transaction.on_commit(
                lambda: notify.messages_changed(account_id=account_id, event_ids=read_moves)
            )
        typing = {
            joined.room_id: [u for u in joined.typing if u != own_user_id]
            for joined in batch.joined
            if joined.typing is not None
        }
        if typing:
            account_id = lease.account_id
            transaction.on_commit(
                lambda: notify.typing_changed(account_id=account_id, typing=typing)
            )
        if batch.direct_room_ids is not None:
            _apply_direct_flags(lease.account_id, batch.direct_room_ids)
        _save_next_batch(lease.account_id, batch.next_batch)
        rooms_changed = len(batch.joined) + len(batch.invited) + len(batch.left)
        if rooms_changed and not new_events:
            # New rows are announced with the room-list hint in the same push (notify.
            # timeline_appended): one hint per sync, never two.
            account_id = lease.account_id
            transaction.on_commit(lambda: notify.room_list_changed(account_id=account_id))
    return IngestResult(new_events=new_events, rooms_changed=rooms_changed, gaps=gaps)


def _save_next_batch(account_id: int, next_batch: str) -> None:
    """One UPDATE on every sync but an account's first (update_or_create reads the row first)."""
    fields = {"next_batch": next_batch, "updated_at": timezone.now()}
    if not SyncState.objects.filter(account_id=account_id).update(**fields):
        SyncState.objects.create(account_id=account_id, next_batch=next_batch)


def _relations(event: dict) -> dict[str, str]:
    """The relation columns of an event (empty strings where it has none)."""
    content = event.get("content", {})
    relates = content.get("m.relates_to")
    relates = relates if isinstance(relates, dict) else {}
    reply = relates.get("m.in_reply_to")
    reply = reply.get("event_id") if isinstance(reply, dict) else None
    redacts = event.get("redacts") if event.get("type") == "m.room.redaction" else None
    if event.get("type") == "m.room.redaction" and not isinstance(redacts, str):
        redacts = content.get("redacts")  # room version 11 moved it into the content

    def text(value) -> str:
        return value if isinstance(value, str) and len(value) <= 255 else ""

    return {
        "relates_to": text(relates.get("event_id")),
        "rel_type": text(relates.get("rel_type"))[:64],
        "reply_to": text(reply),
        "redacts": text(redacts),
    }


def _event_html(event: dict) -> str:
    content = event.get("content", {})
    new_content = content.get("m.new_content")
    if isinstance(new_content, dict) and _relations(event)["rel_type"] == "m.replace":
        content = new_content
    if content.get("format") != "org.matrix.custom.html":
        return ""
    formatted = content.get("formatted_body")
    return sanitize_html(formatted[:65536]) if isinstance(formatted, str) else ""


def _store_receipts(room_id: str, receipts: list[tuple[str, str, int]]) -> list[str]:
    """Keep each member's latest receipt; return the events whose "seen by" changed."""
    if not receipts:
        return []
    room = Room.objects.get(room_id=room_id)
    # Receipts are shared by the room's accounts and each of them receives every one: read them
    # in one query, so the accounts after the first, which find them stored, write nothing.
    held = {
        user_id: (event_id, ts)
        for user_id, event_id, ts in ReadReceipt.objects.filter(
            room=room, user_id__in={user_id for _, user_id, _ in receipts}
        ).values_list("user_id", "event_id", "ts")
    }
    moved: list[str] = []
    for event_id, user_id, ts in receipts:
        current = held.get(user_id)
        if current is not None and (current[0] == event_id or current[1] > ts):
            continue
        if current is not None:
            moved.append(current[0])
        ReadReceipt.objects.update_or_create(
            room=room, user_id=user_id, defaults={"event_id": event_id, "ts": ts}
        )
        held[user_id] = (event_id, ts)
        moved.append(event_id)
    return moved


def _has_timeline(account_id: int, room_id: str) -> bool:
    return TimelineEntry.objects.filter(account_id=account_id, room__room_id=room_id).exists()


def _record_gap(account_id: int, joined: JoinedRoomBatch, initial: bool) -> int:
    """A limited timeline skipped events. An initial sync is limited by design (older history
    comes by scrolling back), so only later syncs record a gap."""
    if initial:
        return 0
    room = Room.objects.get(room_id=joined.room_id)
    gap_record(account_id=account_id, room=room, token=joined.prev_batch, timeline=joined.timeline)
    return 1


def _store_events(
    account_id: int,
    room: Room,
    events: Iterable[dict],
    *,
    announce: bool = True,
    envelopes: dict[str, dict] | None = None,
    origins: dict | None = None,
    maybe_encrypted: bool = True,
) -> int:
    """Insert events once (event_id unique) and this account's timeline rows; replays change nothing.

    Fresh rows are announced to the account's pages after commit; our own remote echoes settle the
    outbox row they came from (matched by unsigned.transaction_id)."""
    events = list(events)
    if not events:
        return 0
    stored = _events_stored(room, events, envelopes or {})
    redactions.apply_server_redactions(events, stored)
    media_index.index_events(events, stored)
    if envelopes:
        # Stored earlier still encrypted (by another account, or history fetched by a page).
        clear = {e["event_id"]: e for e in events if e["event_id"] in envelopes}
        _decrypt_in_place(clear, envelopes, skip_account_id=account_id)
    already = set(
        TimelineEntry.objects.filter(
            account_id=account_id, event_id__in=stored.values()
        ).values_list("event_id", flat=True)
    )
    new = [e for e in events if stored.get(e["event_id"]) not in already]
    # Who our device can vouch for (origins: where each decrypted event's key came from).
    marks = authenticity.entry_marks(
        account_id, room, new, envelopes or {}, origins or {}, maybe_encrypted=maybe_encrypted
    )
    fresh = [
        TimelineEntry(
            account_id=account_id,
            room=room,
            event_id=stored[e["event_id"]],
            origin_server_ts=_ts(e),
            sealed=e.get("type") == "m.room.encrypted",  # our device could not read it
            authenticity=marks.get(e["event_id"], ("", ""))[0],
            sender_device=marks.get(e["event_id"], ("", ""))[1],
        )
        for e in new
    ]
    # Keep the homeserver's order: entries are created in the order the events arrived.
    TimelineEntry.objects.bulk_create(fresh, ignore_conflicts=True)
    settled = _settle_outbox(account_id, events)
    if fresh and announce:
        fresh_event_ids = {e.event_id for e in fresh}
        transaction.on_commit(
            lambda: _announce(account_id, events, stored, fresh_event_ids, settled)
        )
    return len(fresh)


def _announce(
    account_id: int, events: list[dict], stored: dict, fresh_event_ids: set, settled: list[str]
) -> None:
    """After commit, push the account's new rows to its open pages. What only the push needs
    (the new rows' ids, which ignore_conflicts left unset, and the messages they touch) is read
    only when a page is open: an account nobody is looking at costs no query here."""
    if not open_pages.any_open(account_id):
        return
    fresh_ids = list(
        TimelineEntry.objects.filter(account_id=account_id, event_id__in=fresh_event_ids)
        .order_by("id")
        .values_list("id", flat=True)
    )
    notify.timeline_appended(
        account_id=account_id,
        entry_ids=fresh_ids,
        settled_txn_ids=settled,
        touched_event_ids=_touched_messages(events, stored, fresh_event_ids),
    )


def _events_stored(room: Room, events: list[dict], envelopes: dict[str, dict]) -> dict[str, int]:
    """event_id -> Event pk, inserting the events no account here has stored yet. The room's other
    accounts receive the same events: only the first one to ingest an event sanitizes its HTML and
    writes its row; the others find it with one read (no render, no insert)."""
    event_ids = [e["event_id"] for e in events]
    stored = dict(Event.objects.filter(event_id__in=event_ids).values_list("event_id", "id"))
    missing = [e for e in events if e["event_id"] not in stored]
    if not missing:
        return stored
    Event.objects.bulk_create(
        [
            Event(
                event_id=event["event_id"],
                room=room,
                sender=event["sender"],
                event_type=event["type"],
                state_key=event.get("state_key"),
                origin_server_ts=_ts(event),
                raw=event,
                encrypted_raw=envelopes.get(event["event_id"]),
                html=_event_html(event),
                **_relations(event),
            )
            for event in missing
        ],
        ignore_conflicts=True,  # another host's ingest may have stored one meanwhile
    )
    # ignore_conflicts leaves the new rows without ids: read them back.
    stored.update(
        Event.objects.filter(event_id__in=[e["event_id"] for e in missing]).values_list(
            "event_id", "id"
        )
    )
    return stored


def _touched_messages(events: list[dict], stored: dict, fresh_event_ids: set) -> list[str]:
    """Messages that new relation events change: the target of an edit, reaction or redaction,
    and, when a reaction or edit is itself redacted, the message it belonged to."""
    relations = [
        _relations(event) for event in events if stored.get(event["event_id"]) in fresh_event_ids
    ]
    targets = {
        target for rel in relations for target in (rel["relates_to"], rel["redacts"]) if target
    }
    if not targets:
        return []
    parents = Event.objects.filter(event_id__in=targets).exclude(relates_to="")
    targets.update(parents.values_list("relates_to", flat=True))
    return sorted(targets)


def _settle_outbox(account_id: int, events: list[dict]) -> list[str]:
    """Mark our own messages sent when their remote echo arrives."""
    echoes = {}
    for event in events:
        unsigned = event.get("unsigned")
        txn_id = unsigned.get("transaction_id") if isinstance(unsigned, dict) else None
        if isinstance(txn_id, str):
            echoes[txn_id] = event["event_id"]
    if not echoes:
        return []
    rows = OutboxMessage.objects.filter(account_id=account_id, txn_id__in=echoes)
    settled = []
    for row in rows:
        row.status, row.event_id, row.error = OutboxMessage.SENT, echoes[row.txn_id], ""
        row.save(update_fields=["status", "event_id", "error", "updated_at"])
        settled.append(row.txn_id)
    return settled


def _ts(event: dict) -> int:
    value = event.get("origin_server_ts")
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _apply_state(room: Room, events: Iterable[dict], *, replace: bool = True) -> set[str]:
    """Record state events as the room's current state. RoomState is shared by every account in
    the room, and one whose sync lags delivers older state: a state event replaces what we hold
    only when it is at least as new. The client API exposes no depth or stream ordering, so the
    event's origin_server_ts decides, compared inside the UPDATE so concurrent writers cannot
    interleave. Older history (`replace=False`) only fills in what is missing.

    State we already hold as the very same event is skipped: a lazy-loading homeserver may
    resend a sender's member event along with their messages, to each account of the room
    (Synapse remembers the last 100 members it sent a device, in memory only), and every
    account after the first receives state the first one wrote. Returns the ids it wrote."""
    events = [event for event in events if "state_key" in event]
    if not events:
        return set()
    held = _held_state(room, events)
    events = [e for e in events if held.get(e["event_id"], _NOTHING) != e.get("content", {})]
    for event in events:
        ts = _ts(event)
        fields = {
            "event_id": event["event_id"],
            "sender": event["sender"],
            "content": event.get("content", {}),
            "origin_server_ts": ts,
        }
        key = {"room": room, "event_type": event["type"], "state_key": event["state_key"]}
        if replace and RoomState.objects.filter(**key, origin_server_ts__lte=ts).update(**fields):
            continue
        RoomState.objects.get_or_create(**key, defaults=fields)
    if events:
        media_index.index_state(room, events)
    return {event["event_id"] for event in events}


_NOTHING = object()


def _held_state(room: Room, events: list[dict]) -> dict[str, dict]:
    """event_id -> content of the state rows we hold for these events' (type, state_key)."""
    keys = {(event["type"], event["state_key"]) for event in events}
    rows = RoomState.objects.filter(
        room=room,
        event_type__in={event_type for event_type, _ in keys},
        state_key__in={state_key for _, state_key in keys},
    ).values_list("event_type", "state_key", "event_id", "content")
    return {event_id: content for t, k, event_id, content in rows if (t, k) in keys}


def _state_map(room: Room) -> dict[tuple[str, str], dict]:
    return {
        (event_type, key): content
        for event_type, key, content in room.state.values_list("event_type", "state_key", "content")
    }


def _ingest_joined(
    account_id: int, own_user_id: str, joined: JoinedRoomBatch, direct: set[str] | None
) -> int:
    room, _ = Room.objects.get_or_create(room_id=joined.room_id)
    written = _apply_state(room, joined.state) | _apply_state(room, joined.timeline)
    membership = Membership.objects.filter(account_id=account_id, room=room).first() or Membership(
        account_id=account_id, room=room
    )
    new_events = _store_events(
        account_id,
        room,
        joined.timeline,
        envelopes=joined.envelopes,
        origins=joined.origins,
        maybe_encrypted=_maybe_encrypted(membership, joined),
    )
    before = _field_values(membership)
    if joined.heroes is not None:
        membership.heroes = joined.heroes
    if joined.joined_count is not None:
        membership.joined_member_count = joined.joined_count
    if joined.invited_count is not None:
        membership.invited_member_count = joined.invited_count
    read_markers.counts_from_sync(
        membership,
        own_user_id=own_user_id,
        timeline=joined.timeline,
        receipts=joined.receipts,
        notification_count=joined.notification_count,
        highlight_count=joined.highlight_count,
    )
    no_history_yet = not membership.history_token and not membership.history_complete
    if joined.prev_batch and (membership.pk is None or no_history_yet):
        # The room's first timeline: scrolling back continues from here.
        membership.history_token = joined.prev_batch
    if _needs_describing(membership, before, joined, own_user_id, written):
        counts_known = membership.pk is not None or joined.joined_count is not None
        total = membership.joined_member_count + membership.invited_member_count
        state = _naming_state(
            room, own_user_id, membership.heroes or None, total if counts_known else None
        )
        _describe(membership, own_user_id, state, counts_known=counts_known)
    membership.membership = Membership.JOIN
    membership.invite_state = []
    if direct is not None:
        membership.is_direct = joined.room_id in direct
    latest = max((_ts(e) for e in joined.timeline), default=0)
    membership.last_activity_ts = max(membership.last_activity_ts, latest)
    _save_changed(membership, before)
    if new_events:
        previews.schedule(
            account_id=account_id, events=joined.timeline, encrypted=membership.is_encrypted
        )
        search_index.schedule()
    return new_events


def _maybe_encrypted(membership: Membership, joined: JoinedRoomBatch) -> bool:
    """False only when the room is known to be plain: described before without encryption (the
    flag is sticky) and this sync does not turn it on."""
    if membership.pk is None or membership.is_encrypted:
        return True
    return any(e["type"] == "m.room.encryption" for e in (*joined.state, *joined.timeline))


# The room-wide state a room's name, avatar, topic and flags come from (besides member events).
NAMING_STATE = (
    "m.room.name",
    "m.room.canonical_alias",
    "m.room.avatar",
    "m.room.topic",
    "m.room.encryption",
    "m.room.create",
)
_DESCRIBED_FIELDS = ("heroes", "joined_member_count", "invited_member_count")


def _needs_describing(
    membership: Membership, before: dict, joined: JoinedRoomBatch, own_user_id: str, written: set
) -> bool:
    """Whether this sync can change the room's name, avatar, topic or flags for the account: a
    new or newly joined room, a new summary, or state events naming reads: any but member events,
    our own member event, and member events new to the room's state here or in a room named
    after its members (heroes). A sync of plain messages (the busy case), or of a sender's member
    event resent by lazy loading, cannot: the description stays, and no state is read."""
    if membership.pk is None or before["membership"] != Membership.JOIN:
        return True
    if any(getattr(membership, name) != before[name] for name in _DESCRIBED_FIELDS):
        return True
    for event in (*joined.state, *joined.timeline):
        if "state_key" not in event:
            continue
        if event["type"] != "m.room.member" or membership.heroes:
            return True
        if event["state_key"] == own_user_id or event["event_id"] in written:
            return True
    return False


def _naming_state(
    room: Room, own_user_id: str, heroes: list[str] | None, total: int | None
) -> dict[tuple[str, str], dict]:
    """The part of the room's state that naming reads, not the whole of it: in a room with
    hundreds of members every account would otherwise read every member event whenever it
    describes the room (members squared for the room). Room-wide naming events, our own and the
    heroes' member events, and the members sharing a hero's display name (for disambiguation).
    Only a room that naming must describe by its members (no heroes or member counts, and no
    name, or no avatar in a room of two) reads all of them. `total`: joined + invited, if known."""
    heroes = [hero for hero in heroes if isinstance(hero, str)][:5] if heroes is not None else []
    state = room.state.filter(state_key="", event_type__in=NAMING_STATE) | room.state.filter(
        event_type="m.room.member", state_key__in=[own_user_id, *heroes]
    )
    found = {
        (event_type, key): content
        for event_type, key, content in state.values_list("event_type", "state_key", "content")
    }
    named = any(key in found for key in (("m.room.name", ""), ("m.room.canonical_alias", "")))
    pictured = ("m.room.avatar", "") in found or (total is not None and total > 2)
    if total is None or (not heroes and not (named and pictured)):
        return _state_map(room)
    names = set()
    for hero in heroes:
        name = found.get(("m.room.member", hero), {}).get("displayname")
        if isinstance(name, str) and name.strip():
            names.update({name, name.strip()})  # naming compares names stripped
    if names:
        namesakes = room.state.filter(
            event_type="m.room.member", content__displayname__in=sorted(names)
        ).values_list("state_key", "content")
        found.update({("m.room.member", key): content for key, content in namesakes})
    return found


def _describe(membership: Membership, own_user_id: str, state: dict, *, counts_known: bool) -> None:
    resolved = resolve_room(
        own_user_id=own_user_id,
        state=state,
        heroes=membership.heroes or None,
        joined_count=membership.joined_member_count if counts_known else None,
        invited_count=membership.invited_member_count if counts_known else None,
    )
    membership.display_name = resolved.name
    membership.avatar_mxc = resolved.avatar_mxc
    topic = state.get(("m.room.topic", ""), {}).get("topic")
    membership.topic = topic[:2000] if isinstance(topic, str) else ""
    # Sticky: encryption cannot be turned off, and a sync that arrives while the room is still
    # being created may not carry the m.room.encryption event yet. Never fall back to plain text.
    membership.is_encrypted = membership.is_encrypted or ("m.room.encryption", "") in state
    membership.is_space = state.get(("m.room.create", ""), {}).get("type") == "m.space"


def _ingest_invite(
    account_id: int, own_user_id: str, invited: InvitedRoomBatch, direct: set[str] | None
) -> None:
    room, _ = Room.objects.get_or_create(room_id=invited.room_id)
    state = {(e["type"], e["state_key"]): e["content"] for e in invited.stripped_state}
    own = next(
        (
            e
            for e in invited.stripped_state
            if e["type"] == "m.room.member" and e["state_key"] == own_user_id
        ),
        None,
    )
    inviter = own.get("sender", "") if own else ""
    inviter = inviter if isinstance(inviter, str) else ""
    membership = Membership.objects.filter(account_id=account_id, room=room).first() or Membership(
        account_id=account_id, room=room
    )
    before = _field_values(membership)
    membership.membership = Membership.INVITE
    membership.invite_state = invited.stripped_state
    membership.inviter = inviter[:255]
    membership.heroes = [inviter] if inviter and ("m.room.member", inviter) in state else []
    membership.joined_member_count = 0
    membership.invited_member_count = 0
    _describe(membership, own_user_id, state, counts_known=False)
    if own and own.get("content", {}).get("is_direct") is True:
        membership.is_direct = True
    elif direct is not None:
        membership.is_direct = invited.room_id in direct
    membership.last_activity_ts = max(membership.last_activity_ts, _ts(own or {}))
    _save_changed(membership, before)


def _field_values(membership: Membership) -> dict:
    return {f.attname: getattr(membership, f.attname) for f in Membership._meta.concrete_fields}


def _save_changed(membership: Membership, before: dict) -> None:
    """Save only the columns this sync changed: other writers (read markers, history paging from
    a page, another host's ingest) update the same row, and a full save would undo their work."""
    if membership.pk is None:
        membership.save()
        return
    changed = [name for name, value in before.items() if getattr(membership, name) != value]
    if changed:
        membership.save(update_fields=[*changed, "updated_at"])


def _ingest_left(account_id: int, left: LeftRoomBatch) -> int:
    room, _ = Room.objects.get_or_create(room_id=left.room_id)
    new_events = _store_events(account_id, room, left.timeline)
    Membership.objects.filter(account_id=account_id, room=room).update(membership=Membership.LEAVE)
    return new_events


def _apply_direct_flags(account_id: int, direct_room_ids: set[str]) -> None:
    memberships = Membership.objects.filter(account_id=account_id)
    memberships.filter(room__room_id__in=direct_room_ids).update(is_direct=True)
    memberships.exclude(room__room_id__in=direct_room_ids).exclude(
        membership=Membership.INVITE
    ).update(is_direct=False)


def sync_state_next_batch(*, account_id: int) -> str:
    return (
        SyncState.objects.filter(account_id=account_id).values_list("next_batch", flat=True).first()
        or ""
    )


# --- sending (the outbox) ---

MAX_BODY_CHARS = 32_000


class MessageRejected(ValueError):
    """What the person typed cannot be sent; the message says why."""


def check_message_body(body: str) -> str:
    text = (body or "").strip()
    if not text:
        raise MessageRejected("Write something first.")
    if len(text) > MAX_BODY_CHARS:
        raise MessageRejected(f"Messages are limited to {MAX_BODY_CHARS:,} characters.")
    return text


PILL_RE = re.compile(r"https://matrix\.to/#/(@[A-Za-z0-9._=\-/+]+:[A-Za-z0-9.\-]+(?::[0-9]{1,5})?)")


def _text_content(text: str) -> dict:
    """Markdown becomes formatted_body; people linked with matrix.to pills are mentioned
    intentionally (m.mentions), so only they are notified."""
    content: dict = {"msgtype": "m.text", "body": text}
    html = markdown_to_html(text)
    if html:
        content.update(format="org.matrix.custom.html", formatted_body=html)
    mentioned = sorted(set(PILL_RE.findall(text)))
    content["m.mentions"] = {"user_ids": mentioned} if mentioned else {}
    return content


def text_content(text: str) -> dict:
    """A text message's content as the composer would send it ("Send later" builds it too)."""
    return _text_content(check_message_body(text))


def _queue(
    *,
    account_id: int,
    room: Room,
    content: dict,
    event_type: str = "m.room.message",
    send_at: datetime | None = None,
) -> OutboxMessage:
    """An outbox row with a fresh transaction id; the owning sync host is nudged after commit
    (for a scheduled row too: its sender then knows when to wake)."""
    with transaction.atomic():
        message = OutboxMessage.objects.create(
            account_id=account_id,
            room=room,
            txn_id=f"wc{uuid.uuid4().hex}",
            event_type=event_type,
            content=content,
            send_at=send_at,
        )
        txn_id = message.txn_id
        transaction.on_commit(lambda: notify.outbox_nudge(account_id=account_id, txn_id=txn_id))
    return message


def queue_content(
    *, account_id: int, room: Room, content: dict, send_at: datetime | None = None
) -> OutboxMessage:
    """Queue a message whose content another service built (an uploaded file, a scheduled one)."""
    return _queue(account_id=account_id, room=room, content=content, send_at=send_at)


def message_send(
    *, account_id: int, room: Room, body: str, reply_to: str = "", thread_root: str = ""
) -> OutboxMessage:
    """Queue a text message (Markdown becomes formatted_body), as a reply or in a thread."""
    content = _text_content(check_message_body(body))
    if thread_root:
        _seen_event(account_id, room, thread_root)
        latest = (
            Event.objects.filter(room=room, relates_to=thread_root, rel_type="m.thread")
            .order_by("-origin_server_ts")
            .values_list("event_id", flat=True)
            .first()
        )
        content["m.relates_to"] = {
            "rel_type": "m.thread",
            "event_id": thread_root,
            "is_falling_back": True,
            "m.in_reply_to": {"event_id": latest or thread_root},
        }
    elif reply_to:
        _seen_event(account_id, room, reply_to)
        content["m.relates_to"] = {"m.in_reply_to": {"event_id": reply_to}}
    return _queue(account_id=account_id, room=room, content=content)


def _seen_event(account_id: int, room: Room, event_id: str) -> Event:
    event = Event.objects.filter(
        room=room, event_id=event_id, timeline_entries__account_id=account_id
    ).first()
    if event is None:
        raise MessageRejected("That message is not in this room's timeline.")
    return event


def message_react(*, account_id: int, room: Room, event_id: str, key: str) -> OutboxMessage:
    key = (key or "").strip()
    if not key or len(key) > 64:
        raise MessageRejected("Reactions are an emoji or a short word.")
    _seen_event(account_id, room, event_id)
    content = {"m.relates_to": {"rel_type": "m.annotation", "event_id": event_id, "key": key}}
    return _queue(account_id=account_id, room=room, content=content, event_type="m.reaction")


def message_edit(*, account: MatrixAccount, room: Room, event_id: str, body: str) -> OutboxMessage:
    """Replace the text of one of our own messages (others' edits are ignored when shown)."""
    original = _seen_event(account.pk, room, event_id)
    if original.sender != account.mxid or original.event_type != "m.room.message":
        raise MessageRejected("You can only edit your own messages.")
    new_content = _text_content(check_message_body(body))
    content = {
        **new_content,
        "body": f"* {new_content['body']}",
        "m.new_content": new_content,
        "m.relates_to": {"rel_type": "m.replace", "event_id": event_id},
    }
    if "formatted_body" in content:
        content["formatted_body"] = f"* {content['formatted_body']}"
    return _queue(account_id=account.pk, room=room, content=content)


def message_redact(
    *, account_id: int, room: Room, event_id: str, reason: str = ""
) -> OutboxMessage:
    """Delete a message or take back a reaction (the homeserver checks the right to)."""
    _seen_event(account_id, room, event_id)
    content = {"redacts": event_id}
    if reason.strip():
        content["reason"] = reason.strip()[:500]
    return _queue(account_id=account_id, room=room, content=content, event_type="m.room.redaction")


# --- membership changes made from pages (no crypto state involved: the web process may call) ---


def room_join(*, account: MatrixAccount, room_id: str) -> None:
    """Accept an invite or join; the room's state and timeline follow through sync."""
    client_api.join_room(
        account.homeserver_url, access_token=account.access_token, room_id_or_alias=room_id
    )
    Membership.objects.filter(account=account, room__room_id=room_id).update(
        membership=Membership.JOIN, invite_state=[]
    )
    transaction.on_commit(lambda: notify.room_list_changed(account_id=account.pk))


def room_leave(*, account: MatrixAccount, room_id: str) -> None:
    """Leave a room or decline an invite."""
    client_api.leave_room(
        account.homeserver_url, access_token=account.access_token, room_id=room_id
    )
    Membership.objects.filter(account=account, room__room_id=room_id).update(
        membership=Membership.LEAVE
    )
    transaction.on_commit(lambda: notify.room_list_changed(account_id=account.pk))


# --- history: gaps after a limited sync, and scrolling back past the local store ---

BACKFILL_PAGE = 50


def history_ingest(
    *,
    account_id: int,
    room_id: str,
    chunk: list[dict],
    lease: LeaseHandle | None = None,
    gap_id: int | None = None,
    next_token: str | None = None,
    envelopes: dict[str, dict] | None = None,
    announce: bool = False,
    origins: dict | None = None,
) -> tuple[int, bool]:
    """Store a /messages page (newest first) as older history; returns (new rows, finished): the
    page reached events we had, or, filling a gap, the gap is complete.

    `announce` pushes the rows to open pages, which place them by (origin_server_ts, id)."""
    with transaction.atomic():
        if lease is not None:
            lease_check(account_id=lease.account_id, owner=lease.owner, token=lease.token)
        room = Room.objects.get(room_id=room_id)
        known = TimelineEntry.objects.filter(
            account_id=account_id, event__event_id__in=[e["event_id"] for e in chunk]
        ).exists()
        _apply_state(room, chunk, replace=False)
        new_rows = _store_events(
            account_id,
            room,
            reversed(chunk),
            announce=announce,
            envelopes=envelopes,
            origins=origins,
        )
        finished = known
        if gap_id is not None:
            finished = gap_advance(
                account_id=account_id,
                gap_id=gap_id,
                chunk=chunk,
                next_token=next_token,
                reached_known=known,
            )
    return new_rows, finished


def history_chunk(raw: dict) -> tuple[list[dict], str | None]:
    """Valid events of a /messages page and its continuation token."""
    chunk = raw.get("chunk")
    events = [e for e in chunk if is_room_event(e)] if isinstance(chunk, list) else []
    for event in events:
        if not isinstance(event.get("content"), dict):
            event["content"] = {}
    end = raw.get("end")
    return events, end if isinstance(end, str) and end else None


def room_history_fetch(*, account: MatrixAccount, room_id: str) -> int:
    """Scroll back past the local store: fetch one older page from the homeserver."""
    membership = Membership.objects.filter(account=account, room__room_id=room_id).first()
    if membership is None or membership.history_complete or not membership.history_token:
        return 0
    raw = client_api.room_messages(
        account.homeserver_url,
        access_token=account.access_token,
        room_id=room_id,
        from_token=membership.history_token,
        limit=BACKFILL_PAGE,
    )
    events, end = history_chunk(raw)
    with transaction.atomic():
        # Announced: other open pages of this account place the rows where they belong.
        new_rows, _ = history_ingest(
            account_id=account.pk, room_id=room_id, chunk=events, announce=True
        )
        Membership.objects.filter(pk=membership.pk).update(
            history_token=end or "", history_complete=end is None or not events
        )
        if any(e.get("type") == "m.room.encrypted" for e in events):
            # Only the owning host holds the device's keys: ask it to read these.
            transaction.on_commit(lambda: notify.history_sealed_nudge(account_id=account.pk))
    return new_rows


def room_mark_read(*, account: MatrixAccount, room_id: str, event_id: str) -> None:
    """The person has seen the room up to `event_id`: clear the badge at once (the room list
    updates live), then send receipt and marker. The local marker keeps a lagging sync from
    bringing the count back."""
    entry = TimelineEntry.objects.filter(
        account=account, room__room_id=room_id, event__event_id=event_id
    ).first()
    if entry is None:
        raise MessageRejected("That event is not in this room's timeline.")
    read_markers.room_read_up_to(
        account_id=account.pk, room_id=entry.room_id, ts=entry.origin_server_ts
    )
    transaction.on_commit(lambda: notify.room_list_changed(account_id=account.pk))
    client_api.set_read_markers(
        account.homeserver_url,
        access_token=account.access_token,
        room_id=room_id,
        event_id=event_id,
    )


# --- creating, finding and joining rooms (no crypto state: the web process may call) ---

MXID_RE = re.compile(r"^@[a-z0-9._=\-/+]+:[A-Za-z0-9.\-]+(:[0-9]{1,5})?$")
# An alias (#name:server) or a room id: "!opaque:server", or just "!opaque" from room version 12.
ADDRESS_RE = re.compile(
    r"^(#[^:\s]+:[A-Za-z0-9.\-]+(:[0-9]{1,5})?|![A-Za-z0-9._~+/=\-]+(:[A-Za-z0-9.\-]+(:[0-9]{1,5})?)?)$"
)


def check_room_fields(*, name: str, topic: str) -> tuple[str, str]:
    name, topic = (name or "").strip(), (topic or "").strip()
    if not name:
        raise MessageRejected("Give the room a name.")
    if len(name) > 255:
        raise MessageRejected("Room names are limited to 255 characters.")
    if len(topic) > 2000:
        raise MessageRejected("Topics are limited to 2,000 characters.")
    return name, topic


def check_user_id(user_id: str) -> str:
    user_id = (user_id or "").strip()
    if not MXID_RE.match(user_id):
        raise MessageRejected(f"“{user_id[:80]}” is not a Matrix ID like @alice:example.org.")
    return user_id


def _mark_joined(
    account: MatrixAccount,
    room_id: str,
    *,
    name: str,
    topic: str = "",
    is_direct: bool = False,
    is_encrypted: bool = False,
) -> None:
    """Show a room we just created or joined at once; its first sync fills in the rest."""
    room, _ = Room.objects.get_or_create(room_id=room_id)
    defaults = {
        "membership": Membership.JOIN,
        "display_name": name,
        "topic": topic,
        "is_direct": is_direct,
        "invite_state": [],
    }
    if is_encrypted:  # never cleared here: what sync learnt about encryption stands
        defaults["is_encrypted"] = True
    Membership.objects.update_or_create(account=account, room=room, defaults=defaults)
    transaction.on_commit(lambda: notify.room_list_changed(account_id=account.pk))


def room_create(
    *, account: MatrixAccount, name: str, topic: str, public: bool, encrypted: bool = True
) -> str:
    """A new room; private rooms are end-to-end encrypted unless asked otherwise, public ones
    never (anyone can join and read them)."""
    name, topic = check_room_fields(name=name, topic=topic)
    encrypted = encrypted and not public
    room_id = client_api.create_room(
        account.homeserver_url,
        access_token=account.access_token,
        name=name,
        topic=topic,
        public=public,
        encrypted=encrypted,
    )
    _mark_joined(account, room_id, name=name, topic=topic, is_encrypted=encrypted)
    return room_id


def room_invite(*, account: MatrixAccount, room_id: str, user_id: str) -> None:
    client_api.invite_user(
        account.homeserver_url,
        access_token=account.access_token,
        room_id=room_id,
        user_id=check_user_id(user_id),
    )


def room_start_direct(*, account: MatrixAccount, user_id: str, display_name: str = "") -> str:
    """Open the one-to-one chat with a person: the existing one, or a new one marked m.direct."""
    user_id = check_user_id(user_id)
    if user_id == account.mxid:
        raise MessageRejected("That is you.")
    existing = (
        Membership.objects.filter(
            account=account, is_direct=True, membership=Membership.JOIN, heroes=[user_id]
        )
        .select_related("room")
        .first()
    )
    if existing is not None:
        return existing.room.room_id
    room_id = client_api.create_room(
        account.homeserver_url,
        access_token=account.access_token,
        invite=[user_id],
        is_direct=True,
        encrypted=True,
    )
    direct = client_api.get_direct_rooms(
        account.homeserver_url, access_token=account.access_token, user_id=account.mxid
    )
    direct.setdefault(user_id, []).append(room_id)
    client_api.set_direct_rooms(
        account.homeserver_url,
        access_token=account.access_token,
        user_id=account.mxid,
        direct=direct,
    )
    _mark_joined(account, room_id, name=display_name or user_id, is_direct=True, is_encrypted=True)
    return room_id


def room_join_by_address(*, account: MatrixAccount, address: str) -> str:
    """Join a room by alias (#team:example.org) or id (!abc:example.org)."""
    address = (address or "").strip()
    if not ADDRESS_RE.match(address):
        raise MessageRejected("Room addresses look like #team:example.org or !abc:example.org.")
    room_id = client_api.join_room(
        account.homeserver_url, access_token=account.access_token, room_id_or_alias=address
    )
    _mark_joined(account, room_id, name=_room_name_or(account, room_id, address))
    return room_id


def _room_name_or(account: MatrixAccount, room_id: str, fallback: str) -> str:
    """The joined room's name for the page we open next; its first sync brings the rest."""
    try:
        content = client_api.room_state_event(
            account.homeserver_url,
            access_token=account.access_token,
            room_id=room_id,
            event_type="m.room.name",
        )
    except MatrixError:
        return fallback
    name = content.get("name")
    return name.strip()[:255] if isinstance(name, str) and name.strip() else fallback


def room_typing(*, account: MatrixAccount, room_id: str, typing: bool) -> None:
    """Tell the room we are (or stopped) typing; the homeserver forgets it after a few seconds."""
    client_api.set_typing(
        account.homeserver_url,
        access_token=account.access_token,
        room_id=room_id,
        user_id=account.mxid,
        typing=typing,
    )


# --- room settings (state changes: no crypto state involved) ---

POSTING = {"everyone": 0, "moderators": 50}


def room_settings_update(
    *, account: MatrixAccount, room_id: str, name: str, topic: str, posting: str
) -> None:
    """Rename, re-topic and choose who may post; only what changed is sent, and the homeserver's
    refusal (not enough power) comes back as a clear message."""
    name, topic = check_room_fields(name=name, topic=topic)
    if posting not in POSTING:
        raise MessageRejected("Choose who may post: everyone or moderators only.")
    current = client_api.room_state_event(
        account.homeserver_url,
        access_token=account.access_token,
        room_id=room_id,
        event_type="m.room.power_levels",
    )
    state = {
        (s.event_type, s.state_key): s.content
        for s in RoomState.objects.filter(
            room__room_id=room_id, event_type__in=["m.room.name", "m.room.topic"]
        )
    }

    def put(event_type: str, content: dict) -> None:
        client_api.put_room_state(
            account.homeserver_url,
            access_token=account.access_token,
            room_id=room_id,
            event_type=event_type,
            content=content,
        )

    if state.get(("m.room.name", ""), {}).get("name") != name:
        put("m.room.name", {"name": name})
    if state.get(("m.room.topic", ""), {}).get("topic", "") != topic:
        put("m.room.topic", {"topic": topic})
    if current.get("events_default", 0) != POSTING[posting]:
        put("m.room.power_levels", {**current, "events_default": POSTING[posting]})


def _decrypt_in_place(
    clear: dict[str, dict], envelopes: dict[str, dict], *, skip_account_id: int | None = None
) -> list[str]:
    """Replace stored still-encrypted events by their clear form, and re-render them on the pages
    of every account that shows them (but `skip_account_id`, whose pages get them as new)."""
    waiting = Event.objects.filter(event_id__in=list(clear), event_type="m.room.encrypted")
    changed = []
    for event in waiting:
        plain = clear[event.event_id]
        event.raw = plain
        event.encrypted_raw = envelopes[event.event_id]
        event.event_type = plain["type"]
        event.html = _event_html(plain)
        for column, value in _relations(plain).items():
            setattr(event, column, value)
        event.save(
            update_fields=[
                "raw",
                "encrypted_raw",
                "event_type",
                "html",
                "relates_to",
                "rel_type",
                "reply_to",
                "redacts",
            ]
        )
        changed.append(event.event_id)
    media_index.index_events(clear.values(), {e.event_id: e.pk for e in waiting})
    if changed:
        viewers = (
            TimelineEntry.objects.filter(event__event_id__in=changed)
            .exclude(account_id=skip_account_id)
            .values_list("account_id", "event__event_id", "event__relates_to")
        )
        by_account: dict[int, set[str]] = {}
        for account_id, event_id, relates_to in viewers:
            # An edit or reaction that became readable changes the message it belongs to.
            by_account.setdefault(account_id, set()).update(filter(None, (event_id, relates_to)))
        for account_id, event_ids in by_account.items():
            transaction.on_commit(rerender_after_commit(account_id, sorted(event_ids)))
    return changed


def events_decrypted(
    *, lease: LeaseHandle, decrypted: list[tuple[dict, dict]], origins: dict | None = None
) -> list[str]:
    """Events whose keys arrived after they were stored: (clear event, envelope) pairs become
    readable in place, live on every page that shows them, marked by where their keys came
    from (`origins`). Returns the event ids changed."""
    if not decrypted:
        return []
    with transaction.atomic():
        lease_check(account_id=lease.account_id, owner=lease.owner, token=lease.token)
        clear = {plain["event_id"]: plain for plain, _ in decrypted}
        envelopes = {envelope["event_id"]: envelope for _, envelope in decrypted}
        changed = _decrypt_in_place(clear, envelopes)
        if changed:
            search_index.schedule()  # their clear text becomes searchable
        unsealed = list(
            TimelineEntry.objects.filter(
                account_id=lease.account_id, sealed=True, event__event_id__in=list(clear)
            ).values_list("event__event_id", "event__relates_to")
        )
        TimelineEntry.objects.filter(
            account_id=lease.account_id, sealed=True, event__event_id__in=list(clear)
        ).update(sealed=False)
        authenticity.marks_after_decryption(
            lease.account_id, {e: (origins or {}).get(e) for e in clear}
        )
        mine = sorted({i for pair in unsealed for i in pair if i} - set(changed))
        if mine:
            transaction.on_commit(rerender_after_commit(lease.account_id, mine))
        return sorted(set(changed) | {event_id for event_id, _ in unsealed})


def rerender_after_commit(account_id: int, event_ids: list[str]):
    return lambda: notify.messages_changed(account_id=account_id, event_ids=event_ids)
