"""An account's first sync is stored in parts: most recently active rooms first, parts doubling in
size, and only the last part carries the since-token (a host stopping half way loses nothing)."""

from rooms.sync.batch import InvitedRoomBatch, JoinedRoomBatch, LeftRoomBatch, SyncBatch
from rooms.sync.first_sync import LARGEST_PART, first_sync_parts


def joined(n: int, ts: int) -> JoinedRoomBatch:
    return JoinedRoomBatch(
        room_id=f"!r{n}:hs",
        timeline=[{"event_id": f"$e{n}", "type": "m.room.message", "origin_server_ts": ts}],
    )


def first_sync(rooms: int) -> SyncBatch:
    return SyncBatch(
        next_batch="s1",
        joined=[joined(n, ts=n) for n in range(rooms)],
        invited=[InvitedRoomBatch(room_id="!invite:hs")],
        left=[LeftRoomBatch(room_id="!left:hs")],
        direct_room_ids={"!r0:hs"},
        dropped_events=2,
    )


def test_a_first_sync_of_one_room_is_stored_whole():
    batch = first_sync(1)
    assert first_sync_parts(batch) == [batch]


def test_parts_double_newest_rooms_first_and_only_the_last_part_is_synced():
    batch = first_sync(10)
    parts = first_sync_parts(batch)
    assert [len(p.joined) for p in parts] == [1, 2, 4, 3]
    order = [room.room_id for part in parts for room in part.joined]
    assert order == [f"!r{n}:hs" for n in range(9, -1, -1)]  # the newest activity first
    assert [p.next_batch for p in parts] == ["", "", "", "s1"]
    assert [len(p.invited) for p in parts] == [1, 0, 0, 0]  # invitations head the list
    assert [len(p.left) for p in parts] == [0, 0, 0, 1]
    assert all(p.direct_room_ids == {"!r0:hs"} for p in parts)
    assert sum(p.dropped_events for p in parts) == 2
    assert all(p.received_at == batch.received_at for p in parts)


def test_parts_stop_growing_at_the_largest_part():
    parts = first_sync_parts(first_sync(200))
    sizes = [len(p.joined) for p in parts]
    assert max(sizes) == LARGEST_PART
    assert sum(sizes) == 200
    assert len({r.room_id for p in parts for r in p.joined}) == 200  # each room once


def test_rooms_without_a_timeline_come_last():
    batch = first_sync(3)
    batch.joined.append(JoinedRoomBatch(room_id="!quiet:hs"))
    parts = first_sync_parts(batch)
    assert parts[-1].joined[-1].room_id == "!quiet:hs"
