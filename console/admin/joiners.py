"""The rooms every new person joins (an admin-managed list) and the state of each join."""

from django.contrib import admin, messages
from django.db import transaction
from django.utils import timezone

from console.models import AutoJoinRoom, PendingJoin
from records.audit import record_action


@admin.register(AutoJoinRoom)
class AutoJoinRoomAdmin(admin.ModelAdmin):
    list_display = ("room", "note", "created_at")
    search_fields = ("room", "note")


@admin.register(PendingJoin)
class PendingJoinAdmin(admin.ModelAdmin):
    """Read-only but for "retry now": the joins job writes these rows."""

    list_display = ("account", "room", "joined_at", "attempts", "last_error", "next_attempt_at")
    list_filter = (("joined_at", admin.EmptyFieldListFilter),)
    search_fields = ("account__mxid", "room")
    list_select_related = ("account",)
    actions = ["retry_now"]
    readonly_fields = [f.name for f in PendingJoin._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_retry_permission(self, request) -> bool:
        return request.user.has_perm("console.change_pendingjoin")

    @admin.action(description="Retry the selected joins now", permissions=["retry"])
    def retry_now(self, request, queryset):
        from console.tasks import joins_run

        waiting = queryset.filter(joined_at__isnull=True)
        with transaction.atomic():
            retried = list(waiting.select_related("account"))
            waiting.update(next_attempt_at=timezone.now())
            for pending in retried:
                record_action(
                    action="person.auto_join_retry",
                    target=pending.account.mxid,
                    request=request,
                    details={"room": pending.room, "attempts": pending.attempts},
                )
        count = len(retried)
        try:
            joins_run.delay()
        except Exception:
            self.message_user(
                request, "The job queue is away: beat retries them.", messages.WARNING
            )
        self.message_user(request, f"{count} join(s) will be retried now.")
