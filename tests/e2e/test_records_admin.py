"""The organisation's records in Django admin, in Chromium, on the whole workspace: beat's archiver
puts a peer's message in the archive, and an admin places and releases a legal hold and sets a
retention policy. Screenshots go to the test artifacts."""

import os
import subprocess
import time

import pytest

from tests.e2e.conftest import ROOT, open_shared_room
from webclient.embedded.processes import manage

pytestmark = pytest.mark.e2e

ADMIN, PASSWORD = "records-admin", "records-admin-pw-1"


def create_superuser(workspace) -> None:
    code = (
        "from django.contrib.auth import get_user_model; U = get_user_model(); "
        f"U.objects.filter(username='{ADMIN}').exists() or "
        f"U.objects.create_superuser('{ADMIN}', 'records@example.org', '{PASSWORD}')"
    )
    env = {**workspace.processes.env}
    subprocess.run(manage("shell", "-c", code), cwd=ROOT, env=env, check=True, timeout=120)


def test_an_admin_sees_the_archive_and_manages_holds_and_retention(
    page, browser, workspace, matrix_user_factory, bob, artifacts
):
    alice = matrix_user_factory()
    room_id = open_shared_room(page, workspace, alice, bob, "Trading floor")
    bob.send(room_id, "for the records")
    page.wait_for_selector("ol.timeline >> text=for the records")
    create_superuser(workspace)

    admin = browser.new_context(viewport={"width": 1600, "height": 900}).new_page()
    admin.goto(workspace.url + "/admin/login/")
    admin.fill("#id_username", ADMIN)
    admin.fill("#id_password", PASSWORD)
    admin.click("input[type=submit]")
    admin.wait_for_selector("#content-main")

    # Beat runs the archiver every 2 s here: the message shows up in the archive on its own.
    deadline = time.monotonic() + 60
    while True:
        admin.goto(f"{workspace.url}/admin/records/archiverecord/?q={bob.user_id}")
        if admin.locator("#result_list td.field-event_type", has_text="m.room.message").count():
            break
        assert time.monotonic() < deadline, "beat's archiver did not archive the message"
        admin.wait_for_timeout(1000)
    admin.screenshot(path=str(artifacts / "records-archive.png"), full_page=True)
    admin.locator("#result_list th.field-room a").first.click()
    admin.wait_for_selector("text=for the records")  # the event as archived, read-only
    admin.screenshot(path=str(artifacts / "records-archived-event.png"), full_page=True)

    admin.goto(workspace.url + "/admin/records/legalhold/add/")
    admin.select_option("#id_kind", "person")
    admin.fill("#id_target", bob.user_id)
    admin.fill("#id_reason", "Inquiry 12 (regulator)")
    admin.click("input[name=_save]")
    admin.wait_for_selector(f"#result_list >> text={bob.user_id}")
    admin.screenshot(path=str(artifacts / "records-legal-holds.png"), full_page=True)

    admin.goto(workspace.url + "/admin/records/retentionpolicy/add/")
    admin.fill("#id_keep_days", "2555")
    admin.fill("#id_note", "seven years, as the regulator asks")
    admin.click("input[name=_save]")
    admin.wait_for_selector("#result_list >> text=the whole workspace")
    admin.screenshot(path=str(artifacts / "records-retention.png"), full_page=True)

    admin.goto(workspace.url + "/admin/records/legalhold/")
    admin.check("#result_list input.action-select")
    admin.select_option("select[name=action]", "release")
    admin.click("button[name=index]")
    admin.wait_for_selector("text=1 hold(s) released")
    assert page.errors == []
    assert os.path.exists(artifacts / "records-archive.png")
