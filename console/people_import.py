"""Bulk import of people from CSV. `import_check` is the dry run: it reads every row and says what
would happen to it (create, skip or error, with the reason) without writing anything; `import_run`
checks again and creates the rows that would be created, each in its own transaction and audit
entry, so one bad row costs that row only.

Columns (a header row, in any order): username, password, email, first_name, last_name."""

import csv
import hashlib
import io
from dataclasses import dataclass, field

from django.contrib.auth import get_user_model, password_validation
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.http import HttpRequest
from django.views.decorators.debug import sensitive_variables

from accounts import services as accounts
from accounts.matrix import synapse_admin
from accounts.matrix.errors import MatrixError
from console.people import person_create
from records.audit import record_action

REQUIRED = ("username", "password")
KNOWN = ("username", "password", "email", "first_name", "last_name")
MAX_ROWS = 5000
CREATE, SKIP, ERROR, CREATED = "create", "skip", "error", "created"


class ImportRefused(ValueError):
    """The file as a whole cannot be read (no header, missing columns, too many rows)."""


@dataclass
class RowOutcome:
    line: int  # the line in the file, as a spreadsheet numbers it (the header is line 1)
    username: str
    outcome: str
    message: str = ""
    values: dict = field(default_factory=dict, repr=False)  # holds the password: never shown


def fingerprint(text: str) -> str:
    """Ties an import to the dry run that was looked at: the same text, byte for byte."""
    return hashlib.sha256(text.encode()).hexdigest()


def _rows(text: str) -> list[tuple[int, dict]]:
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    header = [name.strip().lower() for name in reader.fieldnames or []]
    if not header:
        raise ImportRefused("The file is empty: it needs a header row (username,password,...).")
    missing = [name for name in REQUIRED if name not in header]
    if missing:
        raise ImportRefused(f"The header row lacks the column(s): {', '.join(missing)}.")
    unknown = [name for name in header if name not in KNOWN]
    if unknown:
        raise ImportRefused(
            f"Unknown column(s): {', '.join(unknown)}. Known columns: {', '.join(KNOWN)}."
        )
    reader.fieldnames = header
    rows = []
    for values in reader:
        if len(rows) >= MAX_ROWS:
            raise ImportRefused(f"More than {MAX_ROWS} rows: split the file.")
        if None in values:
            rows.append((reader.line_num, {"__extra__": True}))
            continue
        rows.append((reader.line_num, {k: (v or "").strip() for k, v in values.items()}))
    return rows


@sensitive_variables()
def _check_row(values: dict, seen: set[str], existing: set[str], server: str) -> tuple[str, str]:
    if values.get("__extra__"):
        return ERROR, "This row has more cells than the header has columns."
    username = values.get("username", "")
    if not username:
        return ERROR, "The username is empty."
    if username.lower() in seen:
        return ERROR, "This username appears more than once in the file."
    seen.add(username.lower())
    if username.lower() in existing:
        return SKIP, "A person with this username already exists: left as is."
    if not accounts.LOCALPART_RE.match(username):
        return ERROR, "Usernames may hold only a-z, 0-9, '.', '_' and '-' (lower case)."
    if values.get("email"):
        try:
            validate_email(values["email"])
        except ValidationError:
            return ERROR, f"{values['email']!r} is not an email address."
    if not values.get("password"):
        return ERROR, "The password is empty."
    try:
        password_validation.validate_password(values["password"])
    except ValidationError as error:
        return ERROR, "Password refused: " + " ".join(error.messages)
    user_id = f"@{username}:{server}"
    token = accounts.synapse_admin_token()
    config = accounts.homeserver_config()
    if synapse_admin.user_exists(config.url, admin_token=token, user_id=user_id):
        return ERROR, f"{user_id} already exists on the homeserver but not here."
    return CREATE, f"Would create {user_id}."


def import_check(text: str) -> list[RowOutcome]:
    """The dry run: what would happen to each row. Raises ImportRefused for an unreadable file
    and MatrixError when the homeserver cannot be asked."""
    rows = _rows(text)
    config = accounts.homeserver_config()
    server = synapse_admin.server_name(config.url, admin_token=accounts.synapse_admin_token())
    names = [values.get("username", "").lower() for _, values in rows]
    existing = {
        name.lower()
        for name in get_user_model()
        .objects.filter(username__in=[n for n in names if n])
        .values_list("username", flat=True)
    }
    seen: set[str] = set()
    outcomes = []
    for line, values in rows:
        outcome, message = _check_row(values, seen, existing, server)
        outcomes.append(RowOutcome(line, values.get("username", ""), outcome, message, values))
    return outcomes


def import_run(text: str, *, request: HttpRequest | None = None) -> list[RowOutcome]:
    """Create every row the dry run would create; the others are reported as the dry run did."""
    outcomes = import_check(text)
    for row in outcomes:
        if row.outcome != CREATE:
            continue
        try:
            person_create(
                username=row.values["username"],
                password=row.values["password"],
                email=row.values.get("email", ""),
                first_name=row.values.get("first_name", ""),
                last_name=row.values.get("last_name", ""),
                request=request,
                via=f"CSV import, line {row.line}",
            )
        except MatrixError as error:
            row.outcome, row.message = ERROR, f"Not created: {error.message}"
        else:
            row.outcome, row.message = CREATED, row.message.replace("Would create", "Created")
        row.values = {}
    counts = {kind: sum(r.outcome == kind for r in outcomes) for kind in (CREATED, SKIP, ERROR)}
    record_action(action="person.import", target="CSV import", request=request, details=counts)
    return outcomes
