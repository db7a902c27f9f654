"""Admin views of Matrix accounts (read-only). The people admin itself, with its homeserver
actions and their audit entries, is the console's (console/admin/people.py)."""

from django.contrib import admin

from accounts.models import MatrixAccount


class MatrixAccountInline(admin.StackedInline):
    model = MatrixAccount
    can_delete = False
    fields = (
        "mxid",
        "device_id",
        "homeserver_url",
        "provisioned",
        "is_active",
        "deactivated_at",
        "cross_signing_state",
        "key_backup_version",
    )
    readonly_fields = fields
    extra = 0
    max_num = 0


@admin.register(MatrixAccount)
class MatrixAccountAdmin(admin.ModelAdmin):
    list_display = ("mxid", "user", "device_id", "provisioned", "is_active")
    list_filter = ("provisioned", "is_active")
    search_fields = ("mxid", "user__username")
    fields = (
        "user",
        "mxid",
        "device_id",
        "homeserver_url",
        "provisioned",
        "is_active",
        "deactivated_at",
        "created_at",
    )
    readonly_fields = fields

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
