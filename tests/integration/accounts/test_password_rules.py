"""Passwords typed in admin pass Django's validators before anything reaches the homeserver."""

import uuid

import pytest
from django.contrib.auth import get_user_model

from accounts.matrix import client_api
from accounts.matrix.errors import InvalidCredentials

pytestmark = pytest.mark.django_db
User = get_user_model()


@pytest.fixture
def admin_client_hs(client, admin_user, synapse):
    client.force_login(admin_user, backend="django.contrib.auth.backends.ModelBackend")
    return client


def add_person(client, username: str, password: str):
    return client.post(
        "/admin/auth/user/add/",
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


@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("x", "This password is too short"),
        ("password123", "This password is too common"),
        ("4815162342108", "This password is entirely numeric"),
    ],
)
def test_weak_password_for_a_new_person_is_refused_before_the_homeserver(
    admin_client_hs, homeserver_calls, password, message
):
    username = f"weak-{uuid.uuid4().hex[:8]}"
    response = add_person(admin_client_hs, username, password)
    assert response.status_code == 200
    assert message in response.content.decode()
    assert homeserver_calls == []
    assert not User.objects.filter(username=username).exists()


def test_weak_password_change_is_refused_and_the_old_one_keeps_working(
    admin_client_hs, synapse, homeserver_calls
):
    username = f"keep-{uuid.uuid4().hex[:8]}"
    assert add_person(admin_client_hs, username, "first password 123").status_code == 302
    user = User.objects.get(username=username)
    homeserver_calls.clear()
    response = admin_client_hs.post(
        f"/admin/auth/user/{user.pk}/password/", {"password1": "x", "password2": "x"}
    )
    assert response.status_code == 200
    assert "This password is too short" in response.content.decode()
    assert homeserver_calls == []
    assert client_api.password_login(synapse.url, user=username, password="first password 123")
    with pytest.raises(InvalidCredentials):
        client_api.password_login(synapse.url, user=username, password="x")


def test_a_good_password_still_reaches_the_homeserver(admin_client_hs, synapse, homeserver_calls):
    username = f"good-{uuid.uuid4().hex[:8]}"
    assert add_person(admin_client_hs, username, "correct horse battery 9").status_code == 302
    assert any("/_synapse/admin/v1/register" in call for call in homeserver_calls)
    assert client_api.password_login(synapse.url, user=username, password="correct horse battery 9")
