"""No access token or pickle key is stored in plaintext, on SQLite or PostgreSQL."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.db import connection

from accounts.models import MatrixAccount


def dump_database() -> str:
    """Every row of every table as text: what a database dump would hold."""
    parts = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f'SELECT * FROM "{table}"')
            parts.extend(repr(row) for row in cursor.fetchall())
    return "\n".join(parts)


# Run in a child process: closing any descriptor of a file drops every POSIX lock this process
# holds on it, so reading the database's files here would silently release the locks of the
# SQLite connections still open in this process (other threads' included). A sync host started
# later then believes it is the last user, deletes the -wal and -shm files on exit, and those
# connections fail with "file is not a database".
_FILES_HOLDING = """
import sys
from pathlib import Path
db, needle = Path(sys.argv[1]), sys.argv[2].encode()
print("\\n".join(str(p) for p in db.parent.glob(db.name + "*") if needle in p.read_bytes()))
"""


def sqlite_files_holding(db_name: str, text: str) -> list[str]:
    """The database's files (main, -wal, -shm) whose bytes contain `text`, read by another process."""
    found = subprocess.run(
        [sys.executable, "-c", _FILES_HOLDING, db_name, text],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [line for line in found.splitlines() if line]


def posix_locks_held() -> list[str]:
    """This process's POSIX locks (Linux /proc/locks: inode and byte range), e.g. SQLite's."""
    pid = str(os.getpid())
    lines = Path("/proc/locks").read_text().splitlines()
    return sorted(" ".join(line.split()[5:]) for line in lines if line.split()[4:5] == [pid])


@pytest.mark.django_db(transaction=True)
def test_tokens_are_encrypted_in_the_database(client, synapse, matrix_user_factory):
    peer = matrix_user_factory()
    client.post("/accounts/login/", {"username": peer.localpart, "password": peer.password})
    account = MatrixAccount.objects.get(mxid=peer.user_id)
    assert account.access_token.startswith("syt_")
    dump = dump_database()
    assert account.mxid in dump  # the dump is real
    assert account.access_token not in dump
    assert account.pickle_key not in dump
    db_name = connection.settings_dict["NAME"]
    if connection.vendor == "sqlite" and Path(str(db_name)).exists():
        locks = posix_locks_held() if Path("/proc/locks").exists() else None
        assert sqlite_files_holding(str(db_name), account.mxid)  # the files are really read
        assert sqlite_files_holding(str(db_name), account.access_token) == []
        assert sqlite_files_holding(str(db_name), account.pickle_key) == []
        if locks is not None:  # reading the files left the open connections' locks in place
            assert locks and posix_locks_held() == locks


@pytest.mark.django_db(transaction=True)
def test_rotation_re_encrypts_under_the_new_key(settings, synapse, matrix_user_factory, client):
    peer = matrix_user_factory()
    client.post("/accounts/login/", {"username": peer.localpart, "password": peer.password})
    token = MatrixAccount.objects.get(mxid=peer.user_id).access_token
    old_key = settings.WEBCLIENT_SECRET_KEYS[0]
    new_key = Fernet.generate_key().decode()
    settings.WEBCLIENT_SECRET_KEYS = [new_key, old_key]
    call_command("rotate_secrets")
    settings.WEBCLIENT_SECRET_KEYS = [new_key]
    assert MatrixAccount.objects.get(mxid=peer.user_id).access_token == token
