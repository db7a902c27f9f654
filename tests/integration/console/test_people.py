"""People in the admin console against a real Synapse: create, reset password, deactivate (on the
homeserver, sessions ended), bulk import with a dry run, each with its audit entry."""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.sessions.models import Session
from django.test import Client

from accounts.matrix import client_api
from accounts.matrix.errors import AccountDeactivated, InvalidCredentials, MatrixError
from accounts.models import MatrixAccount
from records.models import AuditEntry
from tests.integration.console.conftest import ADMIN_ADDRESS, unique

pytestmark = pytest.mark.django_db
User = get_user_model()
PEOPLE = "/admin/auth/user/"
IMPORT = PEOPLE + "import/"
PASSWORD = "correct horse battery 9"


def audit(action: str) -> list[AuditEntry]:
    return list(AuditEntry.objects.filter(action=action).order_by("id"))


def add_person(client: Client, username: str) -> MatrixAccount:
    response = client.post(
        PEOPLE + "add/",
        {
            "username": username,
            "first_name": "Ada",
            "last_name": "Lovelace",
            "email": f"{username}@example.org",
            "password1": PASSWORD,
            "password2": PASSWORD,
            "_save": "Save",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    return MatrixAccount.objects.get(user__username=username)


def test_create_and_reset_password_are_audited(admin_browser, synapse):
    username = unique("ada")
    account = add_person(admin_browser, username)
    [created] = audit("person.create")
    assert (created.target, created.ip, created.details["via"]) == (
        account.mxid,
        ADMIN_ADDRESS,
        "admin",
    )
    assert not audit("admin.add")  # one action, one entry
    new_password = "another horse battery 7"
    response = admin_browser.post(
        f"{PEOPLE}{account.user_id}/password/",
        {"password1": new_password, "password2": new_password},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    [reset] = audit("person.password_reset")
    assert (reset.target, reset.ip) == (account.mxid, ADMIN_ADDRESS)
    assert not audit("admin.change")
    assert client_api.password_login(synapse.url, user=username, password=new_password)
    with pytest.raises(InvalidCredentials):
        client_api.password_login(synapse.url, user=username, password=PASSWORD)


def test_deactivate_and_erase_ends_sessions_and_the_homeserver_account(admin_browser, synapse):
    username = unique("leaver")
    account = add_person(admin_browser, username)
    person = Client()
    person.force_login(account.user, backend="django.contrib.auth.backends.ModelBackend")
    token = account.access_token
    sessions_before = Session.objects.count()
    confirm = admin_browser.post(
        PEOPLE, {"action": "deactivate_people", "_selected_action": [account.user_id]}
    )
    assert confirm.status_code == 200 and "Deactivate 1 person(s)" in confirm.content.decode()
    done = admin_browser.post(
        PEOPLE,
        {
            "action": "deactivate_people",
            "_selected_action": [account.user_id],
            "confirm": "yes",
            "erase": "on",
            "hand_over_to": "",
        },
    )
    assert done.status_code == 302
    account.refresh_from_db()
    assert not account.is_active and not account.user.is_active and not account.access_token
    assert Session.objects.count() == sessions_before - 1  # the person's sign-in is gone
    assert person.get("/").status_code == 302  # sent to sign in
    with pytest.raises(MatrixError):
        client_api.whoami(synapse.url, access_token=token)  # every device logged out
    with pytest.raises((AccountDeactivated, InvalidCredentials)):
        client_api.password_login(synapse.url, user=username, password=PASSWORD)
    [entry] = audit("person.deactivate")
    assert (entry.target, entry.ip) == (account.mxid, ADMIN_ADDRESS)
    assert entry.details["erase"] is True and entry.details["sessions_ended"] == 1


def test_unticking_active_on_the_person_page_deactivates_and_audits(admin_browser, synapse):
    account = add_person(admin_browser, unique("untick"))
    page = admin_browser.get(f"{PEOPLE}{account.user_id}/change/")
    form = page.context["adminform"].form
    data = {
        name: value
        for name, value in form.initial.items()
        if name in form.fields
        and value is not None
        and name not in ("password", "groups", "user_permissions", "last_login", "date_joined")
    }
    data.update({"is_active": "", "date_joined_0": "2026-01-01", "date_joined_1": "00:00:00"})
    data.update({"matrix_account-TOTAL_FORMS": "1", "matrix_account-INITIAL_FORMS": "1"})
    data.update({"matrix_account-0-id": account.pk, "matrix_account-0-user": account.user_id})
    response = admin_browser.post(f"{PEOPLE}{account.user_id}/change/", data)
    assert response.status_code == 302, response.content.decode()[:3000]
    account.refresh_from_db()
    assert not account.is_active
    assert [e.target for e in audit("person.deactivate")] == [account.mxid]


CSV_TEXT = (
    "username,password,email,first_name,last_name\n"
    "{new},correct horse battery 9,new@example.org,New,Person\n"
    "{existing},correct horse battery 9,,,\n"
    "Bad Name!,correct horse battery 9,,,\n"
    "{short},short,,,\n"
    "{new},correct horse battery 9,,,\n"
    "{taken},correct horse battery 9,,,\n"
    "{noemail},correct horse battery 9,not-an-email,,\n"
)


def test_csv_import_dry_run_then_the_real_import(admin_browser, synapse, matrix_user_factory):
    existing = unique("here")
    User.objects.create_user(existing)
    taken = matrix_user_factory(localpart=unique("taken"))
    names = {
        "new": unique("new"),
        "existing": existing,
        "short": unique("short"),
        "taken": taken.localpart,
        "noemail": unique("mail"),
    }
    text = CSV_TEXT.format(**names)
    people_before = User.objects.count()

    dry = admin_browser.post(IMPORT, {"csv_text": text, "dry_run": "Dry run"})
    assert dry.status_code == 200
    outcomes = [(row.line, row.outcome) for row in dry.context["outcomes"]]
    assert outcomes == [
        (2, "create"),
        (3, "skip"),
        (4, "error"),
        (5, "error"),
        (6, "error"),
        (7, "error"),
        (8, "error"),
    ]
    messages = [row.message for row in dry.context["outcomes"]]
    assert "already exists" in messages[1]
    assert "a-z" in messages[2]
    assert messages[3].startswith("Password refused")
    assert "more than once" in messages[4]
    assert "already exists on the homeserver" in messages[5]
    assert "not an email address" in messages[6]
    html = dry.content.decode()
    assert "Dry run: nothing was written" in html and "correct horse" not in html.split("<form")[0]
    assert User.objects.count() == people_before and not AuditEntry.objects.exists()

    # Import is refused for a text that was not dry-run as it is.
    changed = admin_browser.post(
        IMPORT,
        {
            "csv_text": text + "x,y\n",
            "checked": dry.context["form"].initial["checked"],
            "import": "Import",
        },
    )
    assert "Run the dry run" in changed.content.decode()
    assert User.objects.count() == people_before

    done = admin_browser.post(
        IMPORT,
        {"csv_text": text, "checked": dry.context["form"].initial["checked"], "import": "Import"},
    )
    assert done.status_code == 200
    assert [row.outcome for row in done.context["outcomes"]][:2] == ["created", "skip"]
    created = MatrixAccount.objects.get(user__username=names["new"])
    assert created.user.email == "new@example.org" and created.user.get_full_name() == "New Person"
    assert client_api.password_login(
        synapse.url, user=names["new"], password="correct horse battery 9"
    )
    assert User.objects.count() == people_before + 1
    [entry] = audit("person.create")
    assert entry.target == created.mxid and entry.details["via"] == "CSV import, line 2"
    [summary] = audit("person.import")
    assert summary.details == {"created": 1, "skip": 1, "error": 5} and summary.ip == ADMIN_ADDRESS


def test_a_file_without_the_needed_columns_is_refused_clearly(admin_browser, synapse):
    response = admin_browser.post(IMPORT, {"csv_text": "name,mail\nx,y\n", "dry_run": "Dry run"})
    assert "lacks the column(s): username, password" in response.content.decode()


def test_staff_without_permission_cannot_import_or_deactivate(staff_client_with, synapse):
    target = User.objects.create_user(unique("target"))
    viewer = staff_client_with("auth.view_user")
    assert viewer.get(PEOPLE).status_code == 200
    assert viewer.get(IMPORT).status_code == 403
    assert (
        viewer.post(IMPORT, {"csv_text": "username,password\n", "dry_run": "1"}).status_code == 403
    )
    viewer.post(
        PEOPLE,
        {"action": "deactivate_people", "_selected_action": [target.pk], "confirm": "yes"},
    )
    target.refresh_from_db()
    assert target.is_active and not AuditEntry.objects.exists()
    assert staff_client_with().get(PEOPLE).status_code == 403
    assert Client().get(IMPORT).status_code == 302


def test_a_homeserver_that_is_down_deactivates_nothing(admin_browser, synapse):
    account = add_person(admin_browser, unique("kept"))
    AuditEntry.objects.all().delete()
    MatrixAccount.objects.filter(pk=account.pk).update(homeserver_url="http://127.0.0.1:9")
    response = admin_browser.post(
        PEOPLE,
        {"action": "deactivate_people", "_selected_action": [account.user_id], "confirm": "yes"},
        follow=True,
    )
    assert "not deactivated" in response.content.decode()
    account.refresh_from_db()
    assert account.is_active and account.user.is_active and account.access_token
    assert not AuditEntry.objects.exists()
