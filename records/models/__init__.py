"""The records app's models, one module per subject (archive, audit, ...), imported here so Django
finds them."""

from records.models.audit import AuditEntry

__all__ = ["AuditEntry"]
