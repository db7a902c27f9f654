"""A room never goes back to plain text: no sync, join or missing record makes the outbox send a
message unencrypted in a room that is (or was ever seen as) encrypted."""

import pytest
from django.contrib.auth import get_user_model

from accounts.models import MatrixAccount
from rooms import selectors, services
from rooms.models import Membership, Room, RoomState
from rooms.services import LeaseHandle
from rooms.sync.batch import JoinedRoomBatch, SyncBatch
from rooms.sync.leases import lease_claim

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def account():
    user = get_user_model().objects.create_user(username="yorick")
    return MatrixAccount.objects.create(
        user=user,
        homeserver_url="http://127.0.0.1:9",
        mxid="@yorick:hs",
        device_id="D",
        access_token="syt_x",
    )


def member_event(n: int) -> dict:
    return {
        "event_id": f"$m{n}",
        "type": "m.room.member",
        "state_key": "@yorick:hs",
        "sender": "@yorick:hs",
        "content": {"membership": "join"},
        "origin_server_ts": n,
    }


def test_a_sync_without_the_encryption_event_does_not_clear_it(account):
    # The room was created encrypted here; a sync fetched mid-creation lacks m.room.encryption.
    services._mark_joined(account, "!made:hs", name="Made", is_encrypted=True)
    lease = LeaseHandle(
        account.pk, "host", lease_claim(account_id=account.pk, owner="host", seconds=60)
    )
    batch = SyncBatch(
        next_batch="s1",
        joined=[JoinedRoomBatch(room_id="!made:hs", timeline=[member_event(1)])],
    )
    services.sync_ingest(lease=lease, own_user_id=account.mxid, batch=batch)
    assert Membership.objects.get(account=account, room__room_id="!made:hs").is_encrypted
    room = Room.objects.get(room_id="!made:hs")
    services.message_send(account_id=account.pk, room=room, body="still secret")
    (pending,) = selectors.outbox_pending(account_id=account.pk)
    assert pending.encrypted


def test_joining_by_address_does_not_clear_it(account):
    services._mark_joined(account, "!known:hs", name="Known", is_encrypted=True)
    services._mark_joined(account, "!known:hs", name="Known")  # e.g. joined again by its address
    assert Membership.objects.get(account=account, room__room_id="!known:hs").is_encrypted


def test_a_room_whose_state_has_not_synced_is_not_assumed_plain(account):
    services._mark_joined(account, "!fresh:hs", name="Fresh")  # joined a moment ago
    room = Room.objects.get(room_id="!fresh:hs")
    services.message_send(account_id=account.pk, room=room, body="first words")
    (pending,) = selectors.outbox_pending(account_id=account.pk)
    assert not pending.encrypted and not pending.state_known  # the host asks the homeserver


def test_the_rooms_state_alone_is_enough_to_encrypt(account):
    services._mark_joined(account, "!state:hs", name="State")
    room = Room.objects.get(room_id="!state:hs")
    RoomState.objects.create(
        room=room,
        event_type="m.room.encryption",
        state_key="",
        event_id="$enc",
        sender="@admin:hs",
        content={"algorithm": "m.megolm.v1.aes-sha2"},
    )
    services.message_send(account_id=account.pk, room=room, body="secret")
    (pending,) = selectors.outbox_pending(account_id=account.pk)
    assert pending.encrypted and pending.encryption_settings["algorithm"] == "m.megolm.v1.aes-sha2"
