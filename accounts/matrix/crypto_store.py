"""nio's crypto store kept as records in the project database, so any sync host can take an account
over and no host keeps anything on its own disk.

`DatabaseStore` speaks nio's MatrixStore interface (Olm account, Olm sessions, Megolm inbound
sessions, device keys and trust, encrypted rooms, outgoing key requests) and turns each save into
records `(kind, key, value)` for a `CryptoRecords` backend (rooms/sync/crypto_records.py: the
database, every write fenced by the account's lease in the same transaction). Pickles stay encrypted
with the account's pickle key, exactly as nio writes them. nio keeps no outbound Megolm session in
its store: a new owner shares a fresh room key, as after any restart.

A device that still has nio's SQLite file from before (`legacy_folder`) is imported on first open,
and the file is kept, renamed, as a backup (`import_legacy_store`).
"""

import json
import logging
from datetime import datetime
from pathlib import Path
from typing import Protocol

from nio.crypto import (
    DeviceStore,
    GroupSessionStore,
    InboundGroupSession,
    OlmAccount,
    OlmDevice,
    OutgoingKeyRequest,
    Session,
    SessionStore,
    TrustState,
)
from nio.store import DefaultStore, MatrixStore

log = logging.getLogger(__name__)

Record = tuple[str, str, str]  # kind, key, value

ACCOUNT, OLM, MEGOLM, DEVICE, TRUST, ROOM, KEY_REQUEST = (
    "account",
    "olm",
    "megolm",
    "device",
    "trust",
    "room",
    "key_request",
)


class CryptoRecords(Protocol):
    """Where one device's records live. `write` is all or nothing, and refuses (raises) when the
    writer no longer owns the device."""

    def load(self, kind: str) -> dict[str, str]:
        """Every record of a kind, key -> value."""

    def get(self, kind: str, key: str) -> str | None: ...

    def write(self, put: list[Record], delete: list[tuple[str, str]] | None = None) -> None: ...


class MemoryRecords:
    """Records in a dict: for tests of the store's logic."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], str] = {}

    def load(self, kind: str) -> dict[str, str]:
        return {key: value for (k, key), value in self.rows.items() if k == kind}

    def get(self, kind: str, key: str) -> str | None:
        return self.rows.get((kind, key))

    def write(self, put: list[Record], delete: list[tuple[str, str]] | None = None) -> None:
        for kind, key in delete or []:
            self.rows.pop((kind, key), None)
        for kind, key, value in put:
            self.rows[(kind, key)] = value


def _key(*parts: str) -> str:
    return json.dumps(list(parts))


class DatabaseStore(MatrixStore):
    """nio's store interface on `CryptoRecords`; nio calls it synchronously from the Olm machine."""

    def __init__(
        self,
        user_id: str,
        device_id: str,
        records: CryptoRecords,
        pickle_key: str,
        legacy_folder: Path | None = None,
    ) -> None:  # no super().__init__: MatrixStore's would open an SQLite file
        self.user_id = user_id
        self.device_id = device_id
        self.records = records
        self.pickle_key = pickle_key
        if legacy_folder is not None:
            import_legacy_store(self, legacy_folder)

    # Olm account

    def load_account(self) -> OlmAccount | None:
        raw = self.records.get(ACCOUNT, "")
        if raw is None:
            return None
        data = json.loads(raw)
        account = OlmAccount.from_pickle(data["pickle"].encode(), self.pickle_key, data["shared"])
        if account.upgrade_pickle:
            account.upgrade_pickle = False
            self.save_account(account)
        return account

    def account_record(self, account: OlmAccount) -> Record:
        pickle = account.pickle(self.pickle_key).decode()
        return ACCOUNT, "", json.dumps({"pickle": pickle, "shared": bool(account.shared)})

    def save_account(self, account: OlmAccount) -> None:
        self.records.write([self.account_record(account)])

    # Olm sessions

    def load_sessions(self) -> SessionStore:
        store = SessionStore()
        for raw in self.records.load(OLM).values():
            data = json.loads(raw)
            session = Session.from_pickle(
                data["pickle"].encode(),
                datetime.fromisoformat(data["created"]),
                self.pickle_key,
                datetime.fromisoformat(data["used"]),
            )
            store.add(data["sender_key"], session)
            if session.upgrade_pickle:
                session.upgrade_pickle = False
                self.save_session(data["sender_key"], session)
        return store

    def session_record(self, curve_key: str, session: Session) -> Record:
        value = {
            "sender_key": curve_key,
            "pickle": session.pickle(self.pickle_key).decode(),
            "created": session.creation_time.isoformat(),
            "used": session.use_time.isoformat(),
        }
        return OLM, session.id, json.dumps(value)

    def save_session(self, curve_key: str, session: Session) -> None:
        self.records.write([self.session_record(curve_key, session)])

    # Megolm inbound sessions

    def load_inbound_group_sessions(self) -> GroupSessionStore:
        store = GroupSessionStore()
        for raw in self.records.load(MEGOLM).values():
            data = json.loads(raw)
            session = InboundGroupSession.from_pickle(
                data["pickle"].encode(),
                data["fp_key"],
                data["sender_key"],
                data["room_id"],
                self.pickle_key,
                data["chain"],
            )
            store.add(session)
            if session.upgrade_pickle:
                session.upgrade_pickle = False
                self.save_inbound_group_session(session)
        return store

    def inbound_group_session_record(self, session: InboundGroupSession) -> Record:
        value = {
            "pickle": session.pickle(self.pickle_key).decode(),
            "fp_key": session.ed25519,
            "sender_key": session.sender_key,
            "room_id": session.room_id,
            "chain": list(session.forwarding_chain),
        }
        return MEGOLM, _key(session.room_id, session.sender_key, session.id), json.dumps(value)

    def save_inbound_group_session(self, session: InboundGroupSession) -> None:
        self.records.write([self.inbound_group_session_record(session)])

    # Device keys and trust (trust is bound to the device's ed25519 key, as in nio's DefaultStore)

    def load_device_keys(self) -> DeviceStore:
        store = DeviceStore()
        trust = self.records.load(TRUST)
        for key, raw in self.records.load(DEVICE).items():
            data = json.loads(raw)
            user_id, device_id = json.loads(key)
            device = OlmDevice(
                user_id,
                device_id,
                data["keys"],
                display_name=data["display_name"],
                deleted=data["deleted"],
            )
            device.trust_state = self._trust_of(device, trust.get(key))
            store.add(device)
        return store

    @staticmethod
    def _trust_of(device: OlmDevice, raw: str | None) -> TrustState:
        if raw is None:
            return TrustState.unset
        data = json.loads(raw)
        if data["ed25519"] != device.keys.get("ed25519"):
            return TrustState.unset  # the device's keys changed since it was trusted
        return TrustState(data["state"])

    @staticmethod
    def device_record(device: OlmDevice) -> Record:
        value = {
            "keys": dict(device.keys),
            "display_name": device.display_name,
            "deleted": bool(device.deleted),
        }
        return DEVICE, _key(device.user_id, device.id), json.dumps(value)

    def save_device_keys(self, device_keys: dict[str, dict[str, OlmDevice]]) -> None:
        rows = [self.device_record(d) for devices in device_keys.values() for d in devices.values()]
        if rows:
            self.records.write(rows)

    @staticmethod
    def trust_record(device: OlmDevice, state: TrustState) -> Record:
        value = {"ed25519": device.keys.get("ed25519"), "state": state.value}
        return TRUST, _key(device.user_id, device.id), json.dumps(value)

    def _trust(self, device: OlmDevice) -> TrustState:
        return self._trust_of(device, self.records.get(TRUST, _key(device.user_id, device.id)))

    def _set_trust(self, devices: list[OlmDevice], state: TrustState) -> None:
        self.records.write([self.trust_record(d, state) for d in devices])
        for device in devices:
            device.trust_state = state

    def _change_trust(self, device: OlmDevice, state: TrustState) -> bool:
        if self._trust(device) == state:
            device.trust_state = state
            return False
        self._set_trust([device], state)
        return True

    def _clear_trust(self, device: OlmDevice, state: TrustState) -> bool:
        if self._trust(device) != state:
            return False
        self._set_trust([device], TrustState.unset)
        return True

    def verify_device(self, device: OlmDevice) -> bool:
        return self._change_trust(device, TrustState.verified)

    def unverify_device(self, device: OlmDevice) -> bool:
        return self._clear_trust(device, TrustState.verified)

    def blacklist_device(self, device: OlmDevice) -> bool:
        return self._change_trust(device, TrustState.blacklisted)

    def unblacklist_device(self, device: OlmDevice) -> bool:
        return self._clear_trust(device, TrustState.blacklisted)

    def ignore_device(self, device: OlmDevice) -> bool:
        return self._change_trust(device, TrustState.ignored)

    def unignore_device(self, device: OlmDevice) -> bool:
        return self._clear_trust(device, TrustState.ignored)

    def ignore_devices(self, devices: list[OlmDevice]) -> None:
        if devices:
            self._set_trust(list(devices), TrustState.ignored)

    def is_device_verified(self, device: OlmDevice) -> bool:
        return self._trust(device) == TrustState.verified

    def is_device_blacklisted(self, device: OlmDevice) -> bool:
        return self._trust(device) == TrustState.blacklisted

    def is_device_ignored(self, device: OlmDevice) -> bool:
        return self._trust(device) == TrustState.ignored

    # Encrypted rooms, outgoing key requests, sync tokens (ours are in SyncState, never here)

    def load_encrypted_rooms(self) -> set[str]:
        return set(self.records.load(ROOM))

    def save_encrypted_rooms(self, rooms) -> None:
        rows = [(ROOM, room_id, "") for room_id in rooms]
        if rows:
            self.records.write(rows)

    def delete_encrypted_room(self, room: str) -> None:
        self.records.write([], delete=[(ROOM, room)])

    def load_outgoing_key_requests(self) -> dict[str, OutgoingKeyRequest]:
        requests = {}
        for request_id, raw in self.records.load(KEY_REQUEST).items():
            data = json.loads(raw)
            requests[request_id] = OutgoingKeyRequest(
                request_id, data["session_id"], data["room_id"], data["algorithm"]
            )
        return requests

    @staticmethod
    def key_request_record(request: OutgoingKeyRequest) -> Record:
        value = {
            "session_id": request.session_id,
            "room_id": request.room_id,
            "algorithm": request.algorithm,
        }
        return KEY_REQUEST, request.request_id, json.dumps(value)

    def add_outgoing_key_request(self, key_request: OutgoingKeyRequest) -> None:
        self.records.write([self.key_request_record(key_request)])

    def remove_outgoing_key_request(self, key_request: OutgoingKeyRequest) -> None:
        self.records.write([], delete=[(KEY_REQUEST, key_request.request_id)])

    def save_sync_token(self, token: str) -> None:
        pass

    def load_sync_token(self) -> str | None:
        return None


def legacy_store_file(folder: Path, user_id: str, device_id: str) -> Path:
    """Where nio's DefaultStore kept this device's SQLite file."""
    return folder / f"{user_id}_{device_id}.db"


def import_legacy_store(store: DatabaseStore, folder: Path) -> bool:
    """Copy a device's old nio SQLite store (and its trust files) into `store` in one write, unless
    the database already holds the device's Olm account; then rename the file to `.db.migrated`
    so it is kept as a backup and never imported twice. Returns whether rows were copied."""
    path = legacy_store_file(folder, store.user_id, store.device_id)
    if not path.is_file():
        return False
    copied = False
    if store.records.get(ACCOUNT, "") is None:
        old = DefaultStore(store.user_id, store.device_id, str(folder), store.pickle_key)
        try:
            rows = _legacy_rows(store, old)
        finally:
            old.database.close()
        if rows:
            store.records.write(rows)
            copied = True
    backup = path.with_name(path.name + ".migrated")
    try:
        path.rename(backup)
    except OSError as error:  # imported all the same; the database wins on every later open
        log.warning("the old crypto store %s could not be renamed: %s", path, error)
        return copied
    log.info(
        "crypto store of %s/%s imported into the database (%s); the old file is kept as %s",
        store.user_id,
        store.device_id,
        "copied" if copied else "nothing to copy",
        backup,
    )
    return copied


def _legacy_rows(store: DatabaseStore, old: DefaultStore) -> list[Record]:
    account = old.load_account()
    if account is None:
        return []
    rows = [store.account_record(account)]
    for curve_key, sessions in old.load_sessions().items():
        rows.extend(store.session_record(curve_key, session) for session in sessions)
    for session in old.load_inbound_group_sessions():
        rows.append(store.inbound_group_session_record(session))
    for device in old.load_device_keys():
        rows.append(store.device_record(device))
        if device.trust_state != TrustState.unset:
            rows.append(store.trust_record(device, device.trust_state))
    rows.extend((ROOM, room_id, "") for room_id in old.load_encrypted_rooms())
    rows.extend(store.key_request_record(r) for r in old.load_outgoing_key_requests().values())
    return rows
