"""Admin for the archive, retention policies and legal holds. The archive is read-only (only the
archiver and retention write it); every change to a policy or hold goes to the audit log.

Registered from RecordsConfig.ready, so it lives beside the audit log's admin without sharing
its module."""

from datetime import UTC, datetime

from django.contrib import admin, messages
from django.db import transaction

from records import retention
from records.models import ArchiveChain, ArchiveRecord, LegalHold, RetentionPolicy
from records.verify import verify_room


class _ReadOnly(admin.ModelAdmin):
    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(ArchiveRecord)
class ArchiveRecordAdmin(_ReadOnly):
    list_display = (
        "room",
        "position",
        "kind",
        "event_type",
        "sender",
        "sent_at",
        "redacted",
        "purged",
    )
    list_filter = ("kind", "sealed", ("purged_at", admin.EmptyFieldListFilter))
    search_fields = ("=event_id", "=room_id", "=sender")
    ordering = ("-id",)
    show_full_result_count = False  # the archive grows without end: no COUNT(*) per page

    @admin.display(description="room", ordering="room_id")
    def room(self, record: ArchiveRecord) -> str:
        return record.room_id if len(record.room_id) <= 24 else record.room_id[:22] + "…"

    @admin.display(description="sent", ordering="origin_server_ts")
    def sent_at(self, record: ArchiveRecord) -> str:
        if not record.origin_server_ts:
            return ""
        return f"{datetime.fromtimestamp(record.origin_server_ts / 1000, UTC):%Y-%m-%d %H:%M:%S}"

    @admin.display(boolean=True, description="redacted")
    def redacted(self, record: ArchiveRecord) -> bool:
        return bool(record.redacted_by)

    @admin.display(boolean=True, description="purged")
    def purged(self, record: ArchiveRecord) -> bool:
        return record.purged


@admin.register(ArchiveChain)
class ArchiveChainAdmin(_ReadOnly):
    list_display = ("room_id", "base_position", "head_position", "head_hash", "updated_at")
    search_fields = ("=room_id",)
    actions = ["verify"]

    @admin.action(description="Verify the selected rooms' hash chains")
    def verify(self, request, queryset) -> None:
        for room_id in queryset.values_list("room_id", flat=True):
            verdict = verify_room(room_id)
            if verdict.broken is None:
                self.message_user(request, f"{room_id}: {verdict.links} link(s) intact.")
            else:
                self.message_user(request, f"BROKEN: {verdict.broken}", messages.ERROR)


@admin.register(RetentionPolicy)
class RetentionPolicyAdmin(admin.ModelAdmin):
    # Each change is in the audit log as what it means (retention.policy_*), not as a bare
    # admin.add/change/delete as well (console/audited.py).
    audit_additions = audit_changes = audit_deletions = False
    list_display = ("scope", "keep_days", "note", "updated_at", "updated_by")
    fields = ("room_id", "keep_days", "note", "updated_at", "updated_by")
    readonly_fields = ("updated_at", "updated_by")

    @admin.display(description="applies to", ordering="room_id")
    def scope(self, policy: RetentionPolicy) -> str:
        return policy.room_id or "the whole workspace"

    def save_model(self, request, obj, form, change) -> None:
        with transaction.atomic():
            obj.updated_by = request.user
            super().save_model(request, obj, form, change)
            retention.policy_saved(policy=obj, created=not change, request=request)

    def delete_model(self, request, obj) -> None:
        with transaction.atomic():
            retention.policy_deleted(policy=obj, request=request)
            super().delete_model(request, obj)

    def delete_queryset(self, request, queryset) -> None:
        with transaction.atomic():
            for policy in queryset:
                retention.policy_deleted(policy=policy, request=request)
            super().delete_queryset(request, queryset)


@admin.register(LegalHold)
class LegalHoldAdmin(admin.ModelAdmin):
    audit_additions = audit_changes = False  # logged as retention.hold_* (placed, released)
    list_display = ("target", "kind", "reason", "active", "placed_at", "placed_by", "released_at")
    list_filter = ("kind", ("released_at", admin.EmptyFieldListFilter))
    search_fields = ("=target", "reason")
    actions = ["release"]

    @admin.display(boolean=True, description="active")
    def active(self, hold: LegalHold) -> bool:
        return hold.active

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ("placed_by", "released_at", "released_by")
        # A placed hold is a record: it is released, never edited.
        return ("kind", "target", "reason", "placed_at", "placed_by", "released_at", "released_by")

    def get_fields(self, request, obj=None):
        if obj is None:
            return ("kind", "target", "reason")
        return ("kind", "target", "reason", "placed_at", "placed_by", "released_at", "released_by")

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def save_model(self, request, obj, form, change) -> None:
        if change:
            return
        with transaction.atomic():
            obj.placed_by = request.user
            super().save_model(request, obj, form, change)
            retention.hold_placed(hold=obj, request=request)

    @admin.action(description="Release the selected legal holds")
    def release(self, request, queryset) -> None:
        released = sum(
            retention.hold_release(hold=hold, actor=request.user, request=request)
            for hold in queryset.filter(released_at__isnull=True)
        )
        self.message_user(request, f"{released} hold(s) released; retention applies to them again.")
