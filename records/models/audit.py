"""The audit log: one row per admin action or export, never edited or deleted through the app."""

from django.conf import settings
from django.db import models


class AuditEntry(models.Model):
    """Who did what to what, when, and from which address.

    The actor is kept by reference and by name: a deleted admin's entries must still say who acted."""

    at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_name = models.CharField(max_length=255, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    action = models.CharField(max_length=64, db_index=True)
    target = models.CharField(max_length=512, blank=True)
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name = "audit entry"
        verbose_name_plural = "audit log"
        # No add, change or delete permission exists to grant: the log is written only by
        # record_action. Viewing and exporting are separate, so a reader need not be an exporter.
        default_permissions = ("view",)
        permissions = [("export_auditentry", "Can export the audit log")]
        indexes = [models.Index(fields=["actor_name", "at"], name="audit_actor_at")]

    def __str__(self) -> str:
        return (
            f"{self.at:%Y-%m-%d %H:%M:%S} {self.actor_name or 'system'} {self.action} {self.target}"
        )
