"""Every read for pages and sync hosts, each with a bounded number of queries."""

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from django.db.models import Q

from accounts.matrix import attachments, client_api
from accounts.matrix.media_api import parse_mxc
from accounts.models import MatrixAccount
from rooms import authenticity, timeline, trust
from rooms.links import first_link
from rooms.models import (
    DeviceTrust,
    DeviceVerification,
    Event,
    LinkPreview,
    Membership,
    OutboxMessage,
    ReadReceipt,
    Room,
    RoomState,
    TimelineEntry,
    WithheldKey,
    megolm_session_id,
)
from rooms.naming import member_names
from rooms.powers import room_powers
from rooms.relations import (
    ReplyPreview,
    ThreadSummary,
    apply_relations,
    is_hidden,
    strip_reply_fallback,
)


@dataclass(frozen=True)
class Device:
    homeserver_url: str
    user_id: str
    # Secrets: never in a repr, a log line or a traceback.
    access_token: str = field(repr=False)
    device_id: str = ""
    pickle_key: str = field(default="", repr=False)
    cross_signing_keys: str = field(default="", repr=False)
    key_backup_key: str = field(default="", repr=False)


def account_device(*, account_id: int) -> Device:
    account = MatrixAccount.objects.get(pk=account_id)
    return Device(
        account.homeserver_url,
        account.mxid,
        account.access_token,
        account.device_id,
        account.pickle_key,
        account.cross_signing_keys,
        account.key_backup_key,
    )


def encrypted_room_ids(*, account_id: int) -> set[str]:
    """Rooms the account has joined that are end-to-end encrypted. Either record is enough, our
    membership's flag or the room's state, so a room never goes back to plain text."""
    return set(
        Membership.objects.filter(account_id=account_id, membership=Membership.JOIN)
        .filter(Q(is_encrypted=True) | Q(room__state__event_type="m.room.encryption"))
        .values_list("room__room_id", flat=True)
    )


def events_awaiting_keys(
    *, account_id: int, session_ids: set[str] | None = None, limit: int = 500
) -> list[tuple[str, dict]]:
    """(room id, raw event) of encrypted events in the account's timelines still unreadable,
    newest first; only those of the given Megolm sessions when `session_ids` is set."""
    entries = TimelineEntry.objects.filter(account_id=account_id, sealed=True).order_by(
        "-origin_server_ts"
    )
    found = []
    for room_id, raw, envelope in entries.values_list(
        "room__room_id", "event__raw", "event__encrypted_raw"
    )[: limit * 4]:
        envelope = envelope or raw
        if session_ids is None or megolm_session_id(envelope) in session_ids:
            found.append((room_id, envelope))
        if len(found) >= limit:
            break
    return found


def active_account_ids(*, ids: list[int]) -> list[int]:
    return list(
        MatrixAccount.objects.filter(pk__in=ids, is_active=True, user__is_active=True)
        .exclude(access_token="")
        .values_list("id", flat=True)
    )


@dataclass(frozen=True)
class RoomList:
    invites: list[Membership]
    spaces: list[Membership]
    rooms: list[Membership]
    direct: list[Membership]
    synced: bool

    @property
    def is_empty(self) -> bool:
        return not (self.invites or self.rooms or self.direct or self.spaces)

    @property
    def unread_total(self) -> int:
        """Notifying messages across joined rooms (the homeserver's push-rule counts): the page
        title and favicon badge show it, so no extra query."""
        return sum(m.notification_count for m in (*self.spaces, *self.rooms, *self.direct))

    @property
    def mention_total(self) -> int:
        """Highlights (mentions, keywords) across joined rooms."""
        return sum(m.highlight_count for m in (*self.spaces, *self.rooms, *self.direct))


def room_list(*, account: MatrixAccount) -> RoomList:
    """Joined rooms and pending invites, most recent first (one query, plus one for sync state)."""
    memberships = list(
        Membership.objects.filter(
            account=account, membership__in=[Membership.JOIN, Membership.INVITE]
        )
        .select_related("room")
        .order_by("-last_activity_ts", "display_name")
    )
    joined = [m for m in memberships if m.membership == Membership.JOIN]
    return RoomList(
        invites=[m for m in memberships if m.membership == Membership.INVITE],
        spaces=[m for m in joined if m.is_space],
        rooms=[m for m in joined if not m.is_space and not m.is_direct],
        direct=[m for m in joined if not m.is_space and m.is_direct],
        synced=hasattr(account, "sync_state") and bool(account.sync_state.next_batch),
    )


@dataclass(frozen=True)
class TimelineItem:
    event_id: str
    sender: str
    sender_name: str
    sender_avatar: "Sender"
    event_type: str
    body: str
    html: str
    origin_server_ts: int
    stream_id: int
    is_own: bool
    room_dom_id: str
    txn_id: str = ""
    reply_to: str = ""
    edited: bool = False
    redacted: bool = False
    reactions: tuple = ()
    reply: "ReplyPreview | None" = None
    room_id: str = ""
    media: "MediaRef | None" = None
    mentions_me: bool = False
    seen_by: tuple = ()
    thread: "ThreadSummary | None" = None
    in_thread: str = ""  # the root's event id when this is a thread reply
    preview: "LinkPreview | None" = None
    gaps_above: tuple = ()  # timeline.GapMarker: holes still filling just above this item
    authenticity: str = ""  # why our device cannot vouch for the sender (rooms/authenticity.py)

    quick_reactions = ("👍", "❤️", "😄", "🎉")

    @property
    def authenticity_text(self) -> str:
        return authenticity.explanation(self.authenticity)

    @property
    def authenticity_red(self) -> bool:
        return self.authenticity in authenticity.RED

    @property
    def day_key(self) -> str:
        """The UTC day, for day separators (people get their own time zone later)."""
        return _day(self.origin_server_ts).strftime("%Y%m%d")

    @property
    def day_label(self) -> str:
        return _day(self.origin_server_ts).strftime("%A %-d %B %Y")


@dataclass(frozen=True)
class MediaRef:
    kind: str
    server_name: str
    media_id: str
    name: str
    size_label: str
    encrypted: bool = False  # an EncryptedFile: served decrypted by our proxy, by event


def media_ref(raw: dict) -> MediaRef | None:
    """The file or image a message carries, when its mxc:// address is well formed."""
    content = raw.get("content") if isinstance(raw.get("content"), dict) else {}
    kind = content.get("msgtype")
    if raw.get("type") != "m.room.message" or kind not in (
        "m.image",
        "m.file",
        "m.video",
        "m.audio",
    ):
        return None
    file = content.get("file")
    encrypted = attachments.is_encrypted_file(file)
    parsed = parse_mxc(file["url"] if encrypted else content.get("url", ""))
    if parsed is None:
        return None
    info = content.get("info") if isinstance(content.get("info"), dict) else {}
    size = info.get("size")
    label = _size_label(size) if isinstance(size, int) and size > 0 else ""
    name = content.get("body") if isinstance(content.get("body"), str) else "file"
    return MediaRef(kind, parsed[0], parsed[1], name[:200], label, encrypted)


def room_is_encrypted(*, account: MatrixAccount, room: Room) -> bool:
    """As the outbox decides it (see encrypted_room_ids)."""
    return room.room_id in encrypted_room_ids(account_id=account.pk)


def _mentions(raw: dict, account: MatrixAccount) -> bool:
    """Intentional mentions (m.mentions) when the sender declares them, else the old way: our
    user id or localpart in the text."""
    content = raw.get("content") if isinstance(raw.get("content"), dict) else {}
    declared = content.get("m.mentions")
    if isinstance(declared, dict):
        users = declared.get("user_ids")
        return isinstance(users, list) and account.mxid in users
    body = content.get("body")
    return isinstance(body, str) and (account.mxid in body or f"@{account.localpart}" in body)


def _joined_names(account: MatrixAccount, room: Room) -> dict[str, str]:
    """Everyone joined now, from the homeserver (lazy-loaded state lacks members who have not
    spoken), with display names disambiguated per the spec."""
    joined = client_api.joined_members(
        account.homeserver_url, access_token=account.access_token, room_id=room.room_id
    )
    return member_names(
        {u: {"displayname": v.get("display_name"), "membership": "join"} for u, v in joined.items()}
    )


def mention_candidates(*, account: MatrixAccount, room: Room, term: str) -> "list[PersonHit]":
    """Joined members whose name or id starts with what follows the @ (from the homeserver:
    lazy-loaded state lacks members who have not spoken)."""
    term = term.strip().lstrip("@").lower()
    hits = [
        PersonHit(user_id, name)
        for user_id, name in _joined_names(account, room).items()
        if user_id != account.mxid
        and (name.lower().startswith(term) or user_id[1:].lower().startswith(term))
    ]
    return sorted(hits, key=lambda hit: hit.display_name.lower())[:8]


def _size_label(size: int) -> str:
    if size < 1024:
        return f"{size} bytes"
    if size < 1024 * 1024:
        return f"{size / 1024:.0f} kB"
    return f"{size / 1024 / 1024:.1f} MB"


def _day(origin_server_ts: int) -> datetime:
    try:
        return datetime.fromtimestamp(origin_server_ts / 1000, tz=UTC)
    except (ValueError, OverflowError, OSError):
        return datetime.fromtimestamp(0, tz=UTC)


@dataclass(frozen=True)
class RoomView:
    membership: Membership
    items: list[TimelineItem]
    outbox: list[OutboxMessage]
    has_older: bool
    children: tuple = ()  # a space's rooms
    gaps_below: tuple = ()  # timeline.GapMarker: holes still filling below the newest item
    replacement: "Replacement | None" = None
    security: "RoomSecurity | None" = None
    identity_changes: tuple = ()  # members whose identity changed since pinned (rooms/trust.py)
    can_redact_others: bool = False  # a moderator: the menu offers Delete on others' messages
    scheduled: tuple = ()  # "Send later" messages still waiting for their time, soonest first

    @property
    def last_stream_id(self) -> int:
        return self.items[-1].stream_id if self.items else 0


def _body_of(raw: dict) -> str:
    content = raw.get("content") if isinstance(raw.get("content"), dict) else {}
    event_type = raw.get("type")
    if event_type == "m.room.message":
        if _redacted_by_server(raw):
            return "Message deleted"
        body = content.get("body")
        return body if isinstance(body, str) else "(message without text)"
    if event_type == "m.room.encrypted":
        return WAITING_FOR_KEY
    if event_type == "m.room.member":
        return _membership_text(raw, content)
    if event_type == "m.room.name":
        return f"renamed the room to {content.get('name', '')}"
    if event_type == "m.room.topic":
        return f"changed the topic to {content.get('topic', '')}"
    if event_type == "m.room.create":
        return "created the room"
    return ""


WAITING_FOR_KEY = (
    "Waiting for the key to this encrypted message. It has been requested from your other "
    "devices, and the message appears here as soon as the key arrives."
)
SENT_BEFORE_JOINING = (
    "This encrypted message was sent before you joined, and the sender's devices did not share "
    "its key with you, so it cannot be read here."
)


WITHHELD_TEXT = {
    "m.unverified": (
        "The sender's device shares keys only with devices it has verified, and it has not "
        "verified this one, so this message cannot be read here. Verifying each other fixes it "
        "for their next messages."
    ),
    "m.blacklisted": "The sender has blocked this device from reading their messages.",
    "m.unauthorised": (
        "The sender's device did not give this device the key: you were not allowed to read "
        "this message (for example, it was sent before you joined)."
    ),
    "m.unavailable": "None of your devices has the key to this message, so it cannot be read.",
    "m.no_olm": (
        "The sender's device could not open a secure channel to this device to send the key."
    ),
}


def _unreadable_text(origin_server_ts: int, joined_ts: int | None, withheld: str = "") -> str:
    """Why an encrypted message cannot be read, in plain words."""
    if withheld:
        return WITHHELD_TEXT.get(
            withheld, f"The sender's device withheld the key to this message ({withheld[:64]})."
        )
    if joined_ts is not None and origin_server_ts < joined_ts:
        return SENT_BEFORE_JOINING
    return WAITING_FOR_KEY


def _sealed_view(event):
    """The event as this account received it: the envelope, nothing of the clear content."""
    envelope = event.envelope
    return Event(
        event_id=event.event_id,
        room_id=event.room_id,
        sender=event.sender,
        event_type="m.room.encrypted",
        origin_server_ts=event.origin_server_ts,
        raw=envelope,
        relates_to=event.relates_to,
        rel_type=event.rel_type,
    )


def _withheld_codes(account: MatrixAccount, entries) -> dict[str, str]:
    """session id -> withheld code, for the unreadable events among `entries` (one query)."""
    sessions = {megolm_session_id(e.event.envelope) for e in entries if e.sealed}
    sessions.discard("")
    if not sessions:
        return {}
    return dict(
        WithheldKey.objects.filter(account=account, session_id__in=sessions).values_list(
            "session_id", "code"
        )
    )


def _joined_ts(account: MatrixAccount, room: Room) -> int | None:
    """When the account last joined the room (its current member event), if known."""
    return (
        RoomState.objects.filter(room=room, event_type="m.room.member", state_key=account.mxid)
        .values_list("origin_server_ts", flat=True)
        .first()
    )


MEMBERSHIP_TEXT = {
    "join": "joined the room",
    "leave": "left the room",
    "ban": "was banned",
    "knock": "asked to join",
}


def _membership_text(raw: dict, content: dict) -> str:
    membership = content.get("membership")
    target = raw.get("state_key", "")
    if membership == "invite":
        return f"invited {content.get('displayname') or target}"
    if membership == "leave" and target != raw.get("sender"):
        return f"removed {target}"
    return MEMBERSHIP_TEXT.get(membership, "changed their membership")


def _txn_of(raw: dict) -> str:
    unsigned = raw.get("unsigned")
    txn = unsigned.get("transaction_id") if isinstance(unsigned, dict) else None
    return txn if isinstance(txn, str) else ""


@dataclass(frozen=True)
class Sender:
    name: str
    avatar_server_name: str = ""
    avatar_media_id: str = ""


def _senders(room: Room) -> dict[str, Sender]:
    """Names (disambiguated per the spec) and avatars of the room's members, in one query."""
    members = {
        user_id: content if isinstance(content, dict) else {}
        for user_id, content in RoomState.objects.filter(
            room=room, event_type="m.room.member"
        ).values_list("state_key", "content")
    }
    names = member_names(members)
    senders = {}
    for user_id, content in members.items():
        server_name, media_id = parse_mxc(content.get("avatar_url", "")) or ("", "")
        senders[user_id] = Sender(names[user_id], server_name, media_id)
    return senders


def thread_items(
    *, account: MatrixAccount, room: Room, root_event_id: str, entry_ids: list[int] | None = None
) -> list[TimelineItem]:
    """A thread's root and its replies, oldest first (what the thread panel shows)."""
    entries = TimelineEntry.objects.filter(account=account, room=room).filter(
        Q(event__event_id=root_event_id)
        | Q(event__relates_to=root_event_id, event__rel_type="m.thread")
    )
    if entry_ids is not None:
        entries = entries.filter(id__in=entry_ids)
    ids = list(entries.values_list("id", flat=True)[:500])
    return timeline_items(
        account=account, room=room, entry_ids=ids, limit=len(ids) or 1, include_thread=True
    )


def timeline_items(
    *,
    account: MatrixAccount,
    room: Room,
    after: int | None = None,
    before: int | None = None,
    entry_ids: list[int] | None = None,
    limit: int = 50,
    include_thread: bool = False,
) -> list[TimelineItem]:
    """Events this account saw in the room, oldest first: the latest `limit`, or those after/before
    a stream position (3 queries whatever the size)."""
    entries = TimelineEntry.objects.filter(account=account, room=room).select_related("event")
    if after is not None:
        entries = sorted(entries.filter(id__gt=after).order_by("id")[:limit], key=_display_order)
    else:
        if before is not None:
            entries = timeline.before(entries, before)
        if entry_ids is not None:
            entries = entries.filter(id__in=entry_ids)
        else:  # a page of `limit` visible items, however many hidden kinds lie between them
            entries = timeline.shown(entries)
        entries = list(entries.order_by("-origin_server_ts", "-id")[:limit])[::-1]
    senders = _senders(room)
    items = []
    unreadable = any(e.sealed for e in entries)
    joined_ts = _joined_ts(account, room) if unreadable else None
    withheld = _withheld_codes(account, entries) if unreadable else {}
    for entry in entries:
        event = entry.event
        body = _body_of(event.raw)
        if entry.sealed:  # what this account's own device could read: nothing yet
            event = _sealed_view(event)
            code = withheld.get(megolm_session_id(event.raw), "")
            body = _unreadable_text(event.origin_server_ts, joined_ts, code)
        in_thread = event.relates_to if event.rel_type == "m.thread" else ""
        if not body or (
            is_hidden(event.event_type, event.rel_type) and not (include_thread and in_thread)
        ):
            continue
        if event.reply_to:
            body = strip_reply_fallback(body)
        items.append(
            TimelineItem(
                event_id=event.event_id,
                sender=event.sender,
                sender_name=senders.get(event.sender, Sender(event.sender)).name,
                sender_avatar=senders.get(event.sender, Sender(event.sender)),
                event_type=event.event_type,
                body=body,
                html=event.html,
                origin_server_ts=event.origin_server_ts,
                stream_id=entry.id,
                is_own=event.sender == account.mxid,
                room_dom_id=room.dom_id,
                txn_id=_txn_of(event.raw) if event.sender == account.mxid else "",
                reply_to="" if in_thread else event.reply_to,
                in_thread=in_thread,
                room_id=room.room_id,
                media=media_ref(event.raw),
                mentions_me=event.sender != account.mxid and _mentions(event.raw, account),
                redacted=_redacted_by_server(event.raw),
                authenticity="" if entry.sealed else entry.authenticity,
            )
        )
    items = apply_relations(items, account=account, room=room, senders=senders)
    items = _with_previews(items, room=room)
    return _with_readers(items, account=account, room=room, senders=senders)


def _with_previews(items: list, *, room: Room) -> list:
    """Attach the homeserver's preview of each message's first link (two queries at most; none
    in encrypted rooms, where we never ask for previews)."""
    links = {
        item.event_id: link
        for item in items
        if item.event_type == "m.room.message"
        and not item.media
        and not item.redacted
        and (link := first_link(item.body))
    }
    if not links or RoomState.objects.filter(room=room, event_type="m.room.encryption").exists():
        return items
    found = {
        p.url: p
        for p in LinkPreview.objects.filter(
            url_hash__in={LinkPreview.hash_of(link) for link in links.values()}, failed=False
        )
    }
    return [
        replace(item, preview=found[links[item.event_id]])
        if links.get(item.event_id) in found
        else item
        for item in items
    ]


def _with_readers(items: list, *, account: MatrixAccount, room: Room, senders: dict) -> list:
    """Who has read up to each message (others' latest public receipts), in one query."""
    readers: dict[str, list[str]] = {}
    for event_id, user_id in (
        ReadReceipt.objects.filter(room=room, event_id__in=[i.event_id for i in items])
        .exclude(user_id=account.mxid)
        .values_list("event_id", "user_id")
    ):
        readers.setdefault(event_id, []).append(user_id)
    return [
        replace(
            item,
            seen_by=tuple(
                sorted(
                    senders[u].name if u in senders else u
                    for u in readers.get(item.event_id, [])
                    if u != item.sender
                )
            ),
        )
        if item.event_id in readers
        else item
        for item in items
    ]


def _redacted_by_server(raw: dict) -> bool:
    unsigned = raw.get("unsigned")
    return isinstance(unsigned, dict) and "redacted_because" in unsigned


def _display_order(entry: TimelineEntry) -> tuple[int, int]:
    return (entry.origin_server_ts, entry.id)


def membership_for(*, account: MatrixAccount, room_id: str) -> Membership | None:
    """The account's joined or invited membership of a room, else None (the page is a 404)."""
    return (
        Membership.objects.filter(
            account=account,
            room__room_id=room_id,
            membership__in=[Membership.JOIN, Membership.INVITE],
        )
        .select_related("room")
        .first()
    )


def outbox_unsettled(*, account: MatrixAccount, room: Room) -> list[OutboxMessage]:
    """Messages still sending or failed, shown after the timeline until their echo arrives (and
    "Send later" ones not yet due, which room_view sets apart)."""
    return list(
        OutboxMessage.objects.filter(account=account, room=room)
        .exclude(status=OutboxMessage.SENT)
        .order_by("id")
    )


def _still_scheduled(message: OutboxMessage, now: datetime) -> bool:
    return message.send_at is not None and message.send_at > now


def room_view(*, account: MatrixAccount, room_id: str, limit: int = 50) -> RoomView | None:
    membership = membership_for(account=account, room_id=room_id)
    if membership is None:
        return None
    items = timeline_items(account=account, room=membership.room, limit=limit)
    has_older = has_older_events(
        account=account, membership=membership, stream_id=items[0].stream_id if items else 0
    )
    items, gaps_below = with_gaps(
        items, account=account, room=membership.room, newest=True, has_older=has_older
    )
    unsettled, now = outbox_unsettled(account=account, room=membership.room), datetime.now(UTC)
    view = RoomView(
        membership=membership,
        items=items,
        # One query for both: what is going out, and "Send later" messages not yet due.
        outbox=[m for m in unsettled if not _still_scheduled(m, now)],
        scheduled=tuple(
            sorted((m for m in unsettled if _still_scheduled(m, now)), key=lambda m: m.send_at)
        ),
        has_older=has_older,
        gaps_below=tuple(gaps_below),
        # A space's rooms: the homeserver shows its hierarchy to people invited to it too.
        children=space_children(account=account, room=membership.room)
        if membership.is_space
        else (),
    )
    if membership.membership != Membership.JOIN:
        return view  # an invite shows its own stripped state, not the room's current state
    return replace(
        view,
        replacement=room_replacement(account=account, room=membership.room),
        security=room_security(account=account, membership=membership),
        identity_changes=tuple(trust.room_identity_changes(account=account, room=membership.room)),
        can_redact_others=can_redact_others(account=account, room=membership.room),
    )


def can_redact_others(*, account: MatrixAccount, room: Room) -> bool:
    """Whether the room's power levels let this person delete other people's messages (the
    homeserver checks again when the redaction is sent; this only decides what the menu offers)."""
    powers = room_powers(room)
    return powers.level(account.mxid) >= powers.redact


BRIDGE_TYPES = ("m.bridge", "uk.half-shot.bridge")  # MSC2346, and its unstable name


@dataclass(frozen=True)
class RoomSecurity:
    """The room's "TLS-like" indicator: is it encrypted, can every device that reads it be
    trusted, and does a bridge carry its messages out of Matrix (and out of E2EE)."""

    encrypted: bool
    devices: int  # other people's devices (and our other devices) that receive the room keys
    untrusted: int  # of those: neither verified by us nor cross-signed by their owner
    verified: int  # of those: verified by us with emoji
    bridges: tuple[str, ...]  # names of the networks the room is bridged to

    @property
    def all_trusted(self) -> bool:
        return self.encrypted and self.untrusted == 0


def room_security(*, account: MatrixAccount, membership: Membership) -> RoomSecurity:
    """Two queries: the room's joined members and bridges from its state, then their devices."""
    members: list[str] = []
    bridges: list[str] = []
    for event_type, state_key, content in RoomState.objects.filter(
        room=membership.room, event_type__in=("m.room.member", *BRIDGE_TYPES)
    ).values_list("event_type", "state_key", "content"):
        content = content if isinstance(content, dict) else {}
        if event_type == "m.room.member" and content.get("membership") == "join":
            members.append(state_key)
        elif event_type in BRIDGE_TYPES:
            bridges.append(_bridge_name(content, state_key))
    devices = verified = untrusted = 0
    if membership.is_encrypted:
        for user_id, device_id, is_verified, signed in DeviceTrust.objects.filter(
            account=account, user_id__in=members
        ).values_list("user_id", "device_id", "verified", "cross_signed"):
            if user_id == account.mxid and device_id == account.device_id:
                continue
            devices += 1
            verified += is_verified
            untrusted += not (is_verified or signed)
    return RoomSecurity(
        membership.is_encrypted, devices, untrusted, verified, tuple(sorted(set(bridges)))
    )


def _bridge_name(content: dict, state_key: str) -> str:
    protocol = content.get("protocol") if isinstance(content.get("protocol"), dict) else {}
    for name in (protocol.get("displayname"), protocol.get("id"), state_key):
        if isinstance(name, str) and name.strip():
            return name.strip()[:64]
    return "another network"


@dataclass(frozen=True)
class SpaceChild:
    room_id: str
    name: str
    joined: bool


def space_children(*, account: MatrixAccount, room: Room) -> tuple[SpaceChild, ...]:
    """A space's rooms (m.space.child with a non-empty via), named as we know them."""
    children = [
        key
        for key, content in RoomState.objects.filter(
            room=room, event_type="m.space.child"
        ).values_list("state_key", "content")
        if isinstance(content, dict) and isinstance(content.get("via"), list) and content["via"]
    ]
    known = {
        m.room.room_id: m
        for m in Membership.objects.filter(
            account=account, room__room_id__in=children
        ).select_related("room")
    }
    return tuple(
        SpaceChild(
            room_id,
            known[room_id].display_name if room_id in known else room_id,
            room_id in known and known[room_id].membership == Membership.JOIN,
        )
        for room_id in sorted(children, key=lambda r: (r not in known, r))
    )


@dataclass(frozen=True)
class Replacement:
    room_id: str
    reason: str
    joined: bool


def room_replacement(*, account: MatrixAccount, room: Room) -> Replacement | None:
    """The room that replaced this one (m.room.tombstone), if its sender had the power to say so.
    The new room's own predecessor link is checked once we have its state."""
    tombstone = (
        RoomState.objects.filter(room=room, event_type="m.room.tombstone", state_key="")
        .values_list("sender", "content")
        .first()
    )
    if tombstone is None:
        return None
    sender, content = tombstone
    target = content.get("replacement_room") if isinstance(content, dict) else None
    if not isinstance(target, str) or not target.startswith("!"):
        return None
    powers = room_powers(room)
    if powers.level(sender) < powers.state_default:
        return None
    new_room = Membership.objects.filter(account=account, room__room_id=target).first()
    if new_room is not None:
        create = (
            RoomState.objects.filter(room=new_room.room, event_type="m.room.create", state_key="")
            .values_list("content", flat=True)
            .first()
            or {}
        )
        predecessor = create.get("predecessor") if isinstance(create, dict) else None
        if isinstance(predecessor, dict) and predecessor.get("room_id") not in (None, room.room_id):
            return None  # the new room does not name this one as its predecessor: not followed
    reason = content.get("body") if isinstance(content.get("body"), str) else ""
    return Replacement(
        target, reason[:300], new_room is not None and new_room.membership == Membership.JOIN
    )


@dataclass(frozen=True)
class PendingSend:
    txn_id: str
    room_id: str
    event_type: str
    content: dict
    encrypted: bool  # the room is end-to-end encrypted: the owner encrypts before sending
    encryption_settings: dict | None = None  # the room's m.room.encryption content
    state_known: bool = True  # the room's state has synced (else we cannot know it is plain)
    maybe_delivered: bool = False  # an earlier attempt may have reached the homeserver
    queued_at_ms: int = 0  # when the person sent it: its echo cannot be older


def outbox_pending(*, account_id: int) -> list[PendingSend]:
    """The account's queued messages, oldest first (the sender keeps each room's order)."""
    encrypted = encrypted_room_ids(account_id=account_id)
    rows = list(
        OutboxMessage.objects.filter(account_id=account_id, status=OutboxMessage.PENDING)
        .filter(Q(send_at__isnull=True) | Q(send_at__lte=datetime.now(UTC)))  # "Send later"
        .select_related("room")
        .order_by("id")
    )
    state = RoomState.objects.filter(
        room__in={row.room_id for row in rows},
        event_type__in=("m.room.encryption", "m.room.create"),
        state_key="",
    ).values_list("room__room_id", "event_type", "content")
    settings = {room_id: content for room_id, kind, content in state if kind == "m.room.encryption"}
    synced = {room_id for room_id, kind, _ in state if kind == "m.room.create"}
    return [
        PendingSend(
            row.txn_id,
            row.room.room_id,
            row.event_type,
            row.content,
            row.room.room_id in encrypted,
            settings.get(row.room.room_id),
            row.room.room_id in synced,
            row.maybe_delivered,
            # A scheduled message is queued when it falls due: it cannot have gone before.
            int(max(row.created_at, row.send_at or row.created_at).timestamp() * 1000),
        )
        for row in rows
    ]


def outbox_message(*, account_id: int, txn_id: str) -> OutboxMessage | None:
    return (
        OutboxMessage.objects.filter(account_id=account_id, txn_id=txn_id)
        .select_related("room")
        .first()
    )


def has_events_before(*, account: MatrixAccount, room: Room, stream_id: int) -> bool:
    """Anything to show above the entry with this stream id (0: above an empty page)?"""
    entries = TimelineEntry.objects.filter(account=account, room=room)
    return timeline.shown(timeline.before(entries, stream_id)).exists()


def history_on_homeserver(*, membership: Membership) -> bool:
    """Scrolling back can still fetch older history from the homeserver."""
    return bool(membership.history_token) and not membership.history_complete


def has_older_events(*, account: MatrixAccount, membership: Membership, stream_id: int) -> bool:
    """More history above: in the local store, or still on the homeserver. `stream_id` is the
    page's first item (0 when it shows none: then only the homeserver can have more)."""
    if history_on_homeserver(membership=membership):
        return True
    return bool(stream_id) and has_events_before(
        account=account, room=membership.room, stream_id=stream_id
    )


def with_gaps(
    items: list[TimelineItem], *, account: MatrixAccount, room: Room, newest: bool, has_older: bool
) -> tuple[list[TimelineItem], list[timeline.GapMarker]]:
    """The page's items with the gaps still filling where they are (one query)."""
    markers = timeline.gap_markers(account_id=account.pk, room=room)
    if not markers:
        return items, []
    return timeline.place_gaps(items, markers, newest=newest, oldest=not has_older)


@dataclass(frozen=True)
class CatchUp:
    items: list[TimelineItem]  # new lines, in (origin_server_ts, id) order
    updates: list[TimelineItem]  # messages already shown that new relations changed
    position: int
    more: bool
    gaps: list[timeline.GapMarker]  # every gap still filling: the page shows these, no others


def catch_up(*, account: MatrixAccount, room: Room, after: int) -> CatchUp:
    """What a page that shows everything up to stream position `after` is missing, a page at a
    time (the page asks again while `more`)."""
    scan = timeline.catch_up_scan(account_id=account.pk, room=room, after=after)
    items = (
        timeline_items(
            account=account, room=room, entry_ids=scan.shown_ids, limit=len(scan.shown_ids)
        )
        if scan.shown_ids
        else []
    )
    new = {item.event_id for item in items}
    wanted = [e for e in scan.touched_event_ids if e not in new]
    touched_ids = (
        list(
            TimelineEntry.objects.filter(
                account=account, room=room, event__event_id__in=wanted
            ).values_list("id", flat=True)
        )
        if wanted
        else []
    )
    updates = (
        timeline_items(account=account, room=room, entry_ids=touched_ids, limit=len(touched_ids))
        if touched_ids
        else []
    )
    gaps = timeline.gap_markers(account_id=account.pk, room=room)
    return CatchUp(items, updates, scan.position, scan.more, gaps)


@dataclass(frozen=True)
class PersonHit:
    user_id: str
    display_name: str


def people_search(*, account: MatrixAccount, term: str) -> list[PersonHit]:
    """People the homeserver's user directory lets this account find (a homeserver read)."""
    term = term.strip()
    if len(term) < 2:
        return []
    results = client_api.search_user_directory(
        account.homeserver_url, access_token=account.access_token, term=term[:100]
    )
    return [
        PersonHit(
            r["user_id"],
            r.get("display_name")
            if isinstance(r.get("display_name"), str) and r.get("display_name")
            else r["user_id"],
        )
        for r in results
        if r["user_id"] != account.mxid
    ]


@dataclass(frozen=True)
class DirectoryRoom:
    room_id: str
    name: str
    topic: str
    alias: str
    members: int


def room_directory(*, account: MatrixAccount, term: str = "") -> list[DirectoryRoom]:
    def text(value) -> str:
        return value if isinstance(value, str) else ""

    return [
        DirectoryRoom(
            room_id=r["room_id"],
            name=text(r.get("name")) or text(r.get("canonical_alias")) or r["room_id"],
            topic=text(r.get("topic")),
            alias=text(r.get("canonical_alias")),
            members=r.get("num_joined_members")
            if isinstance(r.get("num_joined_members"), int)
            else 0,
        )
        for r in client_api.public_rooms(
            account.homeserver_url, access_token=account.access_token, term=term.strip()[:100]
        )
    ]


def typing_names(*, room: Room, user_ids: list[str]) -> list[str]:
    senders = _senders(room)
    return [senders[u].name if u in senders else u for u in user_ids]


@dataclass(frozen=True)
class Member:
    user_id: str
    name: str
    power: int

    @property
    def role(self) -> str:
        if self.power >= 100:
            return "Admin"
        if self.power >= 50:
            return "Moderator"
        return "Member"


@dataclass(frozen=True)
class RoomSettings:
    members: list[Member]
    own_power: int
    posting: str
    can_change: bool


def room_settings(*, account: MatrixAccount, membership: Membership) -> RoomSettings:
    """Members with their roles (from the homeserver: lazy-loaded state lacks silent members)
    and what this person may change."""
    room = membership.room
    powers = room_powers(room)
    level = powers.level
    members = sorted(
        (Member(u, name, level(u)) for u, name in _joined_names(account, room).items()),
        key=lambda m: (-m.power, m.name.lower()),
    )
    own = level(account.mxid)
    return RoomSettings(
        members=members,
        own_power=own,
        posting="moderators" if powers.events_default >= 50 else "everyone",
        can_change=own >= powers.state_default,
    )


def verifications_wanted(*, account_id: int) -> list[DeviceVerification]:
    """Verifications with an answer from the person that the owning host has yet to carry out."""
    return list(
        DeviceVerification.objects.filter(account_id=account_id).exclude(wanted="").order_by("id")
    )


def verifications_needing_attention(*, account: MatrixAccount) -> list[DeviceVerification]:
    """Open verifications the person should see wherever they are (newest first, a few)."""
    recent = DeviceVerification.objects.filter(account=account).exclude(
        state__in=[DeviceVerification.VERIFIED, DeviceVerification.CANCELLED]
    )
    return list(recent.order_by("-updated_at")[:3])


def verifications_recent(*, account: MatrixAccount) -> list[DeviceVerification]:
    return list(DeviceVerification.objects.filter(account=account).order_by("-updated_at")[:10])


@dataclass(frozen=True)
class DeviceEntry:
    device_id: str
    name: str
    fingerprint: str  # the Ed25519 key in groups of four, as other clients show it


@dataclass(frozen=True)
class SecurityView:
    device: DeviceEntry | None
    cross_signing_state: str
    cross_signing_label: str
    key_backup_version: str
    other_devices: list[DeviceEntry]
    verifications: list[DeviceVerification]


def _fingerprint(key: str) -> str:
    return " ".join(key[i : i + 4] for i in range(0, len(key), 4))


def devices_of(*, account: MatrixAccount, user_id: str) -> list[DeviceEntry]:
    """A user's devices (from the homeserver), for choosing one to verify."""
    devices = client_api.user_devices(
        account.homeserver_url, access_token=account.access_token, user_id=user_id
    )
    return [
        DeviceEntry(device_id, info["name"], _fingerprint(info["ed25519"]))
        for device_id, info in sorted(devices.items())
    ]


def security(*, account: MatrixAccount) -> SecurityView:
    """This device's keys and trust, the account's other devices, and recent verifications."""
    devices = devices_of(account=account, user_id=account.mxid)
    own = next((d for d in devices if d.device_id == account.device_id), None)
    return SecurityView(
        device=own,
        cross_signing_state=account.cross_signing_state,
        cross_signing_label=account.get_cross_signing_state_display(),
        key_backup_version=account.key_backup_version,
        other_devices=[d for d in devices if d.device_id != account.device_id],
        verifications=verifications_recent(account=account),
    )
