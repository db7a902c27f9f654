"""The admin site. Whatever registers a ModelAdmin on it (our apps, Django's auth, django-axes)
gets the audited mixin first in its bases, so no admin write can skip the audit log."""

from django.contrib import admin

from accounts import single_sign_on
from console.audited import AuditedAdminMixin


class ConsoleAdminSite(admin.AdminSite):
    site_header = "Workspace administration"
    site_title = "Workspace administration"
    index_title = "Administration"
    # The people, rooms and audit tables need the width; the index lists every section anyway.
    enable_nav_sidebar = False
    login_template = "console/admin_login.html"  # Django's form, and single sign-on

    def login(self, request, extra_context=None):
        """Django's form for password accounts, plus the homeserver's single sign-on: on an
        SSO-only homeserver it is the only way in for staff (they come back to the admin)."""
        options = single_sign_on.login_options()
        context = {"sso_providers": options.providers, **(extra_context or {})}
        return super().login(request, extra_context=context)

    def register(self, model_or_iterable, admin_class=None, **options):
        admin_class = audited(admin_class or admin.ModelAdmin)
        return super().register(model_or_iterable, admin_class, **options)


def audited(admin_class: type[admin.ModelAdmin]) -> type[admin.ModelAdmin]:
    """The same ModelAdmin with AuditedAdminMixin in front (unchanged when it already has it)."""
    if issubclass(admin_class, AuditedAdminMixin):
        return admin_class
    return type(
        admin_class.__name__,
        (AuditedAdminMixin, admin_class),
        {"__module__": admin_class.__module__, "__doc__": admin_class.__doc__},
    )
