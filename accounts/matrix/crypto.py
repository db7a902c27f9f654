"""One account's end-to-end encryption device: Olm and Megolm through matrix-nio and vodozemac.

Only the sync host holding the account's lease opens it (one owner per device, see ARCHITECTURE),
so nothing else ever reads or writes the crypto store, and every request passes the owner's fence
first (`Fence`): an owner that lost its lease stops touching it at once. The store is in the project
database (crypto_store.py, `CryptoRecords`), whose writes check the lease in their own transaction;
its pickles are encrypted with the account's random pickle key, which is itself encrypted at rest
with the workspace's master key. Nothing is kept on the host's disk.
We feed nio the /sync body we fetched ourselves, reduced to what crypto needs, and never let it
fetch or store sync tokens.
"""

import logging
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol

import aiohttp
from nio import (
    AsyncClient,
    AsyncClientConfig,
    EncryptionError,
    ErrorResponse,
    ForwardedRoomKeyEvent,
    JoinedMembersError,
    KeysUploadError,
    KeysUploadResponse,
    LocalProtocolError,
    MegolmEvent,
    RoomKeyEvent,
    SyncResponse,
)
from nio.api import Api
from nio.crypto import ENCRYPTION_ENABLED
from nio.rooms import MatrixRoom

from accounts.matrix import sync_api
from accounts.matrix.crypto_authenticity import Provenance, provenance
from accounts.matrix.crypto_backup import KeyBackup
from accounts.matrix.crypto_store import CryptoRecords, DatabaseStore
from accounts.matrix.crypto_trust import DeviceTrust
from accounts.matrix.errors import HomeserverUnreachable, MatrixError
from accounts.matrix.http import quote

log = logging.getLogger(__name__)

MEGOLM = "m.megolm.v1.aes-sha2"


class CryptoUnavailable(MatrixError):
    """The encryption machinery could not be opened (no vodozemac, or an unreadable store)."""


@dataclass(frozen=True)
class Decrypted:
    """A room event as its sender wrote it: the envelope's ids with the clear type and content."""

    event: dict[str, Any]
    verified: bool
    provenance: Provenance | None = None  # who sent it, as far as our device can tell


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
class RoomEvents:
    """The validated state and timeline events of one joined room in a /sync response."""

    state: list[dict]
    timeline: list[dict]


class Fence(Protocol):
    """The owner's lease as the device sees it (rooms/sync/fence.py): both raise once this owner
    may no longer use the device, and the device then writes and sends nothing more."""

    def check(self) -> None:
        """No I/O: raises once this owner's lease ran out by its own clock."""

    async def verify(self) -> None:
        """Before every request, absorbed sync and encryption: asks whether the lease is ours."""


class _Unfenced:
    def check(self) -> None:
        pass

    async def verify(self) -> None:
        pass


class _FencedClient(AsyncClient):
    """nio's client, asking the fence before every request it makes (key uploads, key claims and
    queries, to-device messages, room key shares)."""

    fence: Fence = _Unfenced()

    async def send(self, *args, **kwargs):
        await self.fence.verify()
        return await super().send(*args, **kwargs)


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
        records: CryptoRecords,
        legacy_store_dir: Path | None = None,
        fence: Fence | None = None,
    ) -> None:
        """`records`: where the store lives (fenced by the owner's lease); `legacy_store_dir`: the
        folder of the device's old nio SQLite file, imported into `records` on open if present."""
        self.user_id = user_id
        self.device_id = device_id
        self._token = access_token
        self._fence = fence or _Unfenced()

        def store(user_id: str, device_id: str, *_ignored) -> DatabaseStore:
            return DatabaseStore(user_id, device_id, records, pickle_key, legacy_store_dir)

        self._client = _FencedClient(
            homeserver_url,
            user_id,
            device_id=device_id,
            store_path="database",  # nio insists on one; DatabaseStore opens no file
            config=AsyncClientConfig(
                store=store,
                encryption_enabled=True,
                store_sync_tokens=False,
                pickle_key=pickle_key,
                max_limit_exceeded=3,
                max_timeouts=3,
                request_timeout=30,
            ),
        )
        self._client.fence = self._fence
        self.backup = KeyBackup(self)
        self.trust = DeviceTrust(self)

    async def open(self, http: aiohttp.ClientSession) -> None:
        """Load (or create) the device's Olm account and publish its keys if the server needs them."""
        if not ENCRYPTION_ENABLED:
            raise CryptoUnavailable("End-to-end encryption needs matrix-nio[e2e] (vodozemac).")
        self._client.client_session = http  # the host's pool, shared by all its accounts
        await self._fence.verify()  # loading a store may write to it (a new Olm account)
        try:
            self._client.restore_login(self.user_id, self.device_id, self._token)
        except Exception as error:  # a store nio cannot read: say so, do not guess
            self._fence.check()  # unless the lease was lost on the way: the owner stops instead
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
        await self._fence.verify()
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
        await self.backup.back_up_new_sessions()
        return absorbed

    async def decrypt_or_restore(
        self, room_id: str, event: dict[str, Any]
    ) -> Decrypted | Undecrypted:
        """Decrypt, fetching the room key from the key backup first when we lack it."""
        result = self.decrypt(room_id, event)
        if (
            isinstance(result, Undecrypted)
            and result.reason == "missing_key"
            and await self.backup.restore(room_id, result.session_id)
        ):
            result = self.decrypt(room_id, event)
        found = result.provenance if isinstance(result, Decrypted) else None
        if found is not None and not found.device_known and self._client.should_query_keys:
            # A device we had not heard of yet: ask for its keys before judging who sent it.
            await self.housekeeping()
            result = replace(
                result,
                provenance=provenance(self._client.olm, room_id, event, self.backup.restored),
            )
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
        return Decrypted(
            merged,
            verified=bool(getattr(clear, "verified", False)),
            provenance=provenance(self._client.olm, room_id, event, self.backup.restored),
        )

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
        await self._fence.verify()
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
        await self.backup.back_up_new_sessions()  # a fresh room key of ours, backed up at once
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

    async def load_members(self, room_id: str) -> list[dict[str, Any]]:
        """Everyone joined to an encrypted room, from the homeserver (lazy-loaded sync state lacks
        members who never spoke): nio learns them, so their devices are queried and counted, and
        their member events are returned for the room's state."""
        reply = await self.request(
            "GET", f"/_matrix/client/v3/rooms/{quote(room_id)}/members?membership=join"
        )
        chunk = reply.get("chunk") if isinstance(reply.get("chunk"), list) else []
        events = [
            e
            for e in chunk
            if isinstance(e, dict)
            and e.get("type") == "m.room.member"
            and isinstance(e.get("state_key"), str)
            and isinstance(e.get("event_id"), str)
            and isinstance(e.get("sender"), str)
            and isinstance(e.get("content"), dict)
            and e["content"].get("membership") == "join"
        ]
        client = self._client
        room = client.rooms.get(room_id)
        if room is None:
            room = client.rooms[room_id] = MatrixRoom(room_id, self.user_id, encrypted=True)
        room.encrypted = True
        for event in events:
            name = event["content"].get("displayname")
            room.add_member(event["state_key"], name if isinstance(name, str) else None, None)
        client.olm.update_tracked_users(room)
        await self.housekeeping()  # query the newly tracked people's devices now
        return events

    def knows_encrypted(self, room_id: str) -> bool:
        """Whether nio has seen this room's m.room.encryption (kept in its store)."""
        return room_id in self._client.encrypted_rooms

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
                await self._upload_keys()
            if client.should_query_keys:
                await self._checked(client.keys_query())
            if client.should_claim_keys:
                await self._checked(client.keys_claim(client.get_users_for_key_claiming()))
            if client.outgoing_to_device_messages:
                await client.send_to_device_messages()
        except (aiohttp.ClientError, TimeoutError, OSError):
            log.info("crypto housekeeping for %s deferred: homeserver unreachable", self.user_id)

    async def _upload_keys(self) -> None:
        """nio's keys_upload, with the account saved (fenced) between making the one-time keys and
        sending them. Else an owner that loses the account right after an upload leaves the next
        one an account that makes other keys under the same ids, which the homeserver refuses for
        good: the device would run out of one-time keys and colleagues could not reach it."""
        client = self._client
        keys = client.olm.share_keys()
        client.olm.save_account()
        method, path, data = Api.keys_upload(client.access_token, keys)
        response = await client._send(KeysUploadResponse, method, path, data)
        if isinstance(response, KeysUploadError) and "already exists" in response.message:
            # A store left in that state by an earlier version: give up the clashing ids (their
            # private halves are gone anyway) so the next upload carries fresh ones.
            log.warning("one-time keys of %s clash with published ones: made anew", self.user_id)
            client.olm.mark_keys_as_published()
            client.olm.save_account()
        elif isinstance(response, ErrorResponse):
            log.warning("crypto request for %s refused: %s", self.user_id, response)

    async def _checked(self, call) -> None:
        response = await call
        if isinstance(response, ErrorResponse):
            log.warning("crypto request for %s refused: %s", self.user_id, response)

    async def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return await self.request("POST", path, body)

    async def request(
        self, method: str, path: str, body: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        await self._fence.verify()
        return await sync_api.request_json(
            self._client.client_session,
            method,
            f"{self._client.homeserver}{path}",
            self._token,
            30,
            body=body,
        )

    async def close(self) -> None:
        """Let go of the HTTP pool, which belongs to the host (the store holds nothing open)."""
        self._client.client_session = None


def _crypto_view(raw: dict[str, Any], rooms: dict[str, RoomEvents]) -> dict[str, Any]:
    """The parts of a /sync body the Olm machine needs, with only events that passed our checks
    (nio would reject the whole response for one malformed event)."""

    lists = raw.get("device_lists") if isinstance(raw.get("device_lists"), dict) else {}
    counts = raw.get("device_one_time_keys_count")
    return {
        "next_batch": raw.get("next_batch", ""),
        "to_device": {"events": to_device_events(raw)},
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


def to_device_events(raw: dict[str, Any]) -> list[dict]:
    """The well-formed to-device messages of a /sync body (type, sender and content present)."""
    section = raw.get("to_device")
    events = section.get("events") if isinstance(section, dict) else None
    return [e for e in events if _is_to_device(e)] if isinstance(events, list) else []


def _is_to_device(event: Any) -> bool:
    return (
        isinstance(event, dict)
        and isinstance(event.get("type"), str)
        and isinstance(event.get("sender"), str)
        and isinstance(event.get("content"), dict)
    )


WITHHELD = ("m.room_key.withheld", "org.matrix.room_key.withheld")


def withheld_notices(raw: dict[str, Any]) -> list[Withheld]:
    """Megolm key refusals in a /sync body's to-device section."""
    found = []
    for event in to_device_events(raw):
        if event["type"] not in WITHHELD:
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
