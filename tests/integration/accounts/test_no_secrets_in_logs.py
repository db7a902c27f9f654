"""Everything logged while people sign in (right and wrong), an admin creates a person, and a sync
host starts an account (encryption set-up, cross-signing, key backup, first /sync) carries no
password, access token, pickle key, admin token, shared secret or master key (real Synapse)."""

import logging
import uuid

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings

from accounts.models import MatrixAccount, ServiceCredential
from rooms.models import SyncState
from tests.integration.rooms.helpers import run_host_until

pytestmark = pytest.mark.django_db(transaction=True)


def everything_logged(caplog) -> str:
    """Each record as formatted, with its raw arguments and traceback: what any handler could print."""
    parts = []
    for record in caplog.records:
        parts.append(record.getMessage())
        parts.append(repr(record.args))
        if record.exc_info:
            parts.append(logging.Formatter().formatException(record.exc_info))
    return "\n".join(parts)


async def test_no_secret_is_logged(client, admin_client, matrix_user_factory, caplog):
    caplog.set_level(logging.DEBUG)
    alice = matrix_user_factory()
    wrong = "not-alices-password-" + uuid.uuid4().hex
    await sync_to_async(client.post)(
        "/accounts/login/", {"username": alice.localpart, "password": wrong}
    )
    response = await sync_to_async(client.post)(
        "/accounts/login/", {"username": alice.localpart, "password": alice.password}
    )
    assert response.status_code == 302
    new_password = "admin typed this " + uuid.uuid4().hex[:8]
    username = f"new-{uuid.uuid4().hex[:8]}"
    created = await sync_to_async(admin_client.post)(
        "/admin/auth/user/add/",
        {"username": username, "password1": new_password, "password2": new_password},
    )
    assert created.status_code == 302, created.content.decode()[:500]
    person = await sync_to_async(MatrixAccount.objects.get)(mxid__startswith=f"@{username}:")
    changed_password = "changed by admin " + uuid.uuid4().hex[:8]
    changed = await sync_to_async(admin_client.post)(  # uses the workspace's Synapse admin token
        f"/admin/auth/user/{person.user_id}/password/",
        {"password1": changed_password, "password2": changed_password},
    )
    assert changed.status_code == 302, changed.content.decode()[:500]
    account = await sync_to_async(MatrixAccount.objects.get)(mxid=alice.user_id)

    def first_sync_stored() -> bool:
        return SyncState.objects.filter(account=account).exclude(next_batch="").exists()

    assert await run_host_until(first_sync_stored)
    account = await sync_to_async(MatrixAccount.objects.get)(pk=account.pk)
    admin_tokens = await sync_to_async(
        lambda: [c.secret for c in ServiceCredential.objects.all()]
    )()
    secrets = {
        "the wrong password": wrong,
        "the right password": alice.password,
        "the admin-typed password": new_password,
        "the admin-changed password": changed_password,
        "the access token": account.access_token,
        "the pickle key": account.pickle_key,
        "the registration shared secret": settings.MATRIX_REGISTRATION_SHARED_SECRET,
        **{f"master key {n}": key for n, key in enumerate(settings.WEBCLIENT_SECRET_KEYS)},
        **{f"admin token {n}": token for n, token in enumerate(admin_tokens)},
    }
    assert admin_tokens, "the admin console made no Synapse admin token: nothing was checked"
    logged = everything_logged(caplog)
    assert len(caplog.records) > 10, "too little was logged to prove anything"
    leaked = [name for name, secret in secrets.items() if secret and secret in logged]
    assert leaked == []
