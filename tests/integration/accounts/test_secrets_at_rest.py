"""No access token or pickle key is stored in plaintext, on SQLite or PostgreSQL."""

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
        for path in Path(str(db_name)).parent.glob(Path(str(db_name)).name + "*"):
            assert account.access_token.encode() not in path.read_bytes()


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
