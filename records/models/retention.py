"""Retention policies and legal holds: how long the archive and the local store keep events,
and who or what must be kept regardless."""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models


def _check_matrix_id(value: str, sigil: str) -> None:
    if value and (not value.startswith(sigil) or ":" not in value):
        raise ValidationError(f"Expected a Matrix ID like {sigil}name:example.org, got {value!r}.")


class RetentionPolicy(models.Model):
    """Keep events N days, then purge them from the archive and the local store. One policy for
    the whole workspace (empty room) and any number of rooms' own, which win over it."""

    room_id = models.CharField(
        max_length=255,
        blank=True,
        unique=True,
        help_text="Empty for the workspace-wide policy; a room ID (!abc:example.org) for one room.",
    )
    keep_days = models.PositiveIntegerField(validators=[MinValueValidator(1)])
    note = models.CharField(max_length=255, blank=True)
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        verbose_name_plural = "retention policies"
        ordering = ["room_id"]

    def __str__(self) -> str:
        return f"{self.room_id or 'workspace'}: keep {self.keep_days} days"

    def clean(self) -> None:
        _check_matrix_id(self.room_id, "!")


class LegalHold(models.Model):
    """Keep everything a person sent or received, or everything in a room, whatever retention
    says, until the hold is released. Released holds stay as the record of when they applied."""

    PERSON, ROOM = "person", "room"
    KINDS = [(PERSON, "person"), (ROOM, "room")]

    kind = models.CharField(max_length=8, choices=KINDS)
    target = models.CharField(max_length=255, help_text="@person:example.org or !room:example.org")
    reason = models.CharField(max_length=255)
    placed_at = models.DateTimeField(auto_now_add=True)
    placed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    released_at = models.DateTimeField(null=True, blank=True)
    released_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-placed_at"]
        indexes = [models.Index(fields=["kind", "target"], name="legal_hold_target")]

    def __str__(self) -> str:
        state = "released" if self.released_at else "active"
        return f"{self.kind} hold on {self.target} ({state})"

    @property
    def active(self) -> bool:
        return self.released_at is None

    def clean(self) -> None:
        _check_matrix_id(self.target, "@" if self.kind == self.PERSON else "!")
