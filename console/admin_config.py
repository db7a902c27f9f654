"""Django admin on the console's audited site (INSTALLED_APPS names this instead of
django.contrib.admin). A module of its own: the app registry loads it before any model exists."""

from django.contrib.admin.apps import AdminConfig


class ConsoleAdminConfig(AdminConfig):
    default_site = "console.site.ConsoleAdminSite"
