"""People in admin: who they are, when they were last seen, how their sync is doing, their
device and key backup; create, reset password, deactivate (as a leaver, rooms handed over) and
bulk import from CSV. Every action goes through console/people.py and is in the audit log."""

from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Q
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.utils.formats import date_format
from django.utils.html import format_html
from django.utils.timezone import localtime
from django.views.decorators.debug import sensitive_post_parameters

from accounts.admin import MatrixAccountInline
from accounts.forms import MatrixPasswordChangeForm, MatrixUserCreationForm
from accounts.matrix.errors import MatrixError
from console import people, people_import
from console.audited import AuditedAdminMixin, _changed_fields
from console.forms import DeactivateForm, ImportForm, PersonChangeForm
from records.audit import record_action

User = get_user_model()


class SyncHealthFilter(admin.SimpleListFilter):
    title = "sync health"
    parameter_name = "sync"

    def lookups(self, request, model_admin):
        return [
            ("syncing", "held by a sync host"),
            ("unowned", "no sync host"),
            ("error", "last sync failed"),
            ("ended", "session ended (must sign in)"),
        ]

    def queryset(self, request, queryset):
        now = timezone.now()
        held = Q(matrix_account__sync_lease__owner__gt="") & Q(
            matrix_account__sync_lease__expires_at__gt=now
        )
        active = Q(matrix_account__is_active=True) & ~Q(matrix_account__access_token="")
        match self.value():
            case "syncing":
                return queryset.filter(held)
            case "unowned":
                return queryset.filter(active).exclude(held)
            case "error":
                return queryset.filter(matrix_account__sync_lease__last_error__gt="")
            case "ended":
                return queryset.filter(
                    matrix_account__is_active=True, matrix_account__access_token=""
                )
        return queryset


class KeyBackupFilter(admin.SimpleListFilter):
    title = "key backup"
    parameter_name = "backup"

    def lookups(self, request, model_admin):
        return [("yes", "backed up"), ("no", "no backup")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(matrix_account__key_backup_version__gt="")
        if self.value() == "no":
            return queryset.exclude(matrix_account__key_backup_version__gt="")
        return queryset


if admin.site.is_registered(User):
    admin.site.unregister(User)


@admin.register(User)
class PersonAdmin(AuditedAdminMixin, UserAdmin):
    add_form = MatrixUserCreationForm
    form = PersonChangeForm
    change_password_form = MatrixPasswordChangeForm
    change_list_template = "admin/auth/user/people_change_list.html"
    inlines = [MatrixAccountInline]
    audit_additions = False  # save_model records person.create
    list_display = (
        "username",
        "matrix_id",
        "is_active",
        "last_seen",
        "sync_host",
        "sync_error",
        "device",
        "key_backup",
    )
    list_select_related = ("matrix_account", "matrix_account__sync_lease")
    list_filter = (
        "is_active",
        "is_staff",
        SyncHealthFilter,
        KeyBackupFilter,
        "matrix_account__provisioned",
    )
    search_fields = ("username", "first_name", "last_name", "email", "matrix_account__mxid")
    add_fieldsets = (
        (
            None,
            {
                "classes": ("wide",),
                "fields": (
                    "username",
                    "first_name",
                    "last_name",
                    "email",
                    "password1",
                    "password2",
                ),
            },
        ),
    )
    actions = ["deactivate_people"]

    def get_fieldsets(self, request, obj=None):
        fieldsets = super().get_fieldsets(request, obj)
        if obj is None:
            return fieldsets
        leaving = ("erase_matrix_data", "hand_over_to")
        return (*fieldsets, ("Leaving (untick Active above)", {"fields": leaving}))

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)
        if obj is not None:
            form = type(form.__name__, (form,), {"request": request})
        return form

    def get_inlines(self, request, obj):
        return self.inlines if obj is not None else []

    # --- the list's columns ---

    @staticmethod
    def _account(user):
        return getattr(user, "matrix_account", None)

    @staticmethod
    def _lease(user):
        account = getattr(user, "matrix_account", None)
        return getattr(account, "sync_lease", None) if account is not None else None

    @admin.display(description="Matrix ID", ordering="matrix_account__mxid")
    def matrix_id(self, user) -> str:
        account = self._account(user)
        return account.mxid if account else "—"

    @admin.display(description="last seen", ordering="matrix_account__last_seen_at")
    def last_seen(self, user):
        """The last page the person opened (to within minutes), else their last sign-in."""
        account = self._account(user)
        seen = account.last_seen_at if account is not None else None
        return seen or user.last_login or "never"

    @admin.display(description="sync host", ordering="matrix_account__sync_lease__owner")
    def sync_host(self, user):
        """The owning host (or why there is none), and when the account last synced."""
        account, lease = self._account(user), self._lease(user)
        if account is None:
            return "—"
        if not account.is_active:
            owner = "deactivated"
        elif account.session_ended:
            owner = "session ended"
        elif lease is None or not lease.owner or not lease.expires_at:
            owner = "none"
        elif lease.expires_at <= timezone.now():
            owner = f"{lease.owner} (lease ran out)"
        else:
            owner = lease.owner
        if lease is None or lease.last_synced_at is None:
            return format_html("{}<br>never synced", owner)
        synced = localtime(lease.last_synced_at)
        return format_html("{}<br>synced {}", owner, date_format(synced, "SHORT_DATETIME_FORMAT"))

    @admin.display(description="last error")
    def sync_error(self, user) -> str:
        lease = self._lease(user)
        if lease is None or not lease.last_error:
            return ""
        when = (
            date_format(localtime(lease.last_error_at), "SHORT_DATETIME_FORMAT")
            if lease.last_error_at
            else ""
        )
        return format_html("{}<br>{}", when, lease.last_error[:80])

    @admin.display(description="device")
    def device(self, user) -> str:
        account = self._account(user)
        if account is None:
            return "—"
        signed = {"signed": ", cross-signed", "foreign": ", keys held elsewhere"}
        return account.device_id + signed.get(account.cross_signing_state, "")

    @admin.display(description="key backup")
    def key_backup(self, user) -> str:
        account = self._account(user)
        if account is None:
            return "—"
        return f"version {account.key_backup_version}" if account.key_backup_version else "none"

    # --- audit of what Django admin does itself ---

    def save_model(self, request, obj, form, change):
        session = getattr(form, "matrix_session", None)
        if change or session is None:
            super().save_model(request, obj, form, change)
            return
        from accounts import services

        try:
            super().save_model(request, obj, form, change)
            account = services.account_link(user=obj, session=session, provisioned=True)
            record_action(
                action="person.create",
                target=account.mxid,
                request=request,
                details={"username": obj.get_username(), "via": "admin"},
            )
        except Exception:
            services.account_unregister_on_homeserver(session=session)
            raise

    def log_change(self, request, obj, message):
        """A password change (the homeserver already took it, in the form) is its own action."""
        if _changed_fields(message) not in (["password"], ["Password"]):
            return super().log_change(request, obj, message)
        entry = UserAdmin.log_change(self, request, obj, message)
        account = getattr(obj, "matrix_account", None)
        record_action(
            action="person.password_reset",
            target=account.mxid if account is not None else obj.get_username(),
            request=request,
        )
        return entry

    # --- deactivating leavers ---

    @admin.action(description="Deactivate selected people (leavers)…", permissions=["change"])
    def deactivate_people(self, request, queryset):
        people_selected = list(queryset.select_related("matrix_account"))
        form = DeactivateForm(
            request.POST if "confirm" in request.POST else None,
            exclude=[p.pk for p in people_selected],
        )
        if "confirm" in request.POST and form.is_valid():
            done = 0
            for person in people_selected:
                if person == request.user:
                    self.message_user(request, "You cannot deactivate yourself.", messages.ERROR)
                    continue
                try:
                    handed = people.person_deactivate(
                        user=person,
                        erase=form.cleaned_data["erase"],
                        hand_over_to=form.cleaned_data["hand_over_to"],
                        request=request,
                    )
                except MatrixError as error:
                    self.message_user(
                        request, f"{person}: not deactivated: {error.message}", messages.ERROR
                    )
                    continue
                done += 1
                if handed:
                    self.message_user(request, f"{person}: {len(handed)} room(s) handed over.")
            self.message_user(request, f"Deactivated {done} person(s).", messages.SUCCESS)
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": "Deactivate people",
            "opts": self.opts,
            "people": people_selected,
            "form": form,
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/auth/user/deactivate.html", context)

    # --- bulk import ---

    def get_urls(self):
        view = self.admin_site.admin_view(self.import_view)
        return [path("import/", view, name="auth_user_import"), *super().get_urls()]

    def changelist_view(self, request, extra_context=None):
        extra = {"can_import": self.has_add_permission(request), **(extra_context or {})}
        return super().changelist_view(request, extra_context=extra)

    @method_decorator(sensitive_post_parameters("csv_text"))  # it holds passwords
    def import_view(self, request):
        """GET: the form. "Dry run": what each row would do. "Import": the same text, for real,
        only after its dry run was shown (the fingerprint of the text must match)."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = ImportForm(request.POST or None, request.FILES or None)
        outcomes, error, done, text = None, "", False, ""
        if request.method == "POST" and form.is_valid():
            try:
                text = form.text()
                if "import" in request.POST:
                    if form.cleaned_data["checked"] != people_import.fingerprint(text):
                        raise ValidationError("Run the dry run on this text first, then import.")
                    outcomes, done = people_import.import_run(text, request=request), True
                else:
                    outcomes = people_import.import_check(text)
            except (ValidationError, people_import.ImportRefused) as refused:
                error = " ".join(getattr(refused, "messages", [str(refused)]))
            except MatrixError as matrix_error:
                error = f"The homeserver could not be asked: {matrix_error.message}"
            if outcomes is not None and not done:
                form = ImportForm(
                    initial={"csv_text": text, "checked": people_import.fingerprint(text)}
                )
        counts = {}
        for row in outcomes or []:
            counts[row.outcome] = counts.get(row.outcome, 0) + 1
        context = {
            **self.admin_site.each_context(request),
            "title": "Import people from CSV",
            "opts": self.opts,
            "form": form,
            "outcomes": outcomes,
            "counts": counts,
            "error": error,
            "done": done,
            "can_import": outcomes is not None and not done and counts.get("create"),
            "changelist_url": reverse("admin:auth_user_changelist"),
        }
        return TemplateResponse(request, "admin/auth/user/import.html", context)
