"""What records does when rooms announces something (rooms never imports records)."""

from records.models import PreservedOriginal


def keep_original(sender, rows, **kwargs) -> None:
    """The homeserver's redacted copy is about to replace these events' full content in the local
    store: keep the originals for the archive. Runs inside ingest's transaction, so it commits or
    rolls back with the wipe; it is one INSERT, on a path that is rare (an account that receives an
    event only after the server redacted it, while another account holds the full copy)."""
    PreservedOriginal.objects.bulk_create(
        [
            PreservedOriginal(event_id=r.event_id, raw=r.raw, encrypted_raw=r.encrypted_raw)
            for r in rows
        ],
        ignore_conflicts=True,
    )
