from django.apps import AppConfig


class ConsoleConfig(AppConfig):
    """The admin console: people, joiners and leavers, rooms and the audit log, in Django admin.

    It sits on top (webclient -> console -> records, rooms -> accounts): its actions reach into
    accounts, rooms and the homeserver, and each one writes the audit log in records, which no
    lower app may import."""

    name = "console"
    verbose_name = "Admin console"

    def ready(self) -> None:
        from console import signals  # noqa: F401  (joins are queued when a person is created)
