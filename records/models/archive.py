"""The organisation's archive: every event our accounts received, once each, in a hash chain per
room (see records/chain.py for what a link covers and docs/decisions.md for why).

Rows are appended, never edited: content that arrives later (a key that came after its message)
is a `decryption` link of its own. Retention never deletes a row's place in the chain, it empties
the row (a tombstone keeps the digest, so the chain still verifies) and a leading run of
tombstones is folded into the chain's base (a checkpoint)."""

from django.db import models


class ArchiveRecord(models.Model):
    """One link of a room's chain: an event, a late decryption of one, a purge or a checkpoint."""

    EVENT, DECRYPTION, PURGE, CHECKPOINT = "event", "decryption", "purge", "checkpoint"
    KINDS = [(v, v) for v in (EVENT, DECRYPTION, PURGE, CHECKPOINT)]

    room_id = models.CharField(max_length=255)
    position = models.BigIntegerField()
    kind = models.CharField(max_length=16, choices=KINDS)
    event_id = models.CharField(max_length=255, blank=True)  # "" for purge and checkpoint links
    sender = models.CharField(max_length=255, blank=True)
    event_type = models.CharField(max_length=255, blank=True)  # the clear type when known
    origin_server_ts = models.BigIntegerField(default=0)
    # The event as it travelled (the encrypted envelope of an E2EE event), and what it says in
    # clear when it was encrypted and a device of ours could read it. `body` carries the
    # details of a purge or checkpoint link.
    envelope = models.JSONField(null=True, blank=True)
    clear = models.JSONField(null=True, blank=True)
    body = models.JSONField(null=True, blank=True)
    archived_at = models.DateTimeField()
    digest = models.CharField(max_length=64)  # sha256 of the canonical payload
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64)
    # Not covered by the chain, because they are derived from links that are (or change after
    # the fact by design): which redaction took the event back, whether no device of ours
    # could read it yet, and when retention emptied the row (and by which purge link).
    redacts = models.CharField(max_length=255, blank=True)
    redacted_by = models.CharField(max_length=255, blank=True)
    sealed = models.BooleanField(default=False)
    purged_at = models.DateTimeField(null=True, blank=True)
    purged_by = models.BigIntegerField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["room_id", "position"], name="archive_room_position"),
            models.UniqueConstraint(
                fields=["event_id", "kind"],
                condition=models.Q(kind__in=["event", "decryption"]),
                name="archive_event_once",
            ),
        ]
        indexes = [
            models.Index(fields=["room_id", "origin_server_ts"], name="archive_room_ts"),
            models.Index(fields=["redacts"], name="archive_redacts"),
            models.Index(fields=["id"], name="archive_sealed", condition=models.Q(sealed=True)),
        ]
        ordering = ["room_id", "position"]
        verbose_name = "archived event"

    def __str__(self) -> str:
        return f"{self.room_id} #{self.position} {self.kind} {self.event_id}"

    @property
    def purged(self) -> bool:
        return self.purged_at is not None


class ArchiveRecipient(models.Model):
    """Which of our accounts received an archived event (a Matrix ID: it outlives the account).
    Grows when another account receives the event later, so it is not part of the chain."""

    record = models.ForeignKey(ArchiveRecord, on_delete=models.CASCADE, related_name="recipients")
    user_id = models.CharField(max_length=255)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["record", "user_id"], name="archive_recipient_once")
        ]
        indexes = [models.Index(fields=["user_id", "record"], name="archive_recipient_user")]

    def __str__(self) -> str:
        return f"{self.user_id} received {self.record_id}"


class ArchiveChain(models.Model):
    """A room chain's two ends: the base it continues from (after retention folded its oldest
    links away; position 0 and the zero hash before any) and its head, where the next link goes.
    Appending locks this row, so links are numbered without gaps even with two archivers."""

    room_id = models.CharField(max_length=255, unique=True)
    base_position = models.BigIntegerField(default=0)
    base_hash = models.CharField(max_length=64)
    head_position = models.BigIntegerField(default=0)
    head_hash = models.CharField(max_length=64)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.room_id} {self.base_position}..{self.head_position}"


class ArchiverState(models.Model):
    """Where the archiver is in the local store (timeline rows, in id order), and the ids below
    it that were missing when it passed: on PostgreSQL a later id can commit before an earlier
    one, so a hole is read again on every run until it fills or is old enough to be a rollback."""

    name = models.CharField(max_length=32, unique=True, default="timeline")
    high_water = models.BigIntegerField(default=0)
    holes = models.JSONField(default=dict, blank=True)  # str(id) -> first seen (unix seconds)
    last_run_at = models.DateTimeField(null=True, blank=True)
    last_full_sweep_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.name} at {self.high_water} ({len(self.holes)} holes)"


class PreservedOriginal(models.Model):
    """The full copy of an event whose shared row is about to be replaced by the homeserver's
    redacted copy, kept until the archiver has it (rooms/redactions.py sends the signal)."""

    event_id = models.CharField(max_length=255, unique=True)
    raw = models.JSONField()
    encrypted_raw = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.event_id
