"""Admin console -> homeserver: creating, re-passwording and deactivating people (real Synapse)."""

import pytest
from django.contrib.auth import get_user_model

from accounts.matrix import client_api
from accounts.matrix.errors import AccountDeactivated, InvalidCredentials, MatrixError
from accounts.models import MatrixAccount

pytestmark = pytest.mark.django_db
User = get_user_model()
ADD_URL = "/admin/auth/user/add/"


def add_person(client, username: str, password: str = "correct horse battery 9"):
    return client.post(
        ADD_URL,
        {
            "username": username,
            "first_name": "Ada",
            "last_name": "Lovelace",
            "email": f"{username}@example.org",
            "password1": password,
            "password2": password,
            "_save": "Save",
        },
    )


@pytest.fixture
def admin_client_hs(client, admin_user, synapse):
    client.force_login(admin_user, backend="django.contrib.auth.backends.ModelBackend")
    return client


def unique(prefix: str) -> str:
    import uuid

    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_admin_creates_person_and_matrix_account(admin_client_hs, synapse):
    username = unique("ada")
    response = add_person(admin_client_hs, username)
    assert response.status_code == 302, response.content.decode()[:2000]
    user = User.objects.get(username=username)
    account = user.matrix_account
    assert account.mxid == f"@{username}:{synapse.server_name}"
    assert account.provisioned and account.is_active
    assert not user.has_usable_password()
    who = client_api.whoami(synapse.url, access_token=account.access_token)
    assert who["user_id"] == account.mxid and who["device_id"] == account.device_id
    # The password typed in admin is the Matrix password.
    session = client_api.password_login(
        synapse.url, user=username, password="correct horse battery 9"
    )
    assert session.user_id == account.mxid


def test_username_taken_on_homeserver_creates_nothing(admin_client_hs, matrix_user_factory):
    existing = matrix_user_factory()
    response = add_person(admin_client_hs, existing.localpart)
    assert response.status_code == 200
    assert "already taken" in response.content.decode()
    assert not User.objects.filter(username=existing.localpart).exists()


def test_duplicate_workspace_username_is_refused(admin_client_hs):
    username = unique("dup")
    assert add_person(admin_client_hs, username).status_code == 302
    response = add_person(admin_client_hs, username)
    assert response.status_code == 200
    assert User.objects.filter(username=username).count() == 1
    assert MatrixAccount.objects.filter(user__username=username).count() == 1


def test_invalid_matrix_username_is_explained(admin_client_hs):
    response = add_person(admin_client_hs, "Upper Case!")
    assert response.status_code == 200
    assert not User.objects.filter(username="Upper Case!").exists()
    assert (
        "not allowed on Matrix" in response.content.decode() or "valid" in response.content.decode()
    )


def test_unreachable_homeserver_creates_nothing(admin_client_hs, settings):
    settings.MATRIX_HOMESERVER_URL = "http://127.0.0.1:9"
    username = unique("offline")
    response = add_person(admin_client_hs, username)
    assert response.status_code == 200
    assert "cannot be reached" in response.content.decode()
    assert not User.objects.filter(username=username).exists()


def test_homeserver_refusing_registration_creates_nothing(admin_client_hs, settings):
    settings.MATRIX_REGISTRATION_SHARED_SECRET = "not-the-secret"
    username = unique("refused")
    response = add_person(admin_client_hs, username)
    assert response.status_code == 200
    assert "refused" in response.content.decode()
    assert not User.objects.filter(username=username).exists()
    with pytest.raises(MatrixError):
        client_api.password_login(
            settings.MATRIX_HOMESERVER_URL, user=username, password="correct horse battery 9"
        )


def test_password_change_in_admin_changes_it_on_homeserver(admin_client_hs, synapse):
    username = unique("pw")
    add_person(admin_client_hs, username, password="first password 123")
    user = User.objects.get(username=username)
    response = admin_client_hs.post(
        f"/admin/auth/user/{user.pk}/password/",
        {
            "password1": "second password 456",
            "password2": "second password 456",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    assert client_api.password_login(synapse.url, user=username, password="second password 456")
    with pytest.raises(InvalidCredentials):
        client_api.password_login(synapse.url, user=username, password="first password 123")
    user.refresh_from_db()
    assert not user.has_usable_password()


def change_form(user, **overrides) -> dict:
    data = {
        "username": user.username,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "email": user.email,
        "is_active": "on",
        "date_joined_0": "2026-01-01",
        "date_joined_1": "00:00:00",
        "matrix_account-TOTAL_FORMS": "1",
        "matrix_account-INITIAL_FORMS": "1",
        "matrix_account-MIN_NUM_FORMS": "0",
        "matrix_account-MAX_NUM_FORMS": "0",
        "matrix_account-0-id": str(user.matrix_account.pk),
        "matrix_account-0-user": str(user.pk),
        "_save": "Save",
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


@pytest.mark.parametrize("erase", [False, True])
def test_unticking_active_deactivates_matrix_account(admin_client_hs, synapse, erase):
    username = unique("leaver")
    add_person(admin_client_hs, username, password="leaver password 1")
    user = User.objects.get(username=username)
    token = user.matrix_account.access_token
    form = change_form(user, is_active=None, erase_matrix_data="on" if erase else None)
    response = admin_client_hs.post(f"/admin/auth/user/{user.pk}/change/", form)
    assert response.status_code == 302
    account = MatrixAccount.objects.get(user=user)
    assert not account.is_active and account.deactivated_at is not None
    assert not User.objects.get(pk=user.pk).is_active
    with pytest.raises(MatrixError):  # the device is logged out
        client_api.whoami(synapse.url, access_token=token)
    with pytest.raises((AccountDeactivated, InvalidCredentials)):
        client_api.password_login(synapse.url, user=username, password="leaver password 1")


def test_deactivation_with_homeserver_down_changes_nothing(admin_client_hs, settings):
    username = unique("stay")
    add_person(admin_client_hs, username)
    user = User.objects.get(username=username)
    settings.MATRIX_HOMESERVER_URL = "http://127.0.0.1:9"
    account = user.matrix_account
    account.homeserver_url = "http://127.0.0.1:9"
    account.save()
    response = admin_client_hs.post(
        f"/admin/auth/user/{user.pk}/change/", change_form(user, is_active=None)
    )
    assert response.status_code == 200
    assert "Not deactivated" in response.content.decode()
    account.refresh_from_db()
    assert account.is_active and User.objects.get(pk=user.pk).is_active
