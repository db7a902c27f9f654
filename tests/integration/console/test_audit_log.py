"""The audit log: written for every admin write, never changed through admin by anyone, searched,
filtered and exported only by those allowed, and each export is itself in the log."""

import csv
import io

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group
from django.test import Client

from console.audited import AuditedAdminMixin
from console.models import AutoJoinRoom
from records.audit import record_action
from records.models import AuditEntry
from tests.integration.console.conftest import ADMIN_ADDRESS

pytestmark = pytest.mark.django_db
LOG = "/admin/records/auditentry/"
EXPORT = LOG + "export.csv"


def actions() -> list[tuple[str, str]]:
    return list(AuditEntry.objects.order_by("id").values_list("action", "target"))


def test_every_registered_admin_is_audited():
    unaudited = [
        type(model_admin).__name__
        for model_admin in admin.site._registry.values()
        if not isinstance(model_admin, AuditedAdminMixin)
    ]
    assert unaudited == []
    assert Group in admin.site._registry  # Django's own admins are on the audited site too


def test_admin_add_change_delete_and_bulk_delete_are_logged(admin_browser, console_admin):
    url = "/admin/console/autojoinroom/"
    response = admin_browser.post(url + "add/", {"room": "#general:example.org", "note": "all"})
    assert response.status_code == 302
    room = AutoJoinRoom.objects.get()
    admin_browser.post(f"{url}{room.pk}/change/", {"room": "#general:example.org", "note": "x"})
    admin_browser.post(f"{url}{room.pk}/delete/", {"post": "yes"})
    assert not AutoJoinRoom.objects.exists()
    two = [AutoJoinRoom.objects.create(room=f"#r{n}:example.org") for n in (1, 2)]
    response = admin_browser.post(
        url,
        {"action": "delete_selected", "_selected_action": [r.pk for r in two], "post": "yes"},
    )
    assert response.status_code == 302
    assert not AutoJoinRoom.objects.exists()
    entries = AuditEntry.objects.order_by("id")
    assert [e.action for e in entries] == [
        "admin.add",
        "admin.change",
        "admin.delete",
        "admin.delete",
        "admin.delete",
    ]
    assert {(e.actor_id, e.ip) for e in entries} == {(console_admin.pk, ADMIN_ADDRESS)}
    assert entries[1].details["changed"] == ["Note"]
    assert sorted(e.target.split()[-1] for e in entries[3:]) == [
        "#r1:example.org",
        "#r2:example.org",
    ]


def test_djangos_own_group_admin_is_logged(admin_browser):
    admin_browser.post("/admin/auth/group/add/", {"name": "Compliance"})
    assert actions() == [("admin.add", f"auth.group:{Group.objects.get().pk} Compliance")]


def test_nobody_can_add_change_or_delete_entries_not_even_a_superuser(admin_browser):
    entry = record_action(action="person.deactivate", target="@bob:example.org")
    assert admin_browser.get(LOG + "add/").status_code == 403
    page = admin_browser.get(f"{LOG}{entry.pk}/change/")
    assert page.status_code == 200 and b'name="_save"' not in page.content  # a view, no form
    assert admin_browser.post(f"{LOG}{entry.pk}/change/", {"action": "x"}).status_code == 403
    assert admin_browser.post(f"{LOG}{entry.pk}/delete/", {"post": "yes"}).status_code == 403
    response = admin_browser.post(
        LOG, {"action": "delete_selected", "_selected_action": [entry.pk], "post": "yes"}
    )
    assert AuditEntry.objects.filter(pk=entry.pk).exists(), response.status_code
    assert b"delete_selected" not in admin_browser.get(LOG).content


def test_search_and_filters(admin_browser):
    record_action(action="person.deactivate", target="@bob:example.org")
    record_action(action="room.block", target="!abc:example.org")
    searched = admin_browser.get(LOG, {"q": "bob"}).content.decode()
    assert "@bob:example.org" in searched and "!abc:example.org" not in searched
    filtered = admin_browser.get(LOG, {"action": "room.block"}).content.decode()
    assert "!abc:example.org" in filtered and "@bob:example.org" not in filtered


def read_csv(response) -> list[dict]:
    body = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(body)))


def test_export_follows_the_filters_quotes_formulas_and_is_itself_logged(admin_browser):
    record_action(action="room.block", target='=HYPERLINK("http://evil")')
    record_action(action="person.deactivate", target="@bob:example.org")
    response = admin_browser.get(EXPORT, {"action": "room.block"})
    assert response.status_code == 200 and response["Content-Type"] == "text/csv"
    assert "attachment" in response["Content-Disposition"]
    rows = read_csv(response)
    assert [row["action"] for row in rows] == ["room.block"]
    assert rows[0]["target"].startswith("'=HYPERLINK")
    export = AuditEntry.objects.get(action="audit.export")
    assert export.details == {"filters": {"action": "room.block"}, "rows": 1}
    assert export.ip == ADMIN_ADDRESS
    assert "Export CSV" in admin_browser.get(LOG).content.decode()


def test_anonymous_is_sent_to_sign_in_and_staff_without_permission_refused(staff_client_with):
    record_action(action="room.block", target="!abc:example.org")
    for url in (LOG, EXPORT):
        response = Client().get(url)
        assert response.status_code == 302 and "/admin/login/" in response["Location"], url
    no_perms = staff_client_with()
    assert no_perms.get(LOG).status_code == 403
    assert no_perms.get(EXPORT).status_code == 403
    reader = staff_client_with("records.view_auditentry")
    page = reader.get(LOG)
    assert page.status_code == 200 and "Export CSV" not in page.content.decode()
    assert reader.get(EXPORT).status_code == 403
    exporter = staff_client_with("records.view_auditentry", "records.export_auditentry")
    assert exporter.get(EXPORT).status_code == 200
    assert list(AuditEntry.objects.values_list("action", flat=True)).count("audit.export") == 1
