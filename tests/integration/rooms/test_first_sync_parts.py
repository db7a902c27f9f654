"""An account's first sync against a real Synapse: its rooms are committed and pushed a few at a
time, the most recently active first, and the account counts as synced only with the last part.
Stored in one transaction, the room list would go from no rooms to all of them in one push."""

import pytest
from asgiref.sync import sync_to_async
from nio import RoomCreateResponse, RoomSendResponse

from rooms import notify, open_pages
from rooms.models import Membership, SyncState
from tests.integration.rooms.helpers import join, run_host_until, signed_in_account

pytestmark = pytest.mark.django_db(transaction=True)

ROOMS = 6  # parts of 1, 2 and 3 rooms


async def test_first_sync_is_stored_and_pushed_room_by_room(
    client, monkeypatch, matrix_user_factory, nio_peer_factory
):
    me = matrix_user_factory()
    account = await sync_to_async(signed_in_account)(client, me)
    peer = await nio_peer_factory()
    room_ids = []
    for n in range(ROOMS):
        created = await peer.room_create(name=f"Part {n}", invite=[me.user_id])
        assert isinstance(created, RoomCreateResponse)
        await sync_to_async(join)(account, created.room_id)
        room_ids.append(created.room_id)
    for room_id in room_ids:  # the last room is the most recently active one
        sent = await peer.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": "hi"})
        assert isinstance(sent, RoomSendResponse)

    # What the account's pages were told, and what the database held when each push went out
    # (pushes run on commit, so each sees exactly the parts committed so far).
    seen: list[tuple[list[str], bool]] = []

    def stored_now() -> tuple[list[str], bool]:
        joined = Membership.objects.filter(account=account, membership="join")
        state = SyncState.objects.filter(account=account).values_list("next_batch", flat=True)
        return sorted(joined.values_list("room__room_id", flat=True)), bool(state.first())

    await open_pages.page_seen(account.pk, "first-sign-in")  # the room list is open: pushes go
    for name in ("room_list_changed", "timeline_appended"):
        real = getattr(notify, name)

        def recording(real=real, **kwargs):
            if kwargs.get("account_id") == account.pk:
                seen.append(stored_now())
            return real(**kwargs)

        monkeypatch.setattr(notify, name, recording)

    def synced() -> bool:
        return stored_now()[1]

    try:
        assert await run_host_until(synced, timeout=60)
    finally:
        await open_pages.page_closed(account.pk, "first-sign-in")
    # One push per room stored (each part pushes its own rooms' rows): the states pushed, in order.
    states = [(len(rooms), done) for rooms, done in seen]
    states = [state for n, state in enumerate(states) if n == 0 or states[n - 1] != state]
    assert states[:3] == [(1, False), (3, False), (6, True)], seen
    assert seen[0][0] == [room_ids[-1]]  # the newest activity came first
