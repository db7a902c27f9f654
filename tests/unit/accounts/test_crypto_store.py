"""DatabaseStore, the crypto store on records: everything nio saves comes back as it was, trust is
bound to the device's key, and an old nio SQLite store (trust files included) is imported once."""

from nio.crypto import (
    InboundGroupSession,
    OlmAccount,
    OlmDevice,
    OutboundGroupSession,
    OutboundSession,
    OutgoingKeyRequest,
    TrustState,
)
from nio.store import DefaultStore

from accounts.matrix.crypto_store import DatabaseStore, MemoryRecords, legacy_store_file

USER, DEVICE, KEY = "@ana:example.org", "ANADEVICE", "pickle-key"
ROOM = "!room:example.org"


def shared_pieces():
    ours, theirs = OlmAccount(), OlmAccount()
    theirs.generate_one_time_keys(1)
    one_time_key = next(iter(theirs.one_time_keys["curve25519"].values()))
    olm = OutboundSession(ours, theirs.identity_keys["curve25519"], one_time_key)
    outbound = OutboundGroupSession()
    megolm = InboundGroupSession(
        outbound.session_key,
        theirs.identity_keys["ed25519"],
        theirs.identity_keys["curve25519"],
        ROOM,
        forwarding_chain=["someone's curve key"],
    )
    device = OlmDevice(
        "@bo:example.org",
        "BODEVICE",
        {
            "ed25519": theirs.identity_keys["ed25519"],
            "curve25519": theirs.identity_keys["curve25519"],
        },
        display_name="Bo's phone",
    )
    return ours, theirs, olm, megolm, device


def test_what_nio_saves_comes_back_as_it_was():
    records = MemoryRecords()
    store = DatabaseStore(USER, DEVICE, records, KEY)
    assert store.load_account() is None
    ours, theirs, olm, megolm, device = shared_pieces()
    ours.shared = True
    store.save_account(ours)
    store.save_session(theirs.identity_keys["curve25519"], olm)
    store.save_inbound_group_session(megolm)
    store.save_device_keys({device.user_id: {device.id: device}})
    store.save_encrypted_rooms({ROOM})
    store.add_outgoing_key_request(OutgoingKeyRequest("req1", megolm.id, ROOM, "m.megolm.v1"))
    for _kind, value in records.rows.items():
        assert KEY not in value

    again = DatabaseStore(USER, DEVICE, records, KEY)
    account = again.load_account()
    assert account.identity_keys == ours.identity_keys and account.shared
    sessions = again.load_sessions()
    assert sessions.get(theirs.identity_keys["curve25519"]).id == olm.id
    group = again.load_inbound_group_sessions().get(ROOM, megolm.sender_key, megolm.id)
    assert group.ed25519 == megolm.ed25519 and group.forwarding_chain == ["someone's curve key"]
    loaded = again.load_device_keys()[device.user_id][device.id]
    assert loaded.keys == device.keys and loaded.display_name == "Bo's phone"
    assert again.load_encrypted_rooms() == {ROOM}
    assert list(again.load_outgoing_key_requests()) == ["req1"]
    again.remove_outgoing_key_request(OutgoingKeyRequest("req1", megolm.id, ROOM, "m.megolm.v1"))
    again.delete_encrypted_room(ROOM)
    assert again.load_outgoing_key_requests() == {} and again.load_encrypted_rooms() == set()


def test_trust_is_bound_to_the_device_key():
    records = MemoryRecords()
    store = DatabaseStore(USER, DEVICE, records, KEY)
    *_, device = shared_pieces()
    store.save_device_keys({device.user_id: {device.id: device}})
    assert store.verify_device(device) and not store.verify_device(device)
    assert store.is_device_verified(device)
    assert store.load_device_keys()[device.user_id][device.id].trust_state == TrustState.verified
    assert store.blacklist_device(device) and store.is_device_blacklisted(device)
    assert not store.unverify_device(device) and store.unblacklist_device(device)
    store.ignore_devices([device])
    assert store.is_device_ignored(device) and store.unignore_device(device)
    store.verify_device(device)

    device.keys["ed25519"] = OlmAccount().identity_keys["ed25519"]  # its keys changed
    store.save_device_keys({device.user_id: {device.id: device}})
    assert not store.is_device_verified(device)
    assert store.load_device_keys()[device.user_id][device.id].trust_state == TrustState.unset


def test_an_old_nio_file_store_is_imported_once_and_kept_as_a_backup(tmp_path):
    ours, theirs, olm, megolm, device = shared_pieces()
    old = DefaultStore(USER, DEVICE, str(tmp_path), KEY)
    old.save_account(ours)
    old.save_session(theirs.identity_keys["curve25519"], olm)
    old.save_inbound_group_session(megolm)
    old.save_device_keys({device.user_id: {device.id: device}})
    old.verify_device(device)  # nio's DefaultStore keeps trust in a text file beside the database
    old.save_encrypted_rooms({ROOM})
    old.database.close()

    records = MemoryRecords()
    store = DatabaseStore(USER, DEVICE, records, KEY, legacy_folder=tmp_path)
    assert store.load_account().identity_keys == ours.identity_keys
    assert store.load_sessions().get(theirs.identity_keys["curve25519"]).id == olm.id
    assert store.load_inbound_group_sessions().get(ROOM, megolm.sender_key, megolm.id)
    assert store.load_device_keys()[device.user_id][device.id].trust_state == TrustState.verified
    assert store.load_encrypted_rooms() == {ROOM}
    legacy = legacy_store_file(tmp_path, USER, DEVICE)
    assert not legacy.exists() and legacy.with_name(legacy.name + ".migrated").is_file()

    # Opened again (this host or another): nothing to import, nothing changes.
    before = dict(records.rows)
    DatabaseStore(USER, DEVICE, records, KEY, legacy_folder=tmp_path)
    assert records.rows == before

    # The device moved on in the database; a file left behind (a crash before the rename, a backup
    # copied back) never takes it back to its old state.
    account = store.load_account()
    account.generate_one_time_keys(3)
    store.save_account(account)
    legacy.with_name(legacy.name + ".migrated").rename(legacy)
    again = DatabaseStore(USER, DEVICE, records, KEY, legacy_folder=tmp_path)
    assert again.load_account().one_time_keys == account.one_time_keys
    assert not legacy.exists()
