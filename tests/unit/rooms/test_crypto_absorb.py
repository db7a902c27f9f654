"""The crypto absorb runs only for a /sync that holds something for the Olm machine: a sync of
plain messages skips it (and its database reads); to-device messages, device list changes, a new
one-time key count, and encrypted, encryption or membership events still go to nio. The Olm
machine is faked here: this is the decision, not the cryptography."""

import asyncio
import copy
from concurrent.futures import ThreadPoolExecutor

import pytest

from accounts.matrix.crypto import Absorbed
from rooms.services import LeaseHandle
from rooms.sync import account_crypto
from rooms.sync.account_crypto import AccountCrypto
from rooms.sync.batch import batch_from_sync_json

ROOM = "!kDNJqbmJbYVZJlMmXc:localhost"

# A /sync of one plain message, as Synapse sends it (trimmed to the sections it always has).
PLAIN = {
    "next_batch": "s72595_4483_1934_0_0_0_0_0_0_0",
    "account_data": {"events": []},
    "presence": {"events": []},
    "to_device": {"events": []},
    "device_lists": {"changed": [], "left": []},
    "device_one_time_keys_count": {"signed_curve25519": 50},
    "device_unused_fallback_key_types": ["signed_curve25519"],
    "rooms": {
        "join": {
            ROOM: {
                "timeline": {
                    "events": [
                        {
                            "type": "m.room.message",
                            "sender": "@bob:localhost",
                            "content": {"msgtype": "m.text", "body": "lunch?"},
                            "origin_server_ts": 1764590000000,
                            "unsigned": {"age": 42},
                            "event_id": "$xDn2CkBN3v9rUbnQ2q8pKC4BsBTPK2aIKdl2dtRfCdk",
                        }
                    ],
                    "limited": False,
                    "prev_batch": "t34-72594_4483_1934_0_0_0_0_0_0_0",
                },
                "state": {"events": []},
                "account_data": {"events": []},
                "ephemeral": {"events": []},
                "unread_notifications": {"notification_count": 1, "highlight_count": 0},
                "summary": {},
            }
        }
    },
}

MEGOLM = {
    "type": "m.room.encrypted",
    "sender": "@bob:localhost",
    "content": {
        "algorithm": "m.megolm.v1.aes-sha2",
        "ciphertext": "AwgAEnACgAkLmt6qF84IK++J7UDH2Za1YVchHyprqTqsg2yyOwAtHaZTwyNg37afzg8f3r9IsN9r",
        "device_id": "BOBDEVICE",
        "sender_key": "IlRMeOPX2e0MurIyfWEucYBRVOEEUMrOHqn/8mLqMjA",
        "session_id": "X3lUlvLELLYxeTx4yOVu6UDpasGEVO0Jbu+QFnm0cKQ",
    },
    "origin_server_ts": 1764590001000,
    "unsigned": {"age": 12},
    "event_id": "$9zTnGfdxMn2Xwq5mJ3yrHqVdF0aRbU_ZsC0x7kq1yV8",
}
OLM_TO_DEVICE = {
    "type": "m.room.encrypted",
    "sender": "@bob:localhost",
    "content": {
        "algorithm": "m.olm.v1.curve25519-aes-sha2",
        "sender_key": "IlRMeOPX2e0MurIyfWEucYBRVOEEUMrOHqn/8mLqMjA",
        "ciphertext": {"Nm2Xb7VKQiiRYJxc0Lqb5n7cI1ixQBKmjStXxbcWZmU": {"type": 0, "body": "Awog"}},
    },
}
JOIN = {
    "type": "m.room.member",
    "state_key": "@carol:localhost",
    "sender": "@carol:localhost",
    "content": {"membership": "join"},
    "origin_server_ts": 1764590002000,
    "event_id": "$Yh1pC1d6BZtjH7d8NnQ8QmI3h7p9S2nB0kQ2cC4rX1E",
}


class FakeDevice:
    """Stands in for CryptoDevice: records what it was given."""

    def __init__(self) -> None:
        self.absorbed: list[dict] = []
        self.housekeeping_runs = 0

    async def absorb_sync(self, raw, rooms, encrypted_room_ids) -> Absorbed:
        self.absorbed.append(raw)
        return Absorbed()

    async def housekeeping(self) -> None:
        self.housekeeping_runs += 1


@pytest.fixture
def crypto(monkeypatch) -> AccountCrypto:
    """An AccountCrypto with a fake device and no database behind it."""
    monkeypatch.setattr(account_crypto.selectors, "encrypted_room_ids", lambda account_id: set())
    monkeypatch.setattr(account_crypto.devices, "keys_withheld_save", lambda **kw: None)

    async def no_requests(*args) -> None:
        return None

    monkeypatch.setattr(account_crypto, "request_missing_keys", no_requests)
    crypto = AccountCrypto()
    crypto.device = FakeDevice()
    crypto.lease = LeaseHandle(1, "host", 1)
    return crypto


def sync(**changes) -> dict:
    raw = copy.deepcopy(PLAIN)
    timeline = raw["rooms"]["join"][ROOM]["timeline"]["events"]
    timeline.extend(changes.pop("timeline", []))
    raw["rooms"]["join"][ROOM]["state"]["events"].extend(changes.pop("state", []))
    raw.update(changes)
    return raw


def absorb(crypto: AccountCrypto, raw: dict) -> bool:
    """Whether the sync reached the Olm machine. Run on a loop of its own in a thread of its own:
    the browser tests' Playwright keeps a loop running in the main thread for the session."""
    before = len(crypto.device.absorbed)
    with ThreadPoolExecutor(1) as thread:
        thread.submit(asyncio.run, crypto.absorb(raw, batch_from_sync_json(raw))).result()
    return len(crypto.device.absorbed) > before


def test_a_sync_of_plain_messages_skips_the_absorb(crypto):
    assert absorb(crypto, sync())  # the first sync: nio learns the key count
    assert not absorb(crypto, sync())
    assert not absorb(crypto, sync(next_batch="s72596_4483_1934_0_0_0_0_0_0_0"))
    assert crypto.device.housekeeping_runs == 2  # what nio queued itself still goes out


@pytest.mark.parametrize(
    "changes",
    [
        {"to_device": {"events": [OLM_TO_DEVICE]}},
        {"timeline": [MEGOLM]},
        {"device_lists": {"changed": ["@bob:localhost"], "left": []}},
        {"device_lists": {"changed": [], "left": ["@carol:localhost"]}},
        {"device_one_time_keys_count": {"signed_curve25519": 49}},
        {"state": [JOIN]},
        {"timeline": [JOIN]},
    ],
    ids=["to-device", "encrypted", "device-changed", "device-left", "key-count", "member", "join"],
)
def test_a_sync_with_crypto_in_it_is_absorbed(crypto, changes):
    assert absorb(crypto, sync())
    assert absorb(crypto, sync(**copy.deepcopy(changes)))
