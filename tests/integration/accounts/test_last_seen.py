""" "Last seen" for the admin console: a page the person opens stamps their account, at most every
few minutes, and never writes their session."""

from datetime import timedelta

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import MatrixAccount
from tests.integration.rooms.helpers import signed_in_account

pytestmark = pytest.mark.django_db


def test_opening_pages_stamps_last_seen_once_every_few_minutes(client, matrix_user_factory):
    cache.clear()
    account = signed_in_account(client, matrix_user_factory())
    account.refresh_from_db()
    assert account.last_seen_at is not None  # signing in opens the first page
    MatrixAccount.objects.filter(pk=account.pk).update(last_seen_at=None)
    with CaptureQueriesContext(connection) as queries:
        assert client.get("/").status_code == 200
    account.refresh_from_db()
    assert account.last_seen_at is None  # stamped minutes ago: no write now
    assert not [
        q for q in queries.captured_queries if q["sql"].lstrip().upper().startswith("UPDATE")
    ]

    cache.clear()  # five minutes later, as far as this process knows
    client.get("/")
    account.refresh_from_db()
    assert timezone.now() - account.last_seen_at < timedelta(minutes=1)
