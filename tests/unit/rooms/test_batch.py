"""Translating raw /sync bodies: malformed input is dropped and counted, never fatal."""

import pytest

from rooms.sync.batch import MalformedSync, batch_from_sync_json
from rooms.sync.host import BACKOFF_CAP, backoff_delay


def event(event_id: str, **extra) -> dict:
    return {
        "event_id": event_id,
        "type": "m.room.message",
        "sender": "@a:hs",
        "content": {"body": "hi"},
        "origin_server_ts": 1,
        **extra,
    }


def test_missing_next_batch_is_the_only_fatal_error():
    with pytest.raises(MalformedSync):
        batch_from_sync_json({"rooms": {}})
    with pytest.raises(MalformedSync):
        batch_from_sync_json(["not", "a", "dict"])


def test_joined_room_fields_are_kept():
    raw = {
        "next_batch": "s2",
        "rooms": {
            "join": {
                "!r:hs": {
                    "timeline": {"events": [event("$1")], "limited": True, "prev_batch": "p1"},
                    "state": {
                        "events": [
                            event("$0", type="m.room.name", state_key="", content={"name": "N"})
                        ]
                    },
                    "summary": {
                        "m.heroes": ["@a:hs"],
                        "m.joined_member_count": 2,
                        "m.invited_member_count": 0,
                    },
                    "unread_notifications": {"notification_count": 3, "highlight_count": 1},
                }
            }
        },
    }
    batch = batch_from_sync_json(raw)
    room = batch.joined[0]
    assert (room.room_id, room.limited, room.prev_batch) == ("!r:hs", True, "p1")
    assert [e["event_id"] for e in room.timeline] == ["$1"]
    assert room.heroes == ["@a:hs"] and room.joined_count == 2
    assert (room.notification_count, room.highlight_count) == (3, 1)
    assert batch.dropped_events == 0


def test_malformed_events_and_room_ids_are_dropped_and_counted():
    raw = {
        "next_batch": "s2",
        "rooms": {
            "join": {
                "!r:hs": {
                    "timeline": {
                        "events": [
                            event("$ok"),
                            {"type": "m.room.message"},
                            "junk",
                            event(None),
                            event("$bad-key", state_key=5),
                        ]
                    }
                },
                "not-a-room": {},
            },
            "invite": {"!i:hs": {"invite_state": {"events": [{"type": "m.room.name"}]}}},
        },
    }
    batch = batch_from_sync_json(raw)
    assert [e["event_id"] for e in batch.joined[0].timeline] == ["$ok"]
    assert batch.invited[0].stripped_state == []
    assert batch.dropped_events == 6


def test_event_without_content_object_gets_an_empty_one():
    raw = {
        "next_batch": "s",
        "rooms": {"join": {"!r:hs": {"timeline": {"events": [event("$1", content="oops")]}}}},
    }
    assert batch_from_sync_json(raw).joined[0].timeline[0]["content"] == {}


def test_m_direct_account_data_lists_direct_rooms():
    raw = {
        "next_batch": "s",
        "account_data": {
            "events": [{"type": "m.direct", "content": {"@a:hs": ["!d:hs"], "@b:hs": "junk"}}]
        },
    }
    assert batch_from_sync_json(raw).direct_room_ids == {"!d:hs"}
    assert batch_from_sync_json({"next_batch": "s"}).direct_room_ids is None


def test_backoff_is_capped_jittered_and_honours_retry_after():
    delays = [backoff_delay(attempt) for attempt in range(20)]
    assert max(delays) <= BACKOFF_CAP
    assert delays[0] <= 1.0
    assert len({round(backoff_delay(8), 6) for _ in range(20)}) > 1
    assert backoff_delay(0, retry_after_ms=90_000) == 90.0


def test_typing_comes_from_the_ephemeral_m_typing_event():
    def room(ephemeral):
        return {
            "next_batch": "s",
            "rooms": {"join": {"!r:hs": {"ephemeral": {"events": ephemeral}}}},
        }

    typing = [{"type": "m.typing", "content": {"user_ids": ["@a:hs", 5, "@b:hs"]}}]
    assert batch_from_sync_json(room(typing)).joined[0].typing == ["@a:hs", "@b:hs"]
    stopped = [{"type": "m.typing", "content": {"user_ids": []}}]
    assert batch_from_sync_json(room(stopped)).joined[0].typing == []
    assert (
        batch_from_sync_json(room([{"type": "m.receipt", "content": {}}])).joined[0].typing is None
    )


def test_public_read_receipts_are_kept_private_ones_ignored():
    ephemeral = [
        {
            "type": "m.receipt",
            "content": {
                "$e1": {"m.read": {"@a:hs": {"ts": 5}}, "m.read.private": {"@b:hs": {"ts": 6}}},
                "$e2": {"m.read": {"@c:hs": {}}},
            },
        }
    ]
    raw = {"next_batch": "s", "rooms": {"join": {"!r:hs": {"ephemeral": {"events": ephemeral}}}}}
    assert sorted(batch_from_sync_json(raw).joined[0].receipts) == [
        ("$e1", "@a:hs", 5),
        ("$e2", "@c:hs", 0),
    ]
