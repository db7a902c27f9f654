"""What the homeserver gave each account: rooms, memberships, room state, events and timelines.

An event is stored once (event_id unique) and shown to an account only through that account's own
TimelineEntry rows, so a person sees exactly what their homeserver account saw.
"""

import hashlib

from django.db import models

from accounts.matrix.media_api import parse_mxc
from accounts.models import MatrixAccount


class Room(models.Model):
    room_id = models.CharField(max_length=255, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.room_id

    @property
    def dom_id(self) -> str:
        """A stable HTML id for the room (room ids contain '!' and ':')."""
        return "r" + hashlib.sha1(self.room_id.encode(), usedforsecurity=False).hexdigest()[:16]


class Membership(models.Model):
    """One account's view of one room, with the name and avatar resolved for that account."""

    JOIN, INVITE, LEAVE, BAN, KNOCK = "join", "invite", "leave", "ban", "knock"
    CHOICES = [(v, v) for v in (JOIN, INVITE, LEAVE, BAN, KNOCK)]

    account = models.ForeignKey(MatrixAccount, on_delete=models.CASCADE, related_name="memberships")
    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="memberships")
    membership = models.CharField(max_length=8, choices=CHOICES)
    display_name = models.CharField(max_length=255, blank=True)
    avatar_mxc = models.CharField(max_length=512, blank=True)
    topic = models.TextField(blank=True)
    is_direct = models.BooleanField(default=False)
    is_encrypted = models.BooleanField(default=False)
    is_space = models.BooleanField(default=False)
    inviter = models.CharField(max_length=255, blank=True)
    heroes = models.JSONField(default=list, blank=True)
    joined_member_count = models.PositiveIntegerField(default=0)
    invited_member_count = models.PositiveIntegerField(default=0)
    notification_count = models.PositiveIntegerField(default=0)
    highlight_count = models.PositiveIntegerField(default=0)
    # origin_server_ts of the newest event the person has read here (their receipt, or a message
    # of their own): nothing up to it counts as unread, whatever a lagging sync says.
    read_up_to_ts = models.BigIntegerField(default=0)
    invite_state = models.JSONField(default=list, blank=True)
    last_activity_ts = models.BigIntegerField(default=0)
    # Where scrolling back continues on the homeserver once the local store is exhausted.
    history_token = models.CharField(max_length=512, blank=True)
    history_complete = models.BooleanField(default=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["account", "room"], name="membership_account_room")
        ]
        indexes = [models.Index(fields=["account", "membership", "-last_activity_ts"])]

    def __str__(self) -> str:
        return f"{self.account_id} {self.membership} {self.room_id}"

    @property
    def avatar_server_name(self) -> str:
        return (parse_mxc(self.avatar_mxc) or ("", ""))[0]

    @property
    def avatar_media_id(self) -> str:
        return (parse_mxc(self.avatar_mxc) or ("", ""))[1]


class RoomState(models.Model):
    """Current state of a joined room, one row per (type, state_key), shared by its members here."""

    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="state")
    event_type = models.CharField(max_length=255)
    state_key = models.CharField(max_length=255)
    event_id = models.CharField(max_length=255)
    sender = models.CharField(max_length=255)
    content = models.JSONField(default=dict)
    origin_server_ts = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["room", "event_type", "state_key"], name="room_state_key"
            )
        ]

    def __str__(self) -> str:
        return f"{self.event_type}/{self.state_key} in {self.room_id}"


class Event(models.Model):
    """A room event exactly as received (raw), plus the few columns pages query by."""

    event_id = models.CharField(max_length=255, unique=True)
    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="events")
    sender = models.CharField(max_length=255)
    event_type = models.CharField(max_length=255)
    # NULL marks a non-state event; "" is a real (empty) state key.
    state_key = models.CharField(max_length=255, null=True, blank=True)  # noqa: DJ001
    origin_server_ts = models.BigIntegerField(default=0)
    # For an encrypted event we could decrypt: the event as its sender wrote it (clear type and
    # content under the envelope's ids), with the envelope as received in encrypted_raw. An event
    # still waiting for its key keeps type m.room.encrypted here and is decrypted in place later.
    raw = models.JSONField()
    encrypted_raw = models.JSONField(null=True, blank=True)
    # formatted_body sanitized once at ingest (the spec's allowlist); empty when there is none.
    html = models.TextField(blank=True)
    # Relations, lifted out of the content so a page finds edits, reactions, replies and
    # redactions of the events it shows in one indexed query.
    relates_to = models.CharField(max_length=255, blank=True)
    rel_type = models.CharField(max_length=64, blank=True)
    reply_to = models.CharField(max_length=255, blank=True)
    redacts = models.CharField(max_length=255, blank=True)
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [
            models.Index(fields=["room", "origin_server_ts"]),
            models.Index(fields=["room", "relates_to"]),
            models.Index(fields=["room", "redacts"]),
            models.Index(fields=["event_type", "room"]),  # events still waiting for a key
        ]

    def __str__(self) -> str:
        return self.event_id

    @property
    def envelope(self) -> dict:
        """The event as it travelled: the encrypted envelope when there is one."""
        return self.encrypted_raw or self.raw


def megolm_session_id(envelope: dict) -> str:
    """The Megolm session an encrypted event's key belongs to ("" when it names none)."""
    content = envelope.get("content")
    session_id = content.get("session_id") if isinstance(content, dict) else None
    return session_id if isinstance(session_id, str) else ""


class TimelineEntry(models.Model):
    """An event as one account saw it.

    The id is the stream position a page resumes from after a reconnect (arrival order). Pages show
    entries in (origin_server_ts, id) order, so history fetched later (a gap after a limited sync,
    scrolling back) still lands in its place."""

    account = models.ForeignKey(MatrixAccount, on_delete=models.CASCADE, related_name="timeline")
    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="timeline")
    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="timeline_entries")
    origin_server_ts = models.BigIntegerField(default=0)
    # This account's own device could not decrypt the event (yet). Another account's device may
    # have, so the shared Event can hold the clear text: pages still show this account only what
    # its own device could read, as any Matrix client would.
    sealed = models.BooleanField(default=False)
    # Whether this account's device can vouch for who sent the event (see rooms/authenticity.py):
    # "" when it can, else why not. Kept per account: it is this device's decryption.
    authenticity = models.CharField(max_length=16, blank=True, default="")
    # The sender's device that encrypted it (as our device established it), so the mark follows
    # that device's trust when the person verifies it or its owner cross-signs it.
    sender_device = models.CharField(max_length=255, blank=True, default="")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["account", "event"], name="timeline_account_event")
        ]
        indexes = [
            models.Index(fields=["account", "room", "-id"]),
            models.Index(fields=["account", "room", "-origin_server_ts", "-id"]),
            models.Index(
                fields=["account", "sealed"],
                name="timeline_sealed",
                condition=models.Q(sealed=True),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.account_id}: {self.event_id}"


class SyncState(models.Model):
    """The since-token, committed in the same transaction as the events it covers."""

    account = models.OneToOneField(
        MatrixAccount, on_delete=models.CASCADE, related_name="sync_state"
    )
    next_batch = models.CharField(max_length=512, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.account_id} at {self.next_batch}"


class SyncLease(models.Model):
    """Who may use an account's device right now. The fencing token grows with every new owner, and
    every write a host makes checks it still holds the token, so a host that lost its lease is inert."""

    account = models.OneToOneField(
        MatrixAccount, on_delete=models.CASCADE, related_name="sync_lease"
    )
    owner = models.CharField(max_length=128, blank=True)
    fencing_token = models.BigIntegerField(default=0)
    expires_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    # Written by the owner's heartbeat (not by every sync), so an operator sees in admin when the
    # account last synced and when its loop last failed; both stay when the lease changes hands.
    last_synced_at = models.DateTimeField(null=True, blank=True)
    last_error_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.account_id} by {self.owner or 'nobody'} #{self.fencing_token}"


class SyncHostRecord(models.Model):
    """A sync host task's heartbeat, so `sync reconcile` knows whether live hosts have room."""

    host_id = models.CharField(max_length=128, unique=True)
    capacity = models.PositiveIntegerField()
    account_count = models.PositiveIntegerField(default=0)
    started_at = models.DateTimeField(auto_now_add=True)
    heartbeat_at = models.DateTimeField()
    stopped = models.BooleanField(default=False)
    # False while the record is only reconcile's placeholder for a task not yet running (it may wait
    # behind a full worker): it reserves room for reconcile, but no host hands accounts to it.
    running = models.BooleanField(default=False)

    def __str__(self) -> str:
        return self.host_id


class OutboxMessage(models.Model):
    """A message a person sent from a page, until the homeserver has it (and after, as a record).

    The transaction id is chosen once, so every retry of the same row is the same Matrix request and
    the homeserver turns duplicates into one event."""

    PENDING, SENT, FAILED = "pending", "sent", "failed"
    STATUSES = [(v, v) for v in (PENDING, SENT, FAILED)]

    account = models.ForeignKey(MatrixAccount, on_delete=models.CASCADE, related_name="outbox")
    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="outbox")
    txn_id = models.CharField(max_length=64, unique=True)
    event_type = models.CharField(max_length=255, default="m.room.message")
    content = models.JSONField()
    status = models.CharField(max_length=8, choices=STATUSES, default=PENDING)
    event_id = models.CharField(max_length=255, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    # A pending row with an error is waiting for the server (a transient failure), not failed.
    error = models.TextField(blank=True)
    # An earlier attempt may have reached the homeserver (timeout, dropped connection, 5xx): before
    # sending again, look for its echo, since the homeserver forgets transaction ids after a while.
    maybe_delivered = models.BooleanField(default=False)
    # "Send later" (rooms/scheduled.py): the sender leaves the row alone until then. The row is the
    # send from the start, with its transaction id, so a due message is never a second send path.
    send_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [
            models.Index(fields=["account", "status"]),
            # The outbox backlog metric (rooms/metrics.py) reads only the few pending rows, never
            # the sent ones that stay as a record.
            models.Index(
                fields=["created_at"],
                condition=models.Q(status="pending"),
                name="outbox_pending_created",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.txn_id} {self.status}"

    @property
    def waiting(self) -> bool:
        """Queued behind a homeserver that is down or struggling: it will go when it can."""
        return self.status == self.PENDING and bool(self.error)


class TimelineGap(models.Model):
    """Events a limited sync skipped, still to fetch: recorded in the same transaction as the sync
    that found the gap, so a host killed mid-fill leaves it for the next owner instead of losing it.
    Only filling it to the end (events we already have, or the room's start) removes it."""

    account = models.ForeignKey(MatrixAccount, on_delete=models.CASCADE, related_name="gaps")
    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="gaps")
    token = models.CharField(max_length=512)
    pages_fetched = models.PositiveIntegerField(default=0)
    # Where the hole is on the page: just above the oldest event known below it (its
    # origin_server_ts), moving up as pages fill it.
    anchor_ts = models.BigIntegerField(default=0)
    last_error = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"gap in {self.room_id} for {self.account_id} from {self.token}"


class ReadReceipt(models.Model):
    """Where each member has read up to in a room (their latest public m.read receipt)."""

    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="receipts")
    user_id = models.CharField(max_length=255)
    event_id = models.CharField(max_length=255)
    ts = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["room", "user_id"], name="receipt_room_user")
        ]
        indexes = [models.Index(fields=["room", "event_id"])]

    def __str__(self) -> str:
        return f"{self.user_id} read {self.event_id}"


class DeviceVerification(models.Model):
    """One interactive (SAS emoji) verification between the account's device and another device.

    The owning sync host writes its progress; the person's answers (`wanted`) are written by views
    and carried out by the host, the only user of the device's crypto state."""

    REQUESTED, READY, STARTED, ACCEPTED = "requested", "ready", "started", "accepted"
    KEYS, CONFIRMED, VERIFIED, CANCELLED = "keys", "confirmed", "verified", "cancelled"
    STATES = [
        (REQUESTED, "asks to verify"),
        (READY, "accepted, waiting for the other device"),
        (STARTED, "asks to verify"),
        (ACCEPTED, "exchanging keys"),
        (KEYS, "compare the emoji"),
        (CONFIRMED, "waiting for the other device to confirm"),
        (VERIFIED, "verified"),
        (CANCELLED, "cancelled"),
    ]
    ACCEPT, CONFIRM, MISMATCH, CANCEL, START = "accept", "confirm", "mismatch", "cancel", "start"
    WANTED = [(v, v) for v in ("", ACCEPT, CONFIRM, MISMATCH, CANCEL, START)]

    account = models.ForeignKey(
        MatrixAccount, on_delete=models.CASCADE, related_name="verifications"
    )
    transaction_id = models.CharField(max_length=255)
    other_user_id = models.CharField(max_length=255)
    other_device_id = models.CharField(max_length=255)
    state = models.CharField(max_length=16, choices=STATES)
    emojis = models.JSONField(default=list, blank=True)  # [[emoji, name], ...] once keys are in
    from_request = models.BooleanField(default=False)  # opened with m.key.verification.request
    we_started = models.BooleanField(default=False)
    wanted = models.CharField(max_length=16, blank=True, default="", choices=WANTED)
    reason = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["account", "transaction_id"], name="verification_account_txn"
            )
        ]
        indexes = [models.Index(fields=["account", "-updated_at"])]

    def __str__(self) -> str:
        return f"{self.account_id} {self.state} {self.other_user_id}/{self.other_device_id}"

    @property
    def is_open(self) -> bool:
        return self.state not in (self.VERIFIED, self.CANCELLED)


class DeviceTrust(models.Model):
    """A device the account's crypto device encrypts for, and how far it is trusted: verified by
    this person (emoji) and/or cross-signed by its owner. Written by the owning sync host, read by
    pages for each room's encryption indicator."""

    account = models.ForeignKey(MatrixAccount, on_delete=models.CASCADE, related_name="devices")
    user_id = models.CharField(max_length=255)
    device_id = models.CharField(max_length=255)
    ed25519 = models.CharField(max_length=64, blank=True)
    verified = models.BooleanField(default=False)
    cross_signed = models.BooleanField(default=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["account", "user_id", "device_id"], name="device_trust_account_device"
            )
        ]

    def __str__(self) -> str:
        return f"{self.user_id}/{self.device_id} for {self.account_id}"


class WithheldKey(models.Model):
    """A sender's device told us it will not share a room key with this account's device
    (m.room_key.withheld), and why: shown in place of the message it would have unlocked."""

    account = models.ForeignKey(MatrixAccount, on_delete=models.CASCADE, related_name="withheld")
    room_id = models.CharField(max_length=255)
    session_id = models.CharField(max_length=255)
    code = models.CharField(max_length=64)
    reason = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["account", "session_id"], name="withheld_account_session"
            )
        ]

    def __str__(self) -> str:
        return f"{self.code} {self.session_id} for {self.account_id}"


class LinkPreview(models.Model):
    """The homeserver's preview of a link seen in a message (Open Graph), fetched once."""

    url_hash = models.CharField(max_length=64, unique=True)  # sha256 of the URL
    url = models.TextField()
    title = models.CharField(max_length=300, blank=True)
    description = models.TextField(blank=True)
    site_name = models.CharField(max_length=200, blank=True)
    image_mxc = models.CharField(max_length=512, blank=True)
    failed = models.BooleanField(default=False)  # the homeserver had no preview to give
    fetched_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return self.url[:80]

    @property
    def image_server_name(self) -> str:
        return (parse_mxc(self.image_mxc) or ("", ""))[0]

    @property
    def image_media_id(self) -> str:
        return (parse_mxc(self.image_mxc) or ("", ""))[1]

    @staticmethod
    def hash_of(url: str) -> str:
        return hashlib.sha256(url.encode()).hexdigest()


class BackedUpRoomKey(models.Model):
    """A Megolm session the account's key backup version already holds (uploaded by its owner)."""

    account = models.ForeignKey(MatrixAccount, on_delete=models.CASCADE, related_name="+")
    version = models.CharField(max_length=64)
    session_id = models.CharField(max_length=255)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["account", "version", "session_id"], name="backed_up_room_key"
            )
        ]

    def __str__(self) -> str:
        return f"{self.session_id} in backup {self.version}"


class MediaReference(models.Model):
    """An mxc:// URI that an event's content, a room's current state or a person's own upload
    points at. The media proxy serves a URI only to someone who was shown it, and this index makes
    that one indexed query (see rooms/visibility.py). Written at ingest, never read for content."""

    server_name = models.CharField(max_length=255)
    media_id = models.CharField(max_length=255)
    # Exactly one of these says where the reference comes from.
    event = models.ForeignKey(
        Event, null=True, blank=True, on_delete=models.CASCADE, related_name="media_references"
    )
    state = models.ForeignKey(
        RoomState, null=True, blank=True, on_delete=models.CASCADE, related_name="media_references"
    )
    uploader = models.ForeignKey(
        MatrixAccount, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )

    class Meta:
        indexes = [models.Index(fields=["server_name", "media_id"], name="media_reference_uri")]
        constraints = [
            models.UniqueConstraint(
                fields=["event", "server_name", "media_id"],
                condition=models.Q(event__isnull=False),
                name="media_reference_event",
            ),
            models.UniqueConstraint(
                fields=["state", "server_name", "media_id"],
                condition=models.Q(state__isnull=False),
                name="media_reference_state",
            ),
            models.UniqueConstraint(
                fields=["uploader", "server_name", "media_id"],
                condition=models.Q(uploader__isnull=False),
                name="media_reference_upload",
            ),
            models.CheckConstraint(
                condition=(
                    models.Q(event__isnull=False, state__isnull=True, uploader__isnull=True)
                    | models.Q(event__isnull=True, state__isnull=False, uploader__isnull=True)
                    | models.Q(event__isnull=True, state__isnull=True, uploader__isnull=False)
                ),
                name="media_reference_one_source",
            ),
        ]

    def __str__(self) -> str:
        return f"mxc://{self.server_name}/{self.media_id}"


class RestoredRoomKey(models.Model):
    """A Megolm session the account's device took from the key backup rather than from the
    sender's device: whoever can write to the backup could have made it, so messages it decrypts
    are not vouched for (as Element marks them)."""

    account = models.ForeignKey(MatrixAccount, on_delete=models.CASCADE, related_name="+")
    session_id = models.CharField(max_length=255)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["account", "session_id"], name="restored_room_key")
        ]

    def __str__(self) -> str:
        return f"{self.session_id} restored for {self.account_id}"


class PinnedIdentity(models.Model):
    """A colleague's cross-signing identity (master key) as this account first saw it, and the
    one the homeserver shows now. When they differ the person is warned until they acknowledge
    the new identity, which pins it."""

    account = models.ForeignKey(MatrixAccount, on_delete=models.CASCADE, related_name="+")
    user_id = models.CharField(max_length=255)
    pinned_master_key = models.CharField(max_length=64)
    seen_master_key = models.CharField(max_length=64)
    changed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["account", "user_id"], name="pinned_identity")
        ]

    def __str__(self) -> str:
        return f"{self.user_id} for {self.account_id}"

    @property
    def changed(self) -> bool:
        return self.pinned_master_key != self.seen_master_key


class SearchDocument(models.Model):
    """A message's searchable text, once per event (like Event): who may find it is decided at
    query time by the searcher's own timeline rows (rooms/search.py), never by this row.

    The id is the order results come in, newest first: origin_server_ts * 10^6 + the event's id
    modulo 10^6, so both databases walk their full-text index in id order and stop after a page,
    however common the word. Tokens are rooms/search_tokens.py's; PostgreSQL indexes them in a
    generated tsvector column, SQLite in an FTS5 table (both made by the migration)."""

    id = models.BigIntegerField(primary_key=True)
    event = models.OneToOneField(Event, on_delete=models.CASCADE, related_name="search_document")
    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="+")
    sender = models.CharField(max_length=255)
    origin_server_ts = models.BigIntegerField(default=0)
    has_file = models.BooleanField(default=False)
    # Still encrypted for every device here: no text yet, looked at again on each indexer run.
    pending = models.BooleanField(default=False)
    # The text shown and searched: the latest edit's when the message was edited.
    body = models.TextField(blank=True)
    tokens = models.TextField(blank=True)
    # The edit the text comes from (NULL: the message itself): a searcher must have read it too.
    text_event = models.ForeignKey(
        Event, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )

    class Meta:
        indexes = [
            models.Index(fields=["room", "-id"], name="search_document_room"),
            models.Index(
                fields=["event"], name="search_document_pending", condition=models.Q(pending=True)
            ),
        ]

    def __str__(self) -> str:
        return f"search document of {self.event_id}"


class SearchIndexState(models.Model):
    """How far the search indexer has followed the Event table: every id up to `high_water` was
    read, except `holes` (ids skipped because a transaction had not committed yet, re-read on
    each run until they appear or expire: [[id, first_seen_unix], ...])."""

    high_water = models.BigIntegerField(default=0)
    holes = models.JSONField(default=list, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"search index at {self.high_water} ({len(self.holes)} holes)"


class Reminder(models.Model):
    """ "Remind me about this message" (rooms/reminders.py): shown once on the person's open pages
    at its time, by the sync host that holds the account's lease."""

    account = models.ForeignKey(MatrixAccount, on_delete=models.CASCADE, related_name="reminders")
    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="reminders")
    event_id = models.CharField(max_length=255)
    remind_at = models.DateTimeField()
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["account", "delivered_at", "remind_at"])]

    def __str__(self) -> str:
        return f"{self.event_id} at {self.remind_at}"
