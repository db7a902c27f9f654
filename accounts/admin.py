"""Admin console for people: adding, deactivating and re-passwording go through the homeserver."""

from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin

from accounts import services
from accounts.forms import MatrixPasswordChangeForm, MatrixUserChangeForm, MatrixUserCreationForm
from accounts.matrix.errors import MatrixError
from accounts.models import MatrixAccount

User = get_user_model()


class MatrixAccountInline(admin.StackedInline):
    model = MatrixAccount
    can_delete = False
    fields = ("mxid", "device_id", "homeserver_url", "provisioned", "is_active", "deactivated_at")
    readonly_fields = fields
    extra = 0
    max_num = 0


if admin.site.is_registered(User):
    admin.site.unregister(User)


@admin.register(User)
class PersonAdmin(UserAdmin):
    add_form = MatrixUserCreationForm
    form = MatrixUserChangeForm
    change_password_form = MatrixPasswordChangeForm
    inlines = [MatrixAccountInline]
    list_display = ("username", "matrix_id", "email", "is_active", "is_staff")
    list_select_related = ("matrix_account",)
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
    actions = ["deactivate_keep_messages", "deactivate_and_erase"]

    def get_fieldsets(self, request, obj=None):
        fieldsets = super().get_fieldsets(request, obj)
        if obj is None:
            return fieldsets
        return (*fieldsets, ("Matrix", {"fields": ("erase_matrix_data",)}))

    def get_inlines(self, request, obj):
        return self.inlines if obj is not None else []

    @admin.display(description="Matrix ID", ordering="matrix_account__mxid")
    def matrix_id(self, obj) -> str:
        account = getattr(obj, "matrix_account", None)
        return account.mxid if account else "—"

    def save_model(self, request, obj, form, change):
        session = getattr(form, "matrix_session", None)
        if change or session is None:
            super().save_model(request, obj, form, change)
            return
        try:
            super().save_model(request, obj, form, change)
            services.account_link(user=obj, session=session, provisioned=True)
        except Exception:
            services.account_unregister_on_homeserver(session=session)
            raise

    def _deactivate(self, request, queryset, *, erase: bool) -> None:
        done = 0
        for user in queryset.select_related("matrix_account"):
            account = getattr(user, "matrix_account", None)
            if account is None or not account.is_active:
                continue
            try:
                services.account_deactivate(account=account, erase=erase)
                done += 1
            except MatrixError as error:
                self.message_user(request, f"{account.mxid}: {error.message}", messages.ERROR)
        self.message_user(request, f"Deactivated {done} Matrix account(s).", messages.SUCCESS)

    @admin.action(description="Deactivate selected people (keep their messages)")
    def deactivate_keep_messages(self, request, queryset):
        self._deactivate(request, queryset, erase=False)

    @admin.action(description="Deactivate selected people and erase their Matrix data")
    def deactivate_and_erase(self, request, queryset):
        self._deactivate(request, queryset, erase=True)


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
