"""The admin console in Chromium: people with sync health, the CSV import's dry run and import,
a leaver's deactivation page, the rooms overview and the audit log with its CSV export, all under
the workspace's Content-Security-Policy; a person who is not an admin is sent to sign in.

Served by pytest-django's live server on the test database (the pages are plain Django admin;
no sync host or websocket is involved), with screenshots for the README's admin guide."""

import os
import shutil
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from accounts.models import MatrixAccount
from console import people
from console.models import AutoJoinRoom
from records.models import AuditEntry
from rooms.models import SyncLease
from tests.integration.console.conftest import unique
from tests.integration.rooms.helpers import create_room, send_event, sync_and_ingest, text

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
DOCS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
PASSWORD = "correct horse battery 9"


@pytest.fixture(scope="module", autouse=True)
def _orm_beside_playwright():
    """Playwright's sync API keeps an event loop in this thread; the test's own ORM calls (and
    the test database's setup and flush) are plain synchronous ones all the same. Module-wide,
    so the flush after the last test is covered too; other modules never see it."""
    before = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    yield
    if before is None:
        os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    else:
        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = before


def shoot(page, artifacts: Path, name: str) -> None:
    """Into the test artifacts; the README's copies in docs/screenshots are refreshed by hand
    (WEBCLIENT_REFRESH_DOCS_SCREENSHOTS=1), so a test run leaves the checkout as it was."""
    path = artifacts / f"admin-{name}.png"
    page.screenshot(path=str(path), full_page=True)
    if os.environ.get("WEBCLIENT_REFRESH_DOCS_SCREENSHOTS"):
        shutil.copy(path, DOCS / path.name)


def csp_watch(page) -> list[str]:
    refused: list[str] = []
    page.on(
        "console",
        lambda message: (
            refused.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    return refused


def admin_sign_in(page, live_server) -> None:
    name = unique("root")
    get_user_model().objects.create_superuser(name, password=PASSWORD)
    page.goto(live_server.url + "/admin/login/")
    page.fill("#id_username", name)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector("#site-name")


def test_an_admin_runs_the_day_from_the_console(page, live_server, synapse, artifacts):
    page.set_viewport_size({"width": 1440, "height": 900})
    refused = csp_watch(page)
    alice = MatrixAccount.objects.get(
        user=people.person_create(username=unique("alice"), password=PASSWORD)
    )
    bob = MatrixAccount.objects.get(
        user=people.person_create(username=unique("bob"), password=PASSWORD)
    )
    room = create_room(alice, name="Quarterly planning", public=False, invite=[bob.mxid])
    for body in ("Agenda attached", "Thanks"):
        send_event(alice, room, text(body))
    sync_and_ingest(alice)
    now = timezone.now()
    SyncLease.objects.filter(account=alice).update(
        owner="host-3f2a9c", expires_at=now + timedelta(minutes=1), last_synced_at=now
    )
    SyncLease.objects.update_or_create(
        account=bob,
        defaults={
            "last_error": "HomeserverUnreachable()",
            "last_error_at": now - timedelta(minutes=5),
        },
    )
    AutoJoinRoom.objects.create(room="#general:localhost", note="everyone")
    admin_sign_in(page, live_server)

    # People: sync health at a glance.
    page.goto(live_server.url + "/admin/auth/user/")
    alice_row = page.locator("#result_list tr", has_text=alice.mxid)
    assert "host-3f2a9c" in alice_row.inner_text()
    assert (
        "HomeserverUnreachable" in page.locator("#result_list tr", has_text=bob.mxid).inner_text()
    )
    shoot(page, artifacts, "people")

    # Import: the dry run says what would happen to each row, then the real import.
    newcomer = unique("carol")
    page.click("#people-import")
    page.fill(
        "#id_csv_text",
        "username,password,email\n"
        f"{newcomer},{PASSWORD},carol@example.org\n"
        f"{alice.localpart},{PASSWORD},\n"
        f"Not Valid,{PASSWORD},\n",
    )
    page.click("#import-dry-run")
    page.wait_for_selector("#import-rows")
    assert "Dry run: nothing was written" in page.inner_text("#import-summary")
    assert [c.inner_text() for c in page.locator("#import-rows td:nth-child(3)").all()] == [
        "create",
        "skip",
        "error",
    ]
    assert not get_user_model().objects.filter(username=newcomer).exists()
    shoot(page, artifacts, "import-dry-run")
    page.click("#import-run")
    page.wait_for_selector("#import-summary:has-text('Import done')")
    assert MatrixAccount.objects.filter(user__username=newcomer, is_active=True).exists()

    # A leaver: the confirmation page names the colleague who takes the rooms over.
    page.goto(live_server.url + "/admin/auth/user/")
    page.locator("#result_list tr", has_text=bob.mxid).locator("input.action-select").check()
    page.select_option("select[name=action]", "deactivate_people")
    page.click("button[name=index]")
    page.wait_for_selector("#confirm-deactivate")
    page.select_option("#id_hand_over_to", alice.mxid)
    shoot(page, artifacts, "deactivate")
    page.click("#confirm-deactivate")
    page.wait_for_selector(".messagelist")
    bob.refresh_from_db()
    assert not bob.is_active

    # Rooms.
    page.goto(live_server.url + "/admin/rooms/room/")
    assert "Quarterly planning" in page.inner_text("#result_list")
    shoot(page, artifacts, "rooms")

    # The audit log, and its export (itself audited).
    page.goto(live_server.url + "/admin/records/auditentry/")
    listed = page.inner_text("#result_list")
    assert "person.import" in listed and "person.deactivate" in listed
    shoot(page, artifacts, "audit-log")
    with page.expect_download() as download:
        page.click("#audit-export")
    exported = Path(download.value.path()).read_text()
    assert (
        exported.startswith("at,actor,address,action,target,details")
        and "person.create" in exported
    )
    assert AuditEntry.objects.filter(action="audit.export", ip="127.0.0.1").exists()
    assert refused == []


def test_a_person_who_is_not_an_admin_is_sent_to_sign_in(page, live_server):
    name = unique("plain")
    get_user_model().objects.create_user(name, password=PASSWORD)
    page.goto(live_server.url + "/admin/login/?next=/admin/records/auditentry/")
    page.fill("#id_username", name)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector(".errornote")
    for path in (
        "/admin/records/auditentry/",
        "/admin/records/auditentry/export.csv",
        "/admin/auth/user/import/",
    ):
        response = page.goto(live_server.url + path)
        assert "/admin/login/" in page.url, path
        assert response.status == 200  # the sign-in page, after the redirect
    assert not AuditEntry.objects.exists()
