"""Which mark a decrypted message gets, from where its key came and what the person trusts."""

from types import SimpleNamespace

from accounts.matrix.crypto_authenticity import BACKUP, DIRECT, FORWARDED, OWN, provenance
from rooms.authenticity import verdict


def facts(**overrides):
    base = {
        "sender": "@bob:hs",
        "device_id": "BOB",
        "key_origin": DIRECT,
        "device_known": True,
        "mismatch": False,
        "verified": False,
    }
    return SimpleNamespace(**{**base, **overrides})


def test_verdicts():
    trusted = {("@bob:hs", "SIGNED")}
    assert verdict(facts(), trusted) == "unverified"
    assert verdict(facts(device_id="SIGNED"), trusted) == ""
    assert verdict(facts(verified=True), trusted) == ""
    assert verdict(facts(key_origin=OWN), set()) == ""
    assert verdict(facts(key_origin=BACKUP, device_id="SIGNED"), trusted) == "unsafe_key"
    assert verdict(facts(key_origin=FORWARDED, verified=True), trusted) == "unsafe_key"
    assert verdict(facts(device_known=False), trusted) == "unknown_device"
    assert verdict(facts(mismatch=True, device_id="SIGNED"), trusted) == "mismatch"
    assert verdict(None, trusted) == "unknown_device"


class FakeOlm:
    """nio's Olm machine as provenance() reads it."""

    user_id, device_id = "@me:hs", "ME"

    def __init__(self, session, devices):
        self.account = SimpleNamespace(identity_keys={"curve25519": "mycurve", "ed25519": "myed"})
        self.inbound_group_store = SimpleNamespace(get=lambda room, key, sid: session)
        self.device_store = SimpleNamespace(items=lambda: devices.items())

    def is_device_verified(self, device):
        return device.verified


def device(device_id, curve, ed, verified=False):
    return SimpleNamespace(
        id=device_id, curve25519=curve, ed25519=ed, deleted=False, verified=verified
    )


def envelope(device_id="BOB", sender_key="bobcurve"):
    return {
        "sender": "@bob:hs",
        "content": {"sender_key": sender_key, "session_id": "S", "device_id": device_id},
    }


def session(sender_key="bobcurve", ed="bobed", chain=()):
    return SimpleNamespace(id="S", sender_key=sender_key, ed25519=ed, forwarding_chain=list(chain))


def test_a_claimed_device_whose_keys_are_not_the_sessions_is_a_mismatch():
    devices = {"@bob:hs": {"BOB": device("BOB", "othercurve", "bobed")}}
    found = provenance(FakeOlm(session(), devices), "!r", envelope(), set())
    assert found.mismatch and found.device_known


def test_the_sender_device_is_found_by_the_sessions_key():
    devices = {"@bob:hs": {"BOB": device("BOB", "bobcurve", "bobed", verified=True)}}
    found = provenance(FakeOlm(session(), devices), "!r", envelope(), set())
    assert (found.device_id, found.key_origin, found.mismatch, found.verified) == (
        "BOB",
        DIRECT,
        False,
        True,
    )
    forwarded = provenance(FakeOlm(session(chain=["x"]), devices), "!r", envelope(), set())
    assert forwarded.key_origin == FORWARDED
    restored = provenance(FakeOlm(session(), devices), "!r", envelope(), {"S"})
    assert restored.key_origin == BACKUP


def test_a_signing_key_that_is_not_the_devices_is_a_mismatch():
    devices = {"@bob:hs": {"BOB": device("BOB", "bobcurve", "someone-elses-ed")}}
    found = provenance(FakeOlm(session(), devices), "!r", envelope(device_id=""), set())
    assert found.mismatch


def test_an_unknown_device():
    found = provenance(FakeOlm(session(), {}), "!r", envelope(), set())
    assert not found.device_known and found.device_id == "BOB"
