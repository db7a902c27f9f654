"""A room's tombstone is followed only when its sender had the power to say so and the new room
names this one as its predecessor."""

import pytest
from django.contrib.auth import get_user_model

from accounts.models import MatrixAccount
from rooms.models import Membership, Room, RoomState
from rooms.selectors import room_replacement

pytestmark = pytest.mark.django_db


def state(room, event_type, sender, content, key=""):
    RoomState.objects.create(
        room=room,
        event_type=event_type,
        state_key=key,
        event_id=f"${event_type}{room.pk}",
        sender=sender,
        content=content,
    )


@pytest.fixture
def setup():
    user = get_user_model().objects.create_user(username="viewer")
    account = MatrixAccount.objects.create(
        user=user,
        homeserver_url="http://127.0.0.1:9",
        mxid="@viewer:hs",
        device_id="D",
        access_token="t",
    )
    old = Room.objects.create(room_id="!old:hs")
    state(old, "m.room.create", "@admin:hs", {"room_version": "10"})
    state(
        old, "m.room.power_levels", "@admin:hs", {"users": {"@admin:hs": 100}, "state_default": 50}
    )
    return account, old


def test_tombstone_from_an_admin_is_followed(setup):
    account, old = setup
    state(old, "m.room.tombstone", "@admin:hs", {"body": "moved", "replacement_room": "!new:hs"})
    replacement = room_replacement(account=account, room=old)
    assert replacement.room_id == "!new:hs" and replacement.reason == "moved"
    assert not replacement.joined


def test_tombstone_from_someone_without_power_is_ignored(setup):
    account, old = setup
    state(old, "m.room.tombstone", "@mallory:hs", {"body": "x", "replacement_room": "!evil:hs"})
    assert room_replacement(account=account, room=old) is None


def test_new_room_must_name_the_old_one_as_predecessor(setup):
    account, old = setup
    state(old, "m.room.tombstone", "@admin:hs", {"replacement_room": "!new:hs"})
    new = Room.objects.create(room_id="!new:hs")
    Membership.objects.create(account=account, room=new, membership="join")
    state(new, "m.room.create", "@admin:hs", {"predecessor": {"room_id": "!somewhere-else:hs"}})
    assert room_replacement(account=account, room=old) is None
    RoomState.objects.filter(room=new, event_type="m.room.create").update(
        content={"predecessor": {"room_id": "!old:hs"}}
    )
    assert room_replacement(account=account, room=old).joined
