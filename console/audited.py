"""Django admin's own writes (add, change, delete, bulk delete) in the audit log.

The entries are written where Django writes its LogEntry for add and change, which is inside the
change form's transaction; deletions are recorded inside the same transaction as the delete
itself, so a delete that fails leaves no entry."""

from django.db import router, transaction

from records.audit import record_action


def admin_target(obj) -> str:
    return f"{obj._meta.label_lower}:{obj.pk} {obj}"[:512]


class AuditedAdminMixin:
    """Put first in a ModelAdmin's bases (ConsoleAdminSite.register does it for every admin).

    A ModelAdmin that records a more precise action itself sets `audit_additions = False` (or
    `audit_changes`, `audit_deletions`), so one action makes one entry."""

    # No defaults as class attributes here: the site puts this mixin FIRST in the bases, so its
    # own attributes would hide the flags the ModelAdmin behind it sets.

    def _audits(self, what: str) -> bool:
        return getattr(self, f"audit_{what}", True)

    def log_addition(self, request, obj, message):
        entry = super().log_addition(request, obj, message)
        if self._audits("additions"):
            record_action(
                action="admin.add",
                target=admin_target(obj),
                request=request,
                details={"model": obj._meta.label_lower, "pk": str(obj.pk)},
            )
        return entry

    def log_change(self, request, obj, message):
        entry = super().log_change(request, obj, message)
        if self._audits("changes"):
            record_action(
                action="admin.change",
                target=admin_target(obj),
                request=request,
                details={
                    "model": obj._meta.label_lower,
                    "pk": str(obj.pk),
                    "changed": _changed_fields(message),
                },
            )
        return entry

    def delete_model(self, request, obj):
        if not self._audits("deletions"):
            return super().delete_model(request, obj)
        target, details = admin_target(obj), _deleted(obj)
        with transaction.atomic(using=router.db_for_write(obj.__class__)):
            super().delete_model(request, obj)
            record_action(action="admin.delete", target=target, request=request, details=details)

    def delete_queryset(self, request, queryset):
        if not self._audits("deletions"):
            return super().delete_queryset(request, queryset)
        with transaction.atomic(using=router.db_for_write(queryset.model)):
            doomed = [(admin_target(obj), _deleted(obj)) for obj in queryset]
            super().delete_queryset(request, queryset)
            for target, details in doomed:
                record_action(
                    action="admin.delete", target=target, request=request, details=details
                )


def _deleted(obj) -> dict:
    return {"model": obj._meta.label_lower, "pk": str(obj.pk)}


def _changed_fields(message) -> list[str]:
    """The field names Django's change message lists (a list of {"changed": {"fields": [...]}})."""
    fields: list[str] = []
    for part in message if isinstance(message, list) else []:
        fields.extend(part.get("changed", {}).get("fields", []))
    return fields
