from django.apps import AppConfig


class RecordsConfig(AppConfig):
    """The organisation's records: archive, retention and legal hold, exports, audit log.

    Reads rooms through its selectors and is fed by ingest; rooms never imports from here."""

    name = "records"
    verbose_name = "Records and audit"
