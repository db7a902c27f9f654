"""What the console keeps of its own: the rooms every new person joins, and each person's joins
until they succeed."""

from django.db import models

from accounts.models import MatrixAccount


class AutoJoinRoom(models.Model):
    """A space or room every new person is joined to."""

    room = models.CharField(
        "room or space",
        max_length=255,
        unique=True,
        help_text="Its ID (!abc:example.org) or address (#general:example.org). The room must be "
        "public, or the workspace's Synapse admin account must be in it with power to invite.",
    )
    note = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["room"]
        verbose_name = "room every new person joins"
        verbose_name_plural = "rooms every new person joins"

    def __str__(self) -> str:
        return self.room


class PendingJoin(models.Model):
    """One new person's join of one configured room. Kept until it succeeds and retried with a
    growing pause while the homeserver is down or refuses, its last error shown in admin: a join
    is never silently dropped."""

    account = models.ForeignKey(MatrixAccount, on_delete=models.CASCADE, related_name="+")
    room = models.CharField(max_length=255)
    room_id = models.CharField(max_length=255, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.CharField(max_length=500, blank=True)
    next_attempt_at = models.DateTimeField(db_index=True)
    joined_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["account", "room"], name="pending_join_once")
        ]

    def __str__(self) -> str:
        return f"{self.account_id} -> {self.room}"
