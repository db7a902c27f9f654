"""The audit log as CSV. Rows are read in chunks and written as they come; a value a spreadsheet
would run as a formula is quoted, since targets and details hold what people typed."""

import csv
import io
import json
from collections.abc import Iterable, Iterator

from django.db.models import QuerySet

from records.models import AuditEntry

COLUMNS = ("at", "actor", "address", "action", "target", "details")
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: str) -> str:
    """Spreadsheets run a cell starting with = + - @ as a formula (CSV injection): quote it."""
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def audit_rows(entries: QuerySet[AuditEntry]) -> Iterator[list[str]]:
    for entry in entries.iterator(chunk_size=2000):
        yield [
            entry.at.isoformat(),
            entry.actor_name or "system",
            entry.ip or "",
            entry.action,
            entry.target,
            json.dumps(entry.details, sort_keys=True, ensure_ascii=False),
        ]


def csv_lines(rows: Iterable[list[str]]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow([safe_cell(cell) for cell in row])
        if buffer.tell() > 64_000:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()
