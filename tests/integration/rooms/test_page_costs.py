"""What a page load costs besides the page: no session write, and a compressed body."""

import gzip

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts import page_session
from rooms.models import SyncState
from tests.integration.rooms.helpers import (
    create_room,
    join,
    send_event,
    signed_in_account,
    sync_and_ingest,
    text,
)

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def room_page(client, matrix_user_factory) -> str:
    """A signed-in person's room with a message in it: the URL of its page."""
    alice, bob = matrix_user_factory(), matrix_user_factory()
    account = signed_in_account(client, alice)
    room_id = create_room(bob, invite=[alice.user_id], name="Costs")
    join(account, room_id)
    send_event(bob, room_id, text("how heavy is this page?"))
    sync_and_ingest(account)
    assert SyncState.objects.filter(account=account).exists()
    return f"/rooms/{room_id}/"


def test_a_room_page_load_writes_no_session(client, room_page):
    for _ in range(2):  # the first page after signing in as well as the next ones
        with CaptureQueriesContext(connection) as queries:
            response = client.get(room_page)
        assert response.status_code == 200
        writes = [
            q["sql"]
            for q in queries.captured_queries
            if "django_session" in q["sql"] and not q["sql"].lstrip().upper().startswith("SELECT")
        ]
        assert writes == []


def test_the_session_is_still_extended_once_a_day(client, room_page, monkeypatch):
    monkeypatch.setattr(page_session, "_now", lambda: 4_000_000_000)  # years later
    with CaptureQueriesContext(connection) as queries:
        client.get(room_page)
    assert any(
        "django_session" in q["sql"] and q["sql"].lstrip().upper().startswith("UPDATE")
        for q in queries.captured_queries
    )


def test_html_is_gzipped_for_a_browser_that_accepts_it(client, room_page):
    plain = client.get(room_page)
    assert plain.status_code == 200 and "Content-Encoding" not in plain
    assert "how heavy is this page?" in plain.content.decode()

    packed = client.get(room_page, HTTP_ACCEPT_ENCODING="gzip, deflate, br")
    assert packed.status_code == 200
    assert packed["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in packed["Vary"]
    html = gzip.decompress(packed.content).decode()
    assert "how heavy is this page?" in html
    assert len(packed.content) < len(plain.content) / 3
