"""Fixtures for the admin console: admins and staff with chosen permissions, each request from
its own address so the audit log's addresses can be checked."""

import uuid

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client

MODEL_BACKEND = "django.contrib.auth.backends.ModelBackend"
ADMIN_ADDRESS = "192.0.2.10"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def console_admin(db):
    return get_user_model().objects.create_superuser(unique("root"), password="unused-here")


@pytest.fixture
def admin_browser(console_admin) -> Client:
    """A superuser's Django test client; every request comes from ADMIN_ADDRESS."""
    client = Client(REMOTE_ADDR=ADMIN_ADDRESS)
    client.force_login(console_admin, backend=MODEL_BACKEND)
    return client


@pytest.fixture
def staff_client_with(db):
    """make(*perms): a signed-in staff user holding only these permissions ("app.codename")."""

    def make(*perms: str) -> Client:
        user = get_user_model().objects.create_user(unique("staff"), is_staff=True)
        for perm in perms:
            app_label, codename = perm.split(".")
            user.user_permissions.add(
                Permission.objects.get(content_type__app_label=app_label, codename=codename)
            )
        client = Client(REMOTE_ADDR="192.0.2.20")
        client.force_login(user, backend=MODEL_BACKEND)
        return client

    return make
