"""One account's end-to-end encryption device: Olm and Megolm through matrix-nio and vodozemac.

Only the sync host holding the account's lease opens it (one owner per device, see ARCHITECTURE),
so nothing else ever reads or writes the crypto store. The store is nio's SQLite file in a folder of
its own per account; its pickles are encrypted with the account's random pickle key, which is itself
encrypted at rest with the workspace's master key. We feed nio the /sync body we fetched ourselves,
reduced to what crypto needs, and never let it fetch or store sync tokens.
"""

import logging
import os
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
from nio import (
    AsyncClient,
    AsyncClientConfig,
    EncryptionError,
    ErrorResponse,
    ForwardedRoomKeyEvent,
    JoinedMembersError,
    LocalProtocolError,
    MegolmEvent,
    RoomKeyEvent,
    SyncResponse,
)
from nio.crypto import ENCRYPTION_ENABLED, InboundGroupSession
from nio.rooms import MatrixRoom

from accounts.matrix import key_backup, sync_api
from accounts.matrix.cross_signing import (
    CrossSigningKeys,
    SigningKey,
    canonical_json,
    public_key_of,
    verify_signature,
)
from accounts.matrix.errors import HomeserverUnreachable, MatrixError, TokenInvalid
from accounts.matrix.http import quote
from accounts.matrix.key_backup import BackupKey

log = logging.getLogger(__name__)

MEGOLM = "m.megolm.v1.aes-sha2"


class CryptoUnavailable(MatrixError):
    """The encryption machinery could not be opened (no vodozemac, or an unreadable store)."""


@dataclass(frozen=True)
class Decrypted:
    """A room event as its sender wrote it: the envelope's ids with the clear type and content."""

    event: dict[str, Any]
    verified: bool


@dataclass(frozen=True)
class Undecrypted:
    """Why an encrypted event stays unreadable for now ("missing_key" or "corrupt")."""

    reason: str
    session_id: str


@dataclass
class Absorbed:
    """What one /sync changed for crypto: decrypted timeline events and the keys that arrived."""

    results: dict[str, Decrypted | Undecrypted] = field(default_factory=dict)
    keys_arrived: set[tuple[str, str]] = field(default_factory=set)  # (room id, session id)
    withheld: list["Withheld"] = field(default_factory=list)


@dataclass(frozen=True)
class Withheld:
    """A sender's device refused us a room key (m.room_key.withheld), with the spec's code."""

    room_id: str
    session_id: str
    code: str
    reason: str


@dataclass(frozen=True)
class KnownDevice:
    """A device we encrypt for, with what we know of its trust."""

    user_id: str
    device_id: str
    ed25519: str
    verified: bool  # verified by this person (emoji comparison)
    cross_signed: bool  # signed by its owner's self-signing key, itself signed by their master


@dataclass(frozen=True)
class RoomEvents:
    """The validated state and timeline events of one joined room in a /sync response."""

    state: list[dict]
    timeline: list[dict]


def is_encrypted_event(event: dict) -> bool:
    content = event.get("content")
    return (
        event.get("type") == "m.room.encrypted"
        and isinstance(content, dict)
        and content.get("algorithm") == MEGOLM
    )


class CryptoDevice:
    """The Olm machine of one Matrix device, driven by the host's sync loop and outbox."""

    def __init__(
        self,
        *,
        homeserver_url: str,
        user_id: str,
        device_id: str,
        access_token: str,
        pickle_key: str,
        store_dir: Path,
    ) -> None:
        self.user_id = user_id
        self.device_id = device_id
        self.store_dir = store_dir
        self._token = access_token
        self._backup: tuple[str, BackupKey] | None = None  # (version, key) once in use
        self._backed_up: set[str] = set()  # session ids uploaded by this owner
        self._not_in_backup: set[str] = set()  # session ids the backup did not have
        self._client = AsyncClient(
            homeserver_url,
            user_id,
            device_id=device_id,
            store_path=str(store_dir),
            config=AsyncClientConfig(
                encryption_enabled=True,
                store_sync_tokens=False,
                pickle_key=pickle_key,
                max_limit_exceeded=3,
                max_timeouts=3,
                request_timeout=30,
            ),
        )

    async def open(self, http: aiohttp.ClientSession) -> None:
        """Load (or create) the device's Olm account and publish its keys if the server needs them."""
        if not ENCRYPTION_ENABLED:
            raise CryptoUnavailable("End-to-end encryption needs matrix-nio[e2e] (vodozemac).")
        self.store_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.store_dir, 0o700)
        self._client.client_session = http  # the host's pool, shared by all its accounts
        try:
            self._client.restore_login(self.user_id, self.device_id, self._token)
        except Exception as error:  # a store nio cannot read: say so, do not guess
            raise CryptoUnavailable(f"The crypto store could not be opened: {error}") from error
        if self._client.olm is None:
            raise CryptoUnavailable("The crypto store could not be opened.")
        await self.housekeeping()

    def use_access_token(self, token: str) -> None:
        self._token = token
        self._client.access_token = token

    @property
    def client(self) -> AsyncClient:
        """The nio client, for the verification module next door (same boundary)."""
        return self._client

    @property
    def identity_keys(self) -> dict[str, str]:
        return dict(self._client.olm.account.identity_keys)

    async def absorb_sync(
        self,
        raw: dict[str, Any],
        rooms: dict[str, RoomEvents],
        encrypted_room_ids: set[str],
    ) -> Absorbed:
        """Feed one /sync to the Olm machine: to-device messages (room keys, key requests),
        device list changes, one-time key counts and the membership of encrypted rooms; then
        decrypt the encrypted timeline events. Plain rooms are not given to nio at all."""
        crypto_rooms = {
            room_id: events
            for room_id, events in rooms.items()
            if room_id in encrypted_room_ids
            or any(e.get("type") == "m.room.encryption" for e in events.state + events.timeline)
        }
        response = SyncResponse.from_dict(_crypto_view(raw, crypto_rooms))
        absorbed = Absorbed(withheld=withheld_notices(raw))
        if isinstance(response, ErrorResponse):
            log.warning("sync for %s not understood by nio: %s", self.user_id, response)
        else:
            await self._client.receive_response(response)
            for event in response.to_device_events:
                if isinstance(event, (RoomKeyEvent, ForwardedRoomKeyEvent)):
                    absorbed.keys_arrived.add((event.room_id, event.session_id))
            self._track_changed_devices(raw)
        for room_id, events in crypto_rooms.items():
            for event in events.timeline:
                if is_encrypted_event(event):
                    absorbed.results[event["event_id"]] = await self.decrypt_or_restore(
                        room_id, event
                    )
        await self.housekeeping()
        await self.back_up_new_sessions()
        return absorbed

    async def decrypt_or_restore(
        self, room_id: str, event: dict[str, Any]
    ) -> Decrypted | Undecrypted:
        """Decrypt, fetching the room key from the key backup first when we lack it."""
        result = self.decrypt(room_id, event)
        if (
            isinstance(result, Undecrypted)
            and result.reason == "missing_key"
            and await self.restore_from_backup(room_id, result.session_id)
        ):
            result = self.decrypt(room_id, event)
        return result

    def _track_changed_devices(self, raw: dict[str, Any]) -> None:
        """nio only notices device changes of members of rooms it holds in memory; after a restart
        that is none, so changes of anyone we already track are queued for a key query too."""
        lists = raw.get("device_lists")
        changed = lists.get("changed") if isinstance(lists, dict) else None
        if isinstance(changed, list):
            tracked = set(self._client.olm.device_store.users)
            self._client.olm.add_changed_users({u for u in changed if u in tracked})

    def decrypt(self, room_id: str, event: dict[str, Any]) -> Decrypted | Undecrypted:
        """Decrypt one stored or fresh m.room.encrypted event (Megolm)."""
        content = event.get("content") if isinstance(event.get("content"), dict) else {}
        session_id = str(content.get("session_id", ""))[:255]
        parsed = MegolmEvent.from_dict(event)
        if not isinstance(parsed, MegolmEvent):
            return Undecrypted("corrupt", session_id)
        parsed.room_id = room_id
        try:
            clear = self._client.olm.decrypt_megolm_event(parsed, room_id)
        except EncryptionError as error:
            missing = "no session found" in str(error)
            return Undecrypted("missing_key" if missing else "corrupt", session_id)
        source = getattr(clear, "source", None)
        if not isinstance(source, dict) or not isinstance(source.get("type"), str):
            return Undecrypted("corrupt", session_id)
        clear_content = source.get("content") if isinstance(source.get("content"), dict) else {}
        envelope_relation = content.get("m.relates_to")
        if "m.relates_to" not in clear_content and isinstance(envelope_relation, dict):
            clear_content = {**clear_content, "m.relates_to": envelope_relation}
        merged = {**event, "type": source["type"], "content": clear_content}
        return Decrypted(merged, verified=bool(getattr(clear, "verified", False)))

    async def request_key(
        self, room_id: str, event: dict[str, Any], *, again: bool = False
    ) -> None:
        """Ask our user's other devices for a missing room key: once per session, or `again`
        (a device that was offline or did not know us yet may answer this time)."""
        parsed = MegolmEvent.from_dict(event)
        if not isinstance(parsed, MegolmEvent):
            return
        parsed.room_id = room_id
        if again:
            self._client.olm.outgoing_key_requests.pop(parsed.session_id, None)
        try:
            await self._client.request_room_key(parsed)
        except LocalProtocolError:
            pass  # already requested
        except (aiohttp.ClientError, TimeoutError, OSError):
            log.info("key request for %s not sent; retried on the next sync", parsed.session_id)

    async def encrypt(
        self,
        room_id: str,
        event_type: str,
        content: dict[str, Any],
        settings: dict[str, Any] | None = None,
    ) -> tuple[str, dict[str, Any]]:
        """Encrypt an event for the room's members' devices, sharing (or rotating) the room key
        first when needed, and when the room's m.room.encryption `settings` ask for it
        (rotation_period_ms, rotation_period_msgs). Relations stay in the clear so servers can
        aggregate them."""
        client = self._client
        room = client.rooms.get(room_id)
        if room is None:
            room = client.rooms[room_id] = MatrixRoom(room_id, self.user_id, encrypted=True)
        room.encrypted = True
        if not room.members_synced:
            members = await client.joined_members(room_id)
            if isinstance(members, JoinedMembersError):
                raise MatrixError(f"The room's members could not be loaded: {members.message}")
        if client.should_query_keys:
            await self._checked(client.keys_query())
        _apply_rotation(client.olm.outbound_group_sessions.get(room_id), settings)
        if client.olm.should_share_group_session(room_id):
            await self._share_room_key(room_id)
            _apply_rotation(client.olm.outbound_group_sessions.get(room_id), settings)
        wire = client.encrypt(room_id, event_type, content)
        await self.back_up_new_sessions()  # a fresh room key of ours goes to the backup at once
        return wire

    async def _share_room_key(self, room_id: str) -> None:
        client = self._client
        waiting = client.sharing_session.get(room_id)
        if waiting is not None:
            await waiting.wait()
            return
        try:
            await client.share_group_session(room_id, ignore_unverified_devices=True)
        except (aiohttp.ClientError, TimeoutError, OSError) as error:
            raise HomeserverUnreachable() from error

    def forget_room_members(self, room_id: str) -> None:
        """Membership changed outside nio's view: reload members (and rotate) before the next send."""
        room = self._client.rooms.get(room_id)
        if room is not None:
            room.members_synced = False

    async def housekeeping(self) -> None:
        """What nio's sync_forever would do between syncs: publish one-time keys, fetch changed
        device lists, claim keys for broken sessions, send queued to-device messages."""
        client = self._client
        try:
            if client.should_upload_keys:
                await self._checked(client.keys_upload())
            if client.should_query_keys:
                await self._checked(client.keys_query())
            if client.should_claim_keys:
                await self._checked(client.keys_claim(client.get_users_for_key_claiming()))
            if client.outgoing_to_device_messages:
                await client.send_to_device_messages()
        except (aiohttp.ClientError, TimeoutError, OSError):
            log.info("crypto housekeeping for %s deferred: homeserver unreachable", self.user_id)

    async def _checked(self, call) -> None:
        response = await call
        if isinstance(response, ErrorResponse):
            log.warning("crypto request for %s refused: %s", self.user_id, response)

    async def ensure_cross_signed(self, stored: CrossSigningKeys | None, save) -> str:
        """Make our device cross-signed by its owner: bootstrap the account's cross-signing keys
        when it has none (`save` is awaited with fresh keys before they are uploaded, so they are
        never lost), then sign our device with the self-signing key if it is not yet.

        Returns "signed", "foreign" (another client owns the account's cross-signing keys: our
        device is trusted once the person verifies it from there) or "needs_auth" (the homeserver
        wants interactive authentication for the first upload)."""
        own = await self._query_own_keys()
        server_master = public_key_of(own.get("master_keys", {}).get(self.user_id))
        if not server_master:
            keys = stored or CrossSigningKeys.generate()
            if stored is None:
                await save(keys)
            if not await self._upload_cross_signing_keys(keys):
                return "needs_auth"
        elif stored is not None and stored.master.public == server_master:
            keys = stored
        else:
            # Another client holds the keys: once the person verified us from it, it signed us.
            signed = owner_signed_devices(own)
            return "signed" if (self.user_id, self.device_id) in signed else "foreign"
        device = own.get("device_keys", {}).get(self.user_id, {}).get(self.device_id)
        if not isinstance(device, dict):
            raise MatrixError("The homeserver does not list this device's keys.")
        if not verify_signature(device, self.user_id, keys.self_signing.public):
            await self._post(
                "/_matrix/client/v3/keys/signatures/upload",
                {self.user_id: {self.device_id: keys.self_signing.sign(device, self.user_id)}},
            )
        return "signed"

    async def ensure_backup(
        self, stored: BackupKey | None, save, master: SigningKey | None = None
    ) -> str:
        """Use the account's server-side key backup, creating it when there is none (`save` is
        awaited with a fresh key before the backup exists). Returns its version, or "" when the
        account's backup belongs to a key we do not hold (another client made it)."""
        try:
            info = await self._request("GET", "/_matrix/client/v3/room_keys/version")
        except MatrixError as error:
            if error.errcode != "M_NOT_FOUND":
                raise
            info = None
        if info is not None:
            auth = info.get("auth_data") if isinstance(info.get("auth_data"), dict) else {}
            version = info.get("version")
            if (
                stored is not None
                and info.get("algorithm") == key_backup.ALGORITHM
                and auth.get("public_key") == stored.public
                and isinstance(version, str)
            ):
                self._backup = (version, stored)
                await self.back_up_new_sessions()
                return version
            return ""
        key = stored or BackupKey.generate()
        if stored is None:
            await save(key)
        auth_data: dict[str, Any] = {"public_key": key.public}
        auth_data["signatures"] = {
            self.user_id: {
                f"ed25519:{self.device_id}": self._client.olm.account.sign(
                    canonical_json(auth_data).decode()
                )
            }
        }
        if master is not None:
            auth_data = master.sign(auth_data, self.user_id)
        reply = await self._post(
            "/_matrix/client/v3/room_keys/version",
            {"algorithm": key_backup.ALGORITHM, "auth_data": auth_data},
        )
        version = reply.get("version")
        if not isinstance(version, str):
            raise MatrixError("The homeserver did not return the key backup's version.")
        self._backup = (version, key)
        await self.back_up_new_sessions()
        return version

    async def back_up_new_sessions(self) -> int:
        """Upload the room keys this owner has not backed up yet; returns how many."""
        if self._backup is None:
            return 0
        version, key = self._backup
        fresh = [s for s in self._client.olm.inbound_group_store if s.id not in self._backed_up]
        for start in range(0, len(fresh), 100):
            chunk = fresh[start : start + 100]
            rooms: dict[str, dict] = {}
            for session in chunk:
                data = key_backup.exported_session(
                    session_key=session.export_session(session.first_known_index),
                    sender_key=session.sender_key,
                    signing_key=session.ed25519,
                    forwarding_chain=list(session.forwarding_chain),
                )
                rooms.setdefault(session.room_id, {"sessions": {}})["sessions"][session.id] = {
                    "first_message_index": session.first_known_index,
                    "forwarded_count": len(session.forwarding_chain),
                    "is_verified": False,
                    "session_data": key_backup.session_data_for(key.public, data),
                }
            await self._request(
                "PUT",
                f"/_matrix/client/v3/room_keys/keys?version={quote(version)}",
                {"rooms": rooms},
            )
            self._backed_up.update(s.id for s in chunk)
        return len(fresh)

    async def restore_from_backup(self, room_id: str, session_id: str) -> bool:
        """Fetch one room key from the backup into the store; True when it is now here."""
        if self._backup is None or not session_id or session_id in self._not_in_backup:
            return False
        version, key = self._backup
        path = (
            f"/_matrix/client/v3/room_keys/keys/{quote(room_id)}/{quote(session_id)}"
            f"?version={quote(version)}"
        )
        try:
            entry = await self._request("GET", path)
        except MatrixError as error:
            if error.errcode == "M_NOT_FOUND":
                self._not_in_backup.add(session_id)
                return False
            raise
        data = key.decrypt(entry.get("session_data") or {})
        if data is None or not key_backup.is_usable_session(data):
            self._not_in_backup.add(session_id)
            return False
        try:
            session = InboundGroupSession.import_session(
                data["session_key"],
                data["sender_claimed_keys"]["ed25519"],
                data["sender_key"],
                room_id,
                [c for c in data.get("forwarding_curve25519_key_chain", []) if isinstance(c, str)],
            )
        except Exception:  # vodozemac refuses a malformed key
            self._not_in_backup.add(session_id)
            return False
        if session.id != session_id:
            self._not_in_backup.add(session_id)
            return False
        olm = self._client.olm
        if olm.inbound_group_store.add(session):
            olm.store.save_inbound_group_session(session)
        self._backed_up.add(session_id)
        return True

    def device_snapshot(self) -> frozenset[tuple[str, str, str, bool]]:
        """What nio knows of other devices now (cheap; compared to notice changes)."""
        return frozenset(
            (d.user_id, d.id, d.ed25519, d.verified)
            for d in self._client.olm.device_store
            if not d.deleted and not (d.user_id == self.user_id and d.id == self.device_id)
        )

    async def known_devices(self) -> list[KnownDevice]:
        """Every device nio tracks, with whether its owner cross-signed it (checked here from the
        homeserver's keys: nio itself knows nothing of cross-signing)."""
        devices = [
            d
            for d in self._client.olm.device_store
            if not d.deleted and not (d.user_id == self.user_id and d.id == self.device_id)
        ]
        users = sorted({d.user_id for d in devices})
        signed: set[tuple[str, str]] = set()
        for start in range(0, len(users), 100):
            keys = await self._post(
                "/_matrix/client/v3/keys/query",
                {"device_keys": {u: [] for u in users[start : start + 100]}},
            )
            signed |= owner_signed_devices(keys)
        return [
            KnownDevice(d.user_id, d.id, d.ed25519, d.verified, (d.user_id, d.id) in signed)
            for d in devices
        ]

    async def cross_sign_own_device(self, keys: CrossSigningKeys, device_id: str) -> bool:
        """Sign another device of ours (just verified with emoji) with the self-signing key, so
        every client that trusts the person's identity trusts that device too."""
        own = await self._query_own_keys()
        device = own.get("device_keys", {}).get(self.user_id, {}).get(device_id)
        if not isinstance(device, dict):
            return False
        if verify_signature(device, self.user_id, keys.self_signing.public):
            return True
        await self._post(
            "/_matrix/client/v3/keys/signatures/upload",
            {self.user_id: {device_id: keys.self_signing.sign(device, self.user_id)}},
        )
        return True

    async def _query_own_keys(self) -> dict[str, Any]:
        return await self._post(
            "/_matrix/client/v3/keys/query", {"device_keys": {self.user_id: []}}
        )

    async def _upload_cross_signing_keys(self, keys: CrossSigningKeys) -> bool:
        device_signature = (
            f"ed25519:{self.device_id}",
            self._client.olm.account.sign(
                canonical_json(keys.master_key_object(self.user_id)).decode()
            ),
        )
        body = keys.upload_body(self.user_id, device_signature)
        try:
            await self._post("/_matrix/client/v3/keys/device_signing/upload", body)
        except MatrixError as error:
            if error.status == 401 and not isinstance(error, TokenInvalid):  # UIA demanded
                return False
            raise
        return True

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return await self._request("POST", path, body)

    async def _request(
        self, method: str, path: str, body: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        return await sync_api.request_json(
            self._client.client_session,
            method,
            f"{self._client.homeserver}{path}",
            self._token,
            30,
            body=body,
        )

    async def close(self) -> None:
        """Let go of the store; the shared HTTP pool belongs to the host."""
        self._client.client_session = None
        store = self._client.store
        database = getattr(store, "database", None)
        if database is not None:
            database.close()


def _crypto_view(raw: dict[str, Any], rooms: dict[str, RoomEvents]) -> dict[str, Any]:
    """The parts of a /sync body the Olm machine needs, with only events that passed our checks
    (nio would reject the whole response for one malformed event)."""

    def section(name: str) -> list[dict]:
        value = raw.get(name)
        events = value.get("events") if isinstance(value, dict) else None
        return [e for e in events if _is_to_device(e)] if isinstance(events, list) else []

    lists = raw.get("device_lists") if isinstance(raw.get("device_lists"), dict) else {}
    counts = raw.get("device_one_time_keys_count")
    return {
        "next_batch": raw.get("next_batch", ""),
        "to_device": {"events": section("to_device")},
        "device_lists": {
            "changed": [u for u in lists.get("changed") or [] if isinstance(u, str)],
            "left": [u for u in lists.get("left") or [] if isinstance(u, str)],
        },
        "device_one_time_keys_count": {
            k: v
            for k, v in (counts if isinstance(counts, dict) else {}).items()
            if isinstance(v, int)
        },
        "rooms": {
            "join": {
                room_id: {
                    "state": {"events": events.state},
                    "timeline": {
                        "events": [e for e in events.timeline if not is_encrypted_event(e)],
                        "limited": False,
                    },
                    "ephemeral": {"events": []},
                    "account_data": {"events": []},
                }
                for room_id, events in rooms.items()
            },
            "invite": {},
            "leave": {},
        },
    }


def _is_to_device(event: Any) -> bool:
    return (
        isinstance(event, dict)
        and isinstance(event.get("type"), str)
        and isinstance(event.get("sender"), str)
        and isinstance(event.get("content"), dict)
    )


def owner_signed_devices(keys_query: dict[str, Any]) -> set[tuple[str, str]]:
    """(user, device) pairs whose device key carries a valid signature of the owner's
    self-signing key, which itself is signed by the owner's master key."""
    signed = set()
    devices = (
        keys_query.get("device_keys") if isinstance(keys_query.get("device_keys"), dict) else {}
    )
    masters = keys_query.get("master_keys") or {}
    self_signing = keys_query.get("self_signing_keys") or {}
    for user_id, user_devices in devices.items():
        master_key = public_key_of(masters.get(user_id))
        ssk = self_signing.get(user_id)
        ssk_key = public_key_of(ssk)
        if not (master_key and ssk_key and verify_signature(ssk, user_id, master_key)):
            continue
        for device_id, device in (user_devices or {}).items():
            if isinstance(device, dict) and verify_signature(device, user_id, ssk_key):
                signed.add((user_id, device_id))
    return signed


WITHHELD = ("m.room_key.withheld", "org.matrix.room_key.withheld")


def withheld_notices(raw: dict[str, Any]) -> list[Withheld]:
    """Megolm key refusals in a /sync body's to-device section."""
    section = raw.get("to_device")
    events = section.get("events") if isinstance(section, dict) else None
    found = []
    for event in events if isinstance(events, list) else []:
        if not _is_to_device(event) or event["type"] not in WITHHELD:
            continue
        content = event["content"]
        room_id, session_id = content.get("room_id"), content.get("session_id")
        code, reason = content.get("code"), content.get("reason", "")
        if content.get("algorithm") != MEGOLM or not all(
            isinstance(v, str) and v for v in (room_id, session_id, code)
        ):
            continue
        found.append(
            Withheld(
                room_id[:255],
                session_id[:255],
                code[:64],
                reason[:255] if isinstance(reason, str) else "",
            )
        )
    return found


def _apply_rotation(session, settings: dict[str, Any] | None) -> None:
    """Make an outbound room key expire as the room asks (nio's defaults: a week, 100 messages)."""
    if session is None or not settings:
        return
    period_ms, messages = settings.get("rotation_period_ms"), settings.get("rotation_period_msgs")
    if isinstance(period_ms, int) and not isinstance(period_ms, bool) and period_ms > 0:
        session.max_age = timedelta(milliseconds=min(period_ms, 7 * 24 * 3600 * 1000))
    if isinstance(messages, int) and not isinstance(messages, bool) and messages > 0:
        session.max_messages = min(messages, 100)
