"""The organisation's rooms in admin (members, encryption, bridges, messages, last activity) and
the homeserver's room actions, each audited, against a real Synapse."""

import time

import pytest
from django.conf import settings

from accounts import services as accounts
from accounts.matrix.errors import MatrixError
from accounts.matrix.http import matrix_request, quote
from accounts.models import MatrixAccount
from console import people
from records.models import AuditEntry, LegalHold
from rooms.models import Room
from tests.integration.console.conftest import ADMIN_ADDRESS, unique
from tests.integration.rooms.helpers import as_user, send_event, sync_and_ingest, text

pytestmark = pytest.mark.django_db
ROOMS = "/admin/rooms/room/"


def person(name: str) -> MatrixAccount:
    user = people.person_create(username=unique(name), password="correct horse battery 9")
    return MatrixAccount.objects.get(user=user)


def admin_api(method: str, path: str, body: dict | None = None) -> dict:
    return matrix_request(
        settings.MATRIX_HOMESERVER_URL,
        method,
        path,
        token=accounts.synapse_admin_token(),
        body=body,
    )


def new_room(account: MatrixAccount, name: str, **extra) -> str:
    body = {"preset": "private_chat", "name": name, **extra}
    return as_user(account, "POST", "/_matrix/client/v3/createRoom", body)["room_id"]


@pytest.fixture
def org_rooms(synapse):
    """Alice's three rooms, synced into the store: plain with 3 messages, encrypted, bridged."""
    alice = person("alice")
    plain = new_room(alice, "Plain talk")
    for body in ("one", "two", "three"):
        send_event(alice, plain, text(body))
    encrypted = new_room(
        alice,
        "Secret plans",
        initial_state=[
            {
                "type": "m.room.encryption",
                "state_key": "",
                "content": {"algorithm": "m.megolm.v1.aes-sha2"},
            }
        ],
    )
    bridged = new_room(alice, "Slack bridge")
    as_user(
        alice,
        "PUT",
        f"/_matrix/client/v3/rooms/{quote(bridged)}/state/m.bridge/slack",
        {"protocol": {"id": "slack", "displayname": "Slack"}, "bridgebot": alice.mxid},
    )
    sync_and_ingest(alice)
    return alice, {"plain": plain, "encrypted": encrypted, "bridged": bridged}


def row(html: str, room_id: str) -> str:
    start = html.index(room_id)
    return html[html.rindex("<tr", 0, start) : html.index("</tr>", start)]


def test_every_room_with_its_facts(admin_browser, org_rooms):
    _alice, ids = org_rooms
    html = admin_browser.get(ROOMS).content.decode()
    plain, encrypted, bridged = (row(html, ids[k]) for k in ("plain", "encrypted", "bridged"))
    assert "Plain talk" in plain and '<td class="field-messages">3</td>' in plain
    assert 'alt="True"' not in plain  # neither encrypted nor bridged
    assert "Secret plans" in encrypted
    assert encrypted.index('alt="True"') < encrypted.index("field-bridged_flag")
    assert "Slack bridge" in bridged and 'field-bridged_flag"><img src' in bridged
    assert 'alt="True"' in bridged.split("field-bridged_flag")[1]
    filtered = admin_browser.get(ROOMS, {"kind": "bridged"}).content.decode()
    assert ids["bridged"] in filtered and ids["plain"] not in filtered
    room = Room.objects.get(room_id=ids["plain"])
    detail = admin_browser.get(f"{ROOMS}{room.pk}/change/").content.decode()
    assert _alice.mxid in detail  # its joined members


def test_make_admin_block_and_delete_through_the_homeserver(admin_browser, org_rooms):
    _alice, ids = org_rooms
    colleague = person("bob")
    plain = Room.objects.get(room_id=ids["plain"])
    bridged = Room.objects.get(room_id=ids["bridged"])

    form = admin_browser.post(ROOMS, {"action": "make_room_admin", "_selected_action": [plain.pk]})
    assert form.status_code == 200 and "Make room admin" in form.content.decode()
    admin_browser.post(
        ROOMS,
        {
            "action": "make_room_admin",
            "_selected_action": [plain.pk],
            "confirm": "yes",
            "user_id": colleague.mxid,
        },
    )
    levels = admin_api("GET", f"/_synapse/admin/v1/rooms/{quote(plain.room_id)}/state")["state"]
    content = next(e["content"] for e in levels if e["type"] == "m.room.power_levels")
    assert content["users"][colleague.mxid] == 100

    admin_browser.post(ROOMS, {"action": "block_rooms", "_selected_action": [bridged.pk]})
    assert admin_api("GET", f"/_synapse/admin/v1/rooms/{quote(bridged.room_id)}/block")["block"]

    admin_browser.post(
        ROOMS,
        {"action": "delete_rooms", "_selected_action": [plain.pk], "confirm": "yes", "purge": "on"},
    )
    deletion = AuditEntry.objects.get(action="room.delete")
    status_path = f"/_synapse/admin/v2/rooms/delete_status/{deletion.details['delete_id']}"
    deadline = time.monotonic() + 60
    while admin_api("GET", status_path)["status"] != "complete":
        assert time.monotonic() < deadline, admin_api("GET", status_path)
        time.sleep(0.3)
    with pytest.raises(MatrixError) as purged:  # purged: the homeserver no longer knows it
        admin_api("GET", f"/_synapse/admin/v1/rooms/{quote(plain.room_id)}")
    assert purged.value.status == 404

    entries = AuditEntry.objects.filter(action__startswith="room.").order_by("id")
    assert [(e.action, e.target) for e in entries] == [
        ("room.make_admin", plain.room_id),
        ("room.block", bridged.room_id),
        ("room.delete", plain.room_id),
    ]
    assert entries[0].details == {"user": colleague.mxid}
    assert entries[2].details["purge"] is True
    assert {e.ip for e in entries} == {ADMIN_ADDRESS}


def test_staff_without_the_room_permission_cannot_act(staff_client_with, org_rooms):
    _alice, ids = org_rooms
    room = Room.objects.get(room_id=ids["plain"])
    viewer = staff_client_with("rooms.view_room")
    page = viewer.get(ROOMS)
    assert page.status_code == 200 and "block_rooms" not in page.content.decode()
    viewer.post(ROOMS, {"action": "block_rooms", "_selected_action": [room.pk]})
    assert not admin_api("GET", f"/_synapse/admin/v1/rooms/{quote(room.room_id)}/block")["block"]
    assert not AuditEntry.objects.filter(action__startswith="room.").exists()
    assert staff_client_with().get(ROOMS).status_code == 403


def test_a_room_under_legal_hold_is_not_purged(admin_browser, org_rooms):
    _alice, ids = org_rooms
    held = Room.objects.get(room_id=ids["plain"])
    LegalHold.objects.create(kind=LegalHold.ROOM, target=held.room_id, reason="Litigation")
    page = admin_browser.post(
        ROOMS,
        {"action": "delete_rooms", "_selected_action": [held.pk], "confirm": "yes", "purge": "on"},
        follow=True,
    )
    assert "under legal hold" in page.content.decode()
    # The homeserver still has the room, and nothing was started or logged as started.
    assert admin_api("GET", f"/_synapse/admin/v1/rooms/{quote(held.room_id)}")["room_id"] == (
        held.room_id
    )
    assert not AuditEntry.objects.filter(action="room.delete").exists()
