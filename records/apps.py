from django.apps import AppConfig


class RecordsConfig(AppConfig):
    """The organisation's records: archive, retention and legal hold, exports, audit log.

    Reads rooms through its selectors and is fed by ingest; rooms never imports from here."""

    name = "records"
    verbose_name = "Records and audit"

    def ready(self) -> None:
        from records import admin_records  # noqa: F401 - registers the archive's admin
        from records.receivers import keep_original
        from rooms.redactions import content_removing

        content_removing.connect(keep_original, dispatch_uid="records.keep_original")
