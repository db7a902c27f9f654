"""Read-only admin views of the sync hosts: which host owns which account, when each account last
synced and last failed, and each host's heartbeat, capacity and load. Only the hosts write these
rows (under the leases' fencing), so an operator looks and never edits."""

from django.conf import settings
from django.contrib import admin
from django.utils import timezone

from rooms.models import SyncHostRecord, SyncLease
from rooms.sync.leases import live_since


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(SyncLease)
class SyncLeaseAdmin(ReadOnlyAdmin):
    list_display = (
        "account",
        "owner",
        "held",
        "fencing_token",
        "expires_at",
        "last_synced_at",
        "last_error_at",
        "short_error",
    )
    list_select_related = ("account",)
    list_filter = ("owner",)
    search_fields = ("account__mxid", "owner")
    ordering = ("account__mxid",)

    @admin.display(boolean=True, description="held")
    def held(self, lease: SyncLease) -> bool:
        """The owner named is really the owner: its lease has not run out."""
        return bool(lease.owner and lease.expires_at and lease.expires_at > timezone.now())

    @admin.display(description="last error")
    def short_error(self, lease: SyncLease) -> str:
        return lease.last_error[:120]


@admin.register(SyncHostRecord)
class SyncHostRecordAdmin(ReadOnlyAdmin):
    list_display = (
        "host_id",
        "live",
        "running",
        "heartbeat_at",
        "capacity",
        "account_count",
        "started_at",
        "stopped",
    )
    list_filter = ("stopped",)
    ordering = ("-heartbeat_at",)

    @admin.display(boolean=True, description="live")
    def live(self, host: SyncHostRecord) -> bool:
        """Counted by reconcile and by the other hosts: heard from within a lease period."""
        return (
            host.running
            and not host.stopped
            and host.heartbeat_at >= live_since(settings.SYNC_LEASE_SECONDS)
        )
