from django.apps import AppConfig


class RoomsConfig(AppConfig):
    name = "rooms"
    verbose_name = "Rooms and timelines"

    def ready(self) -> None:
        from rooms import signals  # noqa: F401 - connects the receivers
