"""Room state is shared by every account in the room: an account whose sync lags behind must not
put older state back, and a sync saves only the membership columns it changed, so another writer's
work on the same row survives."""

import pytest
from django.contrib.auth import get_user_model

from accounts.models import MatrixAccount
from rooms import services
from rooms.models import Membership, RoomState
from rooms.services import LeaseHandle
from rooms.sync.batch import JoinedRoomBatch, SyncBatch
from rooms.sync.leases import lease_claim

pytestmark = pytest.mark.django_db(transaction=True)
ROOM = "!shared:hs"


def make_account(name: str) -> tuple[MatrixAccount, LeaseHandle]:
    user = get_user_model().objects.create_user(username=name)
    account = MatrixAccount.objects.create(
        user=user,
        homeserver_url="http://127.0.0.1:9",
        mxid=f"@{name}:hs",
        device_id="D",
        access_token=f"syt_{name}",
    )
    token = lease_claim(account_id=account.pk, owner="host", seconds=60)
    return account, LeaseHandle(account.pk, "host", token)


def topic(event_id: str, text: str, ts: int) -> dict:
    return {
        "event_id": event_id,
        "type": "m.room.topic",
        "state_key": "",
        "sender": "@admin:hs",
        "content": {"topic": text},
        "origin_server_ts": ts,
    }


def ingest(account, lease, *, state=(), timeline=(), next_batch="s1") -> None:
    batch = SyncBatch(
        next_batch=next_batch,
        joined=[JoinedRoomBatch(room_id=ROOM, state=list(state), timeline=list(timeline))],
    )
    services.sync_ingest(lease=lease, own_user_id=account.mxid, batch=batch)


def held_topic() -> str:
    return RoomState.objects.get(room__room_id=ROOM, event_type="m.room.topic").content["topic"]


def test_a_lagging_account_never_puts_older_state_back():
    ahead, ahead_lease = make_account("ahead")
    behind, behind_lease = make_account("behind")
    ingest(ahead, ahead_lease, timeline=[topic("$new", "Launch on Friday", 2_000)])
    # The lagging account's sync still carries the topic as it was, in its state and timeline.
    ingest(
        behind,
        behind_lease,
        state=[topic("$older", "Launch on Monday", 500)],
        timeline=[topic("$old", "Launch on Tuesday", 1_000)],
    )
    assert held_topic() == "Launch on Friday"
    assert Membership.objects.get(account=behind).topic == "Launch on Friday"
    # Newer state from either account still wins.
    ingest(
        behind, behind_lease, timeline=[topic("$newest", "Launch today", 3_000)], next_batch="s2"
    )
    assert held_topic() == "Launch today"


def test_a_sync_saves_only_the_membership_columns_it_changed(monkeypatch):
    account, lease = make_account("writer")
    ingest(account, lease, timeline=[topic("$t1", "Before", 1_000)])
    membership = Membership.objects.get(account=account)
    describe = services._describe

    def describe_while_a_page_pages_back(membership, *args, **kwargs):
        # Between this sync's read of the row and its save, a page finishes paging history back.
        Membership.objects.filter(pk=membership.pk).update(history_complete=True, history_token="")
        describe(membership, *args, **kwargs)

    monkeypatch.setattr(services, "_describe", describe_while_a_page_pages_back)
    ingest(account, lease, timeline=[topic("$t2", "After", 2_000)], next_batch="s2")
    membership = Membership.objects.get(account=account)
    assert membership.topic == "After"
    assert membership.history_complete is True and membership.history_token == ""
