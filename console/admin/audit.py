"""The audit log in admin: read by anyone granted to view it, never changed by anyone (superusers
included), searchable, filterable by action, actor and date, and exported as CSV by those granted
the export permission; each export is itself an entry."""

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import StreamingHttpResponse
from django.urls import path
from django.utils import timezone

from console.audit_export import audit_rows, csv_lines
from records.audit import record_action
from records.models import AuditEntry

EXPORT_PERMISSION = "records.export_auditentry"


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    list_display = ("at", "actor_name", "ip", "action", "target", "short_details")
    list_filter = ("action", "actor_name")
    search_fields = ("actor_name", "action", "target", "ip")
    date_hierarchy = "at"
    fields = ("at", "actor", "actor_name", "ip", "action", "target", "details")
    readonly_fields = fields
    list_per_page = 100
    show_full_result_count = False  # counting millions of rows on every page costs a scan
    change_list_template = "admin/records/auditentry/change_list.html"

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def has_export_permission(self, request) -> bool:
        return request.user.is_active and request.user.has_perm(EXPORT_PERMISSION)

    @admin.display(description="details")
    def short_details(self, entry: AuditEntry) -> str:
        text = ", ".join(f"{key}={value}" for key, value in entry.details.items())
        return text[:160]

    def get_urls(self):
        export = self.admin_site.admin_view(self.export_view)
        return [path("export.csv", export, name="records_auditentry_export"), *super().get_urls()]

    def changelist_view(self, request, extra_context=None):
        extra = {"can_export": self.has_export_permission(request), **(extra_context or {})}
        return super().changelist_view(request, extra_context=extra)

    def export_view(self, request):
        """The entries the change list shows with the same search and filters, every page."""
        if not (self.has_view_permission(request) and self.has_export_permission(request)):
            raise PermissionDenied
        entries = self.get_changelist_instance(request).get_queryset(request)
        filters = {key: value for key, value in request.GET.items()}
        with transaction.atomic():
            record_action(
                action="audit.export",
                target="audit log",
                request=request,
                details={"filters": filters, "rows": entries.count()},
            )
        response = StreamingHttpResponse(csv_lines(audit_rows(entries)), content_type="text/csv")
        stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
        response["Content-Disposition"] = f'attachment; filename="audit-log-{stamp}.csv"'
        return response
