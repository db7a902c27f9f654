"""A plain matrix-nio client for browser tests, driven synchronously from a thread of its own
(Playwright's sync API owns the test thread's event loop)."""

import asyncio
import threading
import time
from collections.abc import Callable
from pathlib import Path

from nio import (
    AsyncClient,
    AsyncClientConfig,
    RoomCreateResponse,
    RoomSendResponse,
    RoomVisibility,
)


class SyncPeer:
    """With `store_dir`, the peer has an Olm device of its own and reads and writes encrypted
    rooms like any other Matrix client."""

    def __init__(self, homeserver_url: str, creds, store_dir: Path | None = None) -> None:
        self.store_dir = store_dir
        self.user_id = creds.user_id
        self.localpart = creds.localpart
        self.backlog: list[tuple[str, dict]] = []
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.client = self.call(self._make_client(homeserver_url, creds))
        self.since = None
        self.since = self._sync(0).next_batch

    async def _make_client(self, homeserver_url: str, creds) -> AsyncClient:
        encrypted = self.store_dir is not None
        if encrypted:
            self.store_dir.mkdir(parents=True, exist_ok=True)
        client = AsyncClient(
            homeserver_url,
            creds.user_id,
            device_id=creds.device_id,
            store_path=str(self.store_dir) if encrypted else "",
            config=AsyncClientConfig(
                store_sync_tokens=False,
                encryption_enabled=encrypted,
                pickle_key="test-peer-key",
            ),
        )
        client.restore_login(creds.user_id, creds.device_id, creds.access_token)
        return client

    def _sync(self, timeout_ms: int):
        """One /sync, then what nio's sync_forever does for an encrypting client."""

        async def sync_and_keep_keys():
            response = await self.client.sync(timeout=timeout_ms, since=self.since)
            if self.client.olm is not None:
                if self.client.should_upload_keys:
                    await self.client.keys_upload()
                if self.client.should_query_keys:
                    await self.client.keys_query()
                if self.client.should_claim_keys:
                    await self.client.keys_claim(self.client.get_users_for_key_claiming())
                await self.client.send_to_device_messages()
            return response

        response = self.call(sync_and_keep_keys())
        self.since = response.next_batch
        return response

    def call(self, coro, timeout: float = 60.0):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def create_room(
        self, *, name: str, invite: list[str], public: bool = False, encrypted: bool = False
    ) -> str:
        visibility = RoomVisibility.public if public else RoomVisibility.private
        initial_state = (
            [
                {
                    "type": "m.room.encryption",
                    "state_key": "",
                    "content": {"algorithm": "m.megolm.v1.aes-sha2"},
                }
            ]
            if encrypted
            else []
        )
        response = self.call(
            self.client.room_create(
                name=name, invite=invite, visibility=visibility, initial_state=initial_state
            )
        )
        assert isinstance(response, RoomCreateResponse), response
        return response.room_id

    def send(self, room_id: str, body: str) -> str:
        self._sync(0)  # know the room's members (and their devices) before encrypting
        response = self.call(
            self.client.room_send(
                room_id,
                "m.room.message",
                {"msgtype": "m.text", "body": body},
                ignore_unverified_devices=True,
            )
        )
        assert isinstance(response, RoomSendResponse), response
        return response.event_id

    def send_event(self, room_id: str, event_type: str, content: dict) -> str:
        response = self.call(
            self.client.room_send(room_id, event_type, content, ignore_unverified_devices=True)
        )
        assert isinstance(response, RoomSendResponse), response
        return response.event_id

    def redact(self, room_id: str, event_id: str) -> None:
        self.call(self.client.room_redact(room_id, event_id))

    def wait_for_event(self, room_id: str, match: Callable[[dict], bool], timeout: float = 30.0):
        """The first event (raw source) in the room that `match` accepts, including events an
        earlier wait synced past without wanting them."""
        for index, (event_room, source) in enumerate(self.backlog):
            if event_room == room_id and match(source):
                return self.backlog.pop(index)[1]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.backlog.extend(
                (event_room, getattr(event, "source", None) or {})
                for event_room, event in self._sync_events()
            )
            for index, (event_room, source) in enumerate(self.backlog):
                if event_room == room_id and match(source):
                    return self.backlog.pop(index)[1]
        raise AssertionError(f"no matching event in {room_id} within {timeout:.0f}s")

    def typing(self, room_id: str, typing: bool = True) -> None:
        self.call(self.client.room_typing(room_id, typing, timeout=10000))

    def wait_for_typing(self, room_id: str, user_id: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            response = self._sync(1000)
            joined = response.rooms.join.get(room_id)
            for event in joined.ephemeral if joined else []:
                if user_id in (getattr(event, "users", None) or []):
                    return
        raise AssertionError(f"{user_id} never typed in {room_id} within {timeout:.0f}s")

    def read_up_to(self, room_id: str, event_id: str) -> None:
        self.call(self.client.room_read_markers(room_id, event_id, event_id))

    def join(self, room_id: str) -> None:
        self.call(self.client.join(room_id))

    def _sync_events(self) -> list[tuple[str, object]]:
        response = self._sync(1000)
        return [
            (room_id, event)
            for room_id, room in response.rooms.join.items()
            for event in room.timeline.events
        ]

    def wait_for_message(self, room_id: str, match: Callable[[str], bool], timeout: float = 30.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for event_room, event in self._sync_events():
                body = getattr(event, "body", None)
                if event_room == room_id and body is not None and match(body):
                    return event
        raise AssertionError(f"no matching message in {room_id} within {timeout:.0f}s")

    def wait_for_invite(self, timeout: float = 30.0) -> tuple[str, dict]:
        """The next invite: (room id, our own m.room.member content from the invite state)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            response = self._sync(1000)
            for room_id, info in response.rooms.invite.items():
                for event in info.invite_state:
                    if getattr(event, "state_key", None) == self.user_id:
                        return room_id, getattr(event, "content", None) or {}
        raise AssertionError(f"no invite within {timeout:.0f}s")

    def wait_for_member(self, room_id: str, user_id: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            response = self.call(self.client.joined_members(room_id))
            if any(m.user_id == user_id for m in getattr(response, "members", [])):
                return
            time.sleep(0.3)
        raise AssertionError(f"{user_id} did not join {room_id} within {timeout:.0f}s")

    def close(self) -> None:
        self.call(self.client.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)


def only_device_of(peer, user_id: str, exclude: str = ""):
    """The user's one device (but `exclude`), as the peer's Olm machine knows it after a key
    query."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        peer.client.olm.users_for_key_query.add(user_id)
        peer.call(peer.client.keys_query())
        devices = [
            d for d in peer.client.device_store.active_user_devices(user_id) if d.id != exclude
        ]
        if devices:
            return devices[0]
        time.sleep(0.5)
    raise AssertionError(f"{user_id} has no device with published keys")


def wait_for_sas(peer, transaction_id: str, state_check, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        peer._sync(500)
        sas = peer.client.key_verifications.get(transaction_id)
        if sas is not None and state_check(sas):
            return sas
    raise AssertionError(f"verification {transaction_id} did not get there in {timeout:.0f}s")
