"""Joiners and leavers against a real Synapse: a new person lands in the configured space and room
(and a homeserver that is down only delays it); a leaver's rooms go to a named colleague before the
account is deactivated, and the sync host stops the account."""

import asyncio
import time
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.utils import timezone

from accounts import services as accounts
from accounts.matrix import synapse_admin
from accounts.models import MatrixAccount
from console import joiners, people
from console.leavers import HandoverFailed
from console.models import AutoJoinRoom, PendingJoin
from records.models import AuditEntry
from rooms.models import SyncLease
from tests.integration.console.conftest import unique
from tests.integration.rooms.helpers import as_user, create_room, run_host_until, signed_in_account

PASSWORD = "correct horse battery 9"


def new_person(name: str) -> MatrixAccount:
    user = people.person_create(username=unique(name), password=PASSWORD)
    return MatrixAccount.objects.get(user=user)


def joined_rooms(account: MatrixAccount) -> set[str]:
    return set(
        synapse_admin.user_joined_rooms(
            settings.MATRIX_HOMESERVER_URL,
            admin_token=accounts.synapse_admin_token(),
            user_id=account.mxid,
        )
    )


def power_levels(room_id: str) -> dict:
    state = synapse_admin.room_state(
        settings.MATRIX_HOMESERVER_URL, admin_token=accounts.synapse_admin_token(), room_id=room_id
    )
    return next(e["content"] for e in state if e["type"] == "m.room.power_levels")


def membership(room_id: str, user_id: str) -> str:
    state = synapse_admin.room_state(
        settings.MATRIX_HOMESERVER_URL, admin_token=accounts.synapse_admin_token(), room_id=room_id
    )
    return next(
        (
            e["content"]["membership"]
            for e in state
            if e["type"] == "m.room.member" and e["state_key"] == user_id
        ),
        "",
    )


@pytest.mark.django_db
def test_a_new_person_joins_the_configured_space_and_room(matrix_user_factory):
    owner = matrix_user_factory()
    space = as_user(
        owner,
        "POST",
        "/_matrix/client/v3/createRoom",
        {"preset": "public_chat", "creation_content": {"type": "m.space"}, "name": "Company"},
    )["room_id"]
    alias = unique("general")
    room = as_user(
        owner,
        "POST",
        "/_matrix/client/v3/createRoom",
        {"preset": "public_chat", "room_alias_name": alias, "name": "General"},
    )["room_id"]
    server = owner.user_id.split(":", 1)[1]
    AutoJoinRoom.objects.create(room=space)
    AutoJoinRoom.objects.create(room=f"#{alias}:{server}")

    account = new_person("joiner")
    assert PendingJoin.objects.filter(account=account, joined_at__isnull=True).count() == 2
    assert joiners.joins_run() == (2, 0)
    assert {space, room} <= joined_rooms(account)
    entries = AuditEntry.objects.filter(action="person.auto_join", target=account.mxid)
    assert sorted(e.details["room_id"] for e in entries) == sorted([space, room])
    assert joiners.joins_run() == (0, 0)  # done joins are not tried again


@pytest.mark.django_db
def test_a_join_waits_out_a_homeserver_that_is_down(matrix_user_factory):
    owner = matrix_user_factory()
    room = create_room(owner, name="Announcements")
    AutoJoinRoom.objects.create(room=room)
    account = new_person("patient")
    real_url = account.homeserver_url
    MatrixAccount.objects.filter(pk=account.pk).update(homeserver_url="http://127.0.0.1:9")
    assert joiners.joins_run() == (0, 1)
    pending = PendingJoin.objects.get(account=account)
    assert pending.joined_at is None and pending.attempts == 1
    assert "homeserver" in pending.last_error.lower()
    assert pending.next_attempt_at > timezone.now()  # it waits before trying again
    assert joiners.joins_run() == (0, 0)  # not due yet
    MatrixAccount.objects.filter(pk=account.pk).update(homeserver_url=real_url)
    PendingJoin.objects.filter(pk=pending.pk).update(
        next_attempt_at=timezone.now() - timedelta(seconds=1)
    )
    assert joiners.joins_run() == (1, 0)
    assert room in joined_rooms(account)
    pending.refresh_from_db()
    assert pending.joined_at is not None and pending.attempts == 2 and pending.last_error == ""


@pytest.mark.django_db
def test_a_leavers_rooms_go_to_a_colleague_before_deactivation(admin_browser, matrix_user_factory):
    leaver, colleague = new_person("leaver"), new_person("colleague")
    member = matrix_user_factory()  # someone who stays, so the rooms live on
    managed = create_room(leaver, name="Leaver's team", public=False, invite=[member.user_id])
    helped = create_room(leaver, name="Shared", public=False, invite=[member.user_id])
    not_theirs = create_room(member, name="Member's own", public=False, invite=[leaver.mxid])
    as_user(leaver, "POST", f"/_matrix/client/v3/join/{not_theirs}", {})
    for room_id in (managed, helped):
        as_user(member, "POST", f"/_matrix/client/v3/join/{room_id}", {})
    as_user(
        leaver, "POST", f"/_matrix/client/v3/rooms/{helped}/invite", {"user_id": colleague.mxid}
    )
    token = leaver.access_token
    response = admin_browser.post(
        "/admin/auth/user/",
        {
            "action": "deactivate_people",
            "_selected_action": [leaver.user_id],
            "confirm": "yes",
            "hand_over_to": colleague.mxid,
        },
    )
    assert response.status_code == 302
    for room_id in (managed, helped):
        assert power_levels(room_id)["users"][colleague.mxid] == 100
        assert membership(room_id, colleague.mxid) == "invite"
    assert colleague.mxid not in power_levels(not_theirs)["users"]  # only the leaver's rooms
    leaver.refresh_from_db()
    assert not leaver.is_active
    # The homeserver takes the leaver out of their rooms in the background after deactivating.
    deadline = time.monotonic() + 60
    while membership(managed, leaver.mxid) != "leave":
        assert time.monotonic() < deadline, "the leaver is still in the room"
        time.sleep(0.2)
    handed = AuditEntry.objects.filter(action="person.hand_over_room").order_by("id")
    assert sorted(e.target for e in handed) == sorted([managed, helped])
    assert {e.details["to"] for e in handed} == {colleague.mxid}
    [gone] = AuditEntry.objects.filter(action="person.deactivate")
    assert (
        gone.details["rooms_handed_over"] == 2 and gone.details["handed_over_to"] == colleague.mxid
    )
    assert token  # the leaver's own device was not needed for any of it


@pytest.mark.django_db
def test_a_failed_handover_keeps_the_leaver_active(admin_browser):
    leaver = new_person("stays")
    create_room(leaver, name="Needs an admin", public=False)
    with pytest.raises(HandoverFailed):
        people.person_deactivate(user=leaver.user, hand_over_to="@nobody:localhost")
    leaver.refresh_from_db()
    assert leaver.is_active and leaver.user.is_active
    assert not AuditEntry.objects.filter(action="person.deactivate").exists()


@pytest.mark.django_db(transaction=True)
async def test_deactivation_stops_the_sync_host(client, matrix_user_factory):
    me = matrix_user_factory()
    account = await sync_to_async(signed_in_account)(client, me)
    done = asyncio.Event()

    def held() -> bool:
        lease = SyncLease.objects.filter(account=account).first()
        return bool(lease and lease.owner and lease.last_synced_at)

    def released_after_deactivation() -> bool:
        if not done.is_set():
            if held():
                account.refresh_from_db()
                people.person_deactivate(user=account.user)
                done.set()
            return False
        lease = SyncLease.objects.get(account=account)
        return lease.owner == ""

    assert await run_host_until(released_after_deactivation, timeout=60)
    lease = await sync_to_async(SyncLease.objects.get)(account=account)
    assert lease.owner == "" and lease.expires_at is None
    # Nobody claims it again: the account is no longer active.
    assert not await run_host_until(
        lambda: SyncLease.objects.filter(account=account).exclude(owner="").exists(), timeout=8
    )


@pytest.mark.django_db
def test_retry_now_is_audited_and_needs_its_permission(admin_browser, staff_client_with, synapse):
    AutoJoinRoom.objects.create(room="#nowhere:localhost")
    account = new_person("waiting")
    pending = PendingJoin.objects.get(account=account)
    later = timezone.now() + timedelta(hours=1)
    PendingJoin.objects.filter(pk=pending.pk).update(next_attempt_at=later)
    url = "/admin/console/pendingjoin/"
    viewer = staff_client_with("console.view_pendingjoin")
    viewer.post(url, {"action": "retry_now", "_selected_action": [pending.pk]})
    pending.refresh_from_db()
    assert pending.next_attempt_at == later
    admin_browser.post(url, {"action": "retry_now", "_selected_action": [pending.pk]})
    pending.refresh_from_db()
    assert pending.next_attempt_at < later
    [entry] = AuditEntry.objects.filter(action="person.auto_join_retry")
    assert entry.target == account.mxid and entry.details["room"] == "#nowhere:localhost"
