"""The crypto store lives in the project database (issue 9): a stale owner's store write is refused
in the write's own transaction; a device's old nio SQLite file is imported on first open without
the device losing its identity or its keys; and a host on another machine, with an empty disk of
its own, takes an account over with its identity and decrypts."""

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connections
from django.utils import timezone
from nio import AsyncClient, AsyncClientConfig, RoomCreateResponse, RoomMessageText
from nio.crypto import OlmAccount

from accounts.matrix.crypto import CryptoDevice
from accounts.matrix.crypto_store import DatabaseStore, legacy_store_file
from accounts.models import CryptoStoreRecord, MatrixAccount
from rooms import services
from rooms.models import Room, SyncLease
from rooms.services import LeaseHandle
from rooms.sync.crypto_records import DatabaseRecords
from rooms.sync.fence import LeaseFence
from rooms.sync.leases import LeaseLost, lease_claim
from tests.integration.rooms.helpers import join, signed_in_account
from tests.integration.rooms.test_encryption import (
    ENCRYPTION,
    decrypted,
    encrypted_membership,
    encrypted_room,
    encrypting_peer,
    peer_reads,
    peer_send,
    running_host,
    sent,
    until,
)
from tests.integration.rooms.test_fencing import database_url, owner_of

pytestmark = pytest.mark.django_db(transaction=True)
ROOT = Path(__file__).resolve().parents[3]


def device_store(account: MatrixAccount, fence: LeaseFence | None = None) -> DatabaseStore:
    records = DatabaseRecords(account.pk, account.device_id, fence)
    return DatabaseStore(account.mxid, account.device_id, records, account.pickle_key)


def stored_identity(account: MatrixAccount) -> str | None:
    """The curve25519 identity key of the device's Olm account, as the database holds it."""
    olm = device_store(account).load_account()
    return None if olm is None else olm.identity_keys["curve25519"]


def test_a_store_write_checks_the_lease_in_its_own_transaction():
    user = get_user_model().objects.create_user("ana", password="irrelevant-password")
    account = MatrixAccount.objects.create(
        user=user,
        homeserver_url="http://127.0.0.1:1",
        mxid="@ana:example.org",
        device_id="ANADEVICE",
        access_token="token",
    )
    token = lease_claim(account_id=account.pk, owner="host-a", seconds=60)
    fence = LeaseFence(LeaseHandle(account.pk, "host-a", token), 60)
    store = device_store(account, fence)
    olm = OlmAccount()
    store.save_account(olm)  # the owner writes
    assert stored_identity(account) == olm.identity_keys["curve25519"]

    # Host B takes the lease over right after A's own clock check passed, before A's transaction:
    # only the check inside the transaction can see it.
    check = fence.check

    def check_then_taken_over() -> None:
        check()
        fence.check = check  # once
        SyncLease.objects.filter(account=account).update(owner="host-b", fencing_token=token + 1)

    fence.check = check_then_taken_over
    with pytest.raises(LeaseLost):
        store.save_account(OlmAccount())  # a new identity would replace the device's
    with pytest.raises(LeaseLost):
        store.save_encrypted_rooms({"!room:example.org"})  # and the fence stays shut
    assert stored_identity(account) == olm.identity_keys["curve25519"], "nothing was written"
    assert not CryptoStoreRecord.objects.filter(kind="room").exists()


async def legacy_device(synapse, account: MatrixAccount) -> AsyncClient:
    """The device as a host before issue 9 ran it: nio's own SQLite store in the account's folder."""
    folder = settings.CRYPTO_STORE_DIR / str(account.pk)
    folder.mkdir(parents=True, exist_ok=True)
    client = AsyncClient(
        synapse.url,
        account.mxid,
        device_id=account.device_id,
        store_path=str(folder),
        config=AsyncClientConfig(
            encryption_enabled=True, store_sync_tokens=False, pickle_key=account.pickle_key
        ),
    )
    client.restore_login(account.mxid, account.device_id, account.access_token)
    await client.keys_upload()
    return client


async def test_an_old_file_store_is_imported_and_the_device_keeps_its_identity_and_keys(
    client, synapse, matrix_user_factory, tmp_path
):
    me = matrix_user_factory()
    account = await sync_to_async(signed_in_account)(client, me)
    old = await legacy_device(synapse, account)
    identity = old.olm.account.identity_keys["curve25519"]
    peer = await encrypting_peer(synapse, matrix_user_factory(), tmp_path / "peer")
    try:
        created = await peer.room_create(
            name="Before the move", invite=[me.user_id], initial_state=[ENCRYPTION]
        )
        assert isinstance(created, RoomCreateResponse)
        room_id = created.room_id
        await sync_to_async(join)(account, room_id)
        before = await peer_send(peer, room_id, "sent to the old store")
        # The old device takes the room key (an Olm message) and acknowledges it, so the homeserver
        # will never deliver it again: only the imported store can read this message now.
        first = await old.sync(timeout=0, full_state=True)
        await old.sync(timeout=0, since=first.next_batch)
        assert old.olm.inbound_group_store.get(
            room_id, peer.olm.account.identity_keys["curve25519"], first_session(peer, room_id)
        ), "the old store holds the room key"
        await old.close()
        old.store.database.close()
        legacy = legacy_store_file(
            settings.CRYPTO_STORE_DIR / str(account.pk), account.mxid, account.device_id
        )
        assert legacy.is_file()

        async with running_host():
            await until(encrypted_membership(account, room_id))
            event = await until(decrypted(before))
            assert event.raw["content"]["body"] == "sent to the old store"
            assert await sync_to_async(stored_identity)(account) == identity
            assert not legacy.exists()
            assert legacy.with_name(legacy.name + ".migrated").is_file(), "kept as a backup"

            same_key = await peer_send(peer, room_id, "same room key")
            assert (await until(decrypted(same_key))).raw["content"]["body"] == "same room key"
            # A new room key travels over the Olm session the old store set up with the peer.
            peer.olm.outbound_group_sessions.pop(room_id, None)
            new_key = await peer_send(peer, room_id, "new room key")
            assert (await until(decrypted(new_key))).raw["content"]["body"] == "new room key"

            room = await sync_to_async(Room.objects.get)(room_id=room_id)
            reply = await sync_to_async(services.message_send)(
                account_id=account.pk, room=room, body="moved and still me"
            )
            seen = await peer_reads(peer, room_id, await until(sent(reply.txn_id)))
            assert isinstance(seen, RoomMessageText) and seen.body == "moved and still me"
        assert await sync_to_async(stored_identity)(account) == identity
    finally:
        await peer.close()


def first_session(peer: AsyncClient, room_id: str) -> str:
    return peer.olm.outbound_group_sessions[room_id].id


class Machine:
    """A sync host process on a "machine" of its own: an empty home, working and store folder, with
    only the master key file copied in. It shares the database and Redis, nothing else."""

    def __init__(self, name: str, folder: Path, *, lease_seconds: float) -> None:
        self.name = name
        self.folder = folder
        (folder / "home").mkdir(parents=True)
        keys = Path(settings.DATA_DIR) / "keys"
        shutil.copytree(keys, folder / "data" / "keys")
        self.log = folder / "host.log"
        env = {
            **os.environ,
            "HOME": str(folder / "home"),
            "PYTHONPATH": str(ROOT),
            "WEBCLIENT_DATA_DIR": str(folder / "data"),
            "WEBCLIENT_CRYPTO_STORE_DIR": str(folder / "data" / "crypto"),
            "DJANGO_SETTINGS_MODULE": "webclient.settings.embedded",
            "DATABASE_URL": database_url(),
            "REDIS_URL": settings.REDIS_URL,
            "CHANNELS_PREFIX": settings.CHANNEL_LAYERS["default"]["CONFIG"]["prefix"],
            "MATRIX_HOMESERVER_URL": settings.MATRIX_HOMESERVER_URL,
            "SYNC_LEASE_SECONDS": str(lease_seconds),
            "SYNC_TIMEOUT_MS": "1000",
        }
        with self.log.open("wb") as output:
            self.process = subprocess.Popen(
                [sys.executable, str(ROOT / "manage.py"), "sync_host", "--host-id", name],
                cwd=folder / "home",
                env=env,
                stdout=output,
                stderr=subprocess.STDOUT,
            )

    def files(self) -> list[str]:
        """What the host left on its disk, beside the key file and its own log."""
        return sorted(
            str(path.relative_to(self.folder))
            for path in self.folder.rglob("*")
            if path.is_file() and path != self.log and "keys" not in path.parts
        )

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()


async def test_a_host_on_another_machine_takes_the_account_over_with_its_identity(
    client, synapse, matrix_user_factory, tmp_path
):
    account, peer, room_id = await encrypted_room(client, synapse, matrix_user_factory, tmp_path)
    a = Machine("machine-a", tmp_path / "a", lease_seconds=3)
    b = None
    try:
        await until(owner_of(account, "machine-a"), timeout=60)
        first = await until(decrypted(await peer_send(peer, room_id, "read on machine A")), 60)
        assert first.raw["content"]["body"] == "read on machine A"
        identity = await sync_to_async(stored_identity)(account)
        assert identity is not None
        a.kill()  # no goodbye: its lease runs out

        b = Machine("machine-b", tmp_path / "b", lease_seconds=30)
        await until(owner_of(account, "machine-b"), timeout=60)
        # The same room key (in the store machine A wrote, and in the key backup too)...
        same_key = await peer_send(peer, room_id, "read on machine B")
        assert (await until(decrypted(same_key), 60)).raw["content"]["body"] == "read on machine B"
        # ...and a new one, sent over the Olm session machine A set up with the peer: only the
        # Olm session machine A stored in the database can open it.
        peer.olm.outbound_group_sessions.pop(room_id, None)
        new_key = await peer_send(peer, room_id, "new key on machine B")
        assert (await until(decrypted(new_key), 60)).raw["content"]["body"] == (
            "new key on machine B"
        )
        assert await sync_to_async(stored_identity)(account) == identity
        device = peer.device_store[account.mxid][account.device_id]
        assert device.curve25519 == identity, "the peer still knows the same device"
        assert a.files() == [], f"machine A kept {a.files()}"
        assert b.files() == [], f"machine B kept {b.files()}"
    finally:
        for machine in (a, b):
            if machine is not None:
                machine.kill()
        await peer.close()
        await sync_to_async(connections.close_all)()


def crypto_device(account: MatrixAccount, fence: LeaseFence) -> CryptoDevice:
    return CryptoDevice(
        homeserver_url=account.homeserver_url,
        user_id=account.mxid,
        device_id=account.device_id,
        access_token=account.access_token,
        pickle_key=account.pickle_key,
        records=DatabaseRecords(account.pk, account.device_id, fence),
        fence=fence,
    )


async def test_one_time_keys_uploaded_just_before_a_takeover_are_the_next_owners_too(
    client, matrix_user_factory, caplog
):
    """Host A makes and uploads one-time keys, then loses the account before it can note them as
    published. Host B must upload the same keys again (the homeserver accepts a repeat), not other
    keys under the same ids, which it refuses for good: the device would run out of keys."""
    me = matrix_user_factory()
    account = await sync_to_async(signed_in_account)(client, me)
    token_a = await sync_to_async(lease_claim)(account_id=account.pk, owner="host-a", seconds=60)
    fence_a = LeaseFence(LeaseHandle(account.pk, "host-a", token_a), 60)
    async with aiohttp.ClientSession() as http:
        a = crypto_device(account, fence_a)
        await a.open(http)  # identity and first keys published, and noted
        nio_a = a.client
        nio_a.olm.uploaded_key_count = 0  # a sync said colleagues claimed them all: make more
        receive = nio_a.receive_response

        async def taken_over_on_the_way(response):
            # The upload reached the homeserver; host B takes the account before A notes it.
            await sync_to_async(SyncLease.objects.filter(account_id=account.pk).update)(
                expires_at=timezone.now()
            )
            await sync_to_async(lease_claim)(account_id=account.pk, owner="host-b", seconds=60)
            return await receive(response)

        nio_a.receive_response = taken_over_on_the_way
        with pytest.raises(LeaseLost):
            await a.housekeeping()

        token_b = await sync_to_async(lambda: SyncLease.objects.get(account_id=account.pk))()
        fence_b = LeaseFence(LeaseHandle(account.pk, "host-b", token_b.fencing_token), 60)
        b = crypto_device(account, fence_b)
        caplog.clear()
        await b.open(http)
        b.client.olm.uploaded_key_count = 0
        await b.housekeeping()
        problems = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
        assert not [p for p in problems if "one-time keys" in p or "refused" in p], problems
        assert not b.client.olm.account.one_time_keys["curve25519"], "B's keys are all published"
    await sync_to_async(connections.close_all)()
