"""Retention policies and legal holds are managed in admin, and every change is in the audit log;
the archive itself is read-only there."""

import pytest
from django.contrib.auth import get_user_model

from records.models import ArchiveRecord, AuditEntry, LegalHold, RetentionPolicy

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client):
    admin = get_user_model().objects.create_superuser("root", "root@example.org", "pw")
    client.force_login(admin)
    return client


def actions() -> list[tuple[str, str]]:
    return list(AuditEntry.objects.order_by("id").values_list("action", "target"))


def test_policies_and_holds_are_managed_and_every_change_is_logged(admin_client):
    base = "/admin/records/"
    response = admin_client.post(base + "retentionpolicy/add/", {"room_id": "", "keep_days": 90})
    assert response.status_code == 302
    policy = RetentionPolicy.objects.get()
    admin_client.post(
        base + f"retentionpolicy/{policy.pk}/change/", {"room_id": "", "keep_days": 30}
    )
    response = admin_client.post(
        base + "retentionpolicy/add/", {"room_id": "general", "keep_days": 5}
    )
    assert b"Expected a Matrix ID like !name:example.org" in response.content
    admin_client.post(
        base + "legalhold/add/",
        {"kind": "person", "target": "@bob:example.org", "reason": "inquiry 12"},
    )
    hold = LegalHold.objects.get()
    assert hold.active and hold.placed_by.username == "root"
    admin_client.post(base + "legalhold/", {"action": "release", "_selected_action": [hold.pk]})
    hold.refresh_from_db()
    assert not hold.active and hold.released_by.username == "root"
    admin_client.post(base + f"retentionpolicy/{policy.pk}/delete/", {"post": "yes"})
    assert actions() == [
        ("retention.policy_add", "workspace"),
        ("retention.policy_set", "workspace"),
        ("legal_hold.place", "@bob:example.org"),
        ("legal_hold.release", "@bob:example.org"),
        ("retention.policy_remove", "workspace"),
    ]
    assert AuditEntry.objects.filter(action="retention.policy_set").get().details["keep_days"] == 30


def test_the_archive_is_read_only_in_admin(admin_client):
    assert admin_client.get("/admin/records/archiverecord/").status_code == 200
    assert admin_client.get("/admin/records/archiverecord/add/").status_code == 403
    assert not ArchiveRecord.objects.exists()
    hold = LegalHold.objects.create(kind="room", target="!r:example.org", reason="x")
    assert admin_client.get(f"/admin/records/legalhold/{hold.pk}/delete/").status_code == 403


def test_chains_are_verified_from_admin(admin_client):
    from records.models import ArchiveChain

    ArchiveChain.objects.create(room_id="!r:example.org", base_hash="0" * 64, head_hash="0" * 64)
    response = admin_client.post(
        "/admin/records/archivechain/",
        {"action": "verify", "_selected_action": [ArchiveChain.objects.get().pk]},
        follow=True,
    )
    assert b"!r:example.org: 0 link(s) intact." in response.content
    ArchiveChain.objects.update(head_position=3)
    response = admin_client.post(
        "/admin/records/archivechain/",
        {"action": "verify", "_selected_action": [ArchiveChain.objects.get().pk]},
        follow=True,
    )
    assert (
        b"BROKEN: !r:example.org position 1: chain ends at 0, its head says 3" in response.content
    )
