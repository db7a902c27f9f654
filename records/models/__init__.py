"""The records app's models, one module per subject (archive, audit, ...), imported here so Django
finds them."""

from records.models.archive import (  # noqa: F401
    ArchiveChain,
    ArchiveRecipient,
    ArchiveRecord,
    ArchiverState,
    PreservedOriginal,
)
from records.models.audit import AuditEntry
from records.models.retention import LegalHold, RetentionPolicy  # noqa: F401

__all__ = ["AuditEntry"]
