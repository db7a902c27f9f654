"""The crypto side of one owned account: its CryptoDevice opened and set up (cross-signing, key
backup; for a new account after its first sync, see startup.py), each sync absorbed (decryption, withheld keys, verification progress), events our device
could not read retried, and the devices we encrypt for exported for the rooms' indicators.

Only the account's sync host creates one, under the account's lease: the crypto store has one user.
The store is in the database (crypto_records.py), each write checking the lease in its own
transaction; the lease's fence also goes with the device, which checks it before every request
(see fence.py): an owner that lost the lease stops at once and leaves the store to the new one.
"""

import asyncio
import logging

from asgiref.sync import sync_to_async
from django.conf import settings

from accounts.matrix.cross_signing import CrossSigningKeys
from accounts.matrix.crypto import CryptoDevice, CryptoUnavailable, to_device_events
from accounts.matrix.errors import MatrixError
from accounts.matrix.key_backup import BackupKey
from rooms import devices, identities, room_members, selectors
from rooms.services import LeaseHandle
from rooms.sync.crypto_records import DatabaseRecords
from rooms.sync.decryption import (
    apply_decryptions,
    request_missing_keys,
    retry_sealed,
    room_events,
)
from rooms.sync.fence import LeaseFence
from rooms.sync.key_requests import KeyRequestSchedule
from rooms.sync.verifying import VerificationDriver

log = logging.getLogger(__name__)


class AccountCrypto:
    """The account's crypto device: opened by its sync loop, used by its outbox once ready.

    Only the lease holder creates one, so the store has one user at a time."""

    def __init__(self, fence: LeaseFence | None = None) -> None:
        self.fence = fence
        self.lease: LeaseHandle | None = None
        self.device: CryptoDevice | None = None
        self.verifications: VerificationDriver | None = None
        self.ready = asyncio.Event()
        self.unavailable = ""
        self._devices_seen: frozenset = frozenset()
        self.key_requests = KeyRequestSchedule(settings.KEY_REQUEST_RETRY_SECONDS)
        self._members_loaded: dict[str, int] = {}  # room id -> member count we loaded for
        self._key_counts: object = None  # the one-time key counts nio saw last

    async def open(
        self, device: selectors.Device, lease: LeaseHandle, http, *, setup: bool = True
    ) -> None:
        """Open the device (its Olm account loaded or made, its device and one-time keys
        published: what peers need to encrypt to it) and, with `setup`, set it up at once.
        Without, the caller runs `set_up` later (after the account's first sync, see
        rooms/sync/startup.py); the device can decrypt and encrypt in between."""
        self.lease = lease
        if self.fence is None:
            self.fence = LeaseFence(lease)
        records = DatabaseRecords(lease.account_id, device.device_id, self.fence)
        await records.preload()  # one query, off the loop, instead of one per kind on it
        try:
            crypto = CryptoDevice(
                homeserver_url=device.homeserver_url,
                user_id=device.user_id,
                device_id=device.device_id,
                access_token=device.access_token,
                pickle_key=device.pickle_key,
                records=records,
                legacy_store_dir=settings.CRYPTO_STORE_DIR / str(lease.account_id),
                fence=self.fence,
            )
            await crypto.open(http)
        except CryptoUnavailable as error:
            self.unavailable = error.message
            log.error("encryption unavailable for %s: %s", device.user_id, error.message)
        else:
            records.preload_done()
            self.device = crypto
            self.verifications = VerificationDriver(
                lease, crypto, on_own_device_verified=self.own_device_verified
            )
            if setup:
                await self.set_up(device)
        self.ready.set()

    async def set_up(self, device: selectors.Device) -> None:
        """Cross-sign our device and put the key backup to use (both made when the account has
        none). Until then nothing is backed up or restored from the backup: the backup, once in
        use, uploads every room key the device holds, and events left sealed are retried."""
        if self.device is None:
            return
        keys = await self._cross_sign(device)
        await self._use_key_backup(device, keys)

    async def own_device_verified(self, device_id: str) -> None:
        """Another device of the person's was verified with emoji: vouch for it with our
        self-signing key when we hold it; otherwise that device's client may now have signed us,
        so look at our own cross-signing state again."""
        if self.device is None or self.lease is None:
            return
        device = await sync_to_async(selectors.account_device)(account_id=self.lease.account_id)
        keys = (
            CrossSigningKeys.from_json(device.cross_signing_keys)
            if device.cross_signing_keys
            else None
        )
        if keys is not None:
            await self.device.trust.cross_sign_own_device(keys, device_id)
            return
        state = await self.device.trust.ensure_cross_signed(None, _refuse_new_keys)
        await sync_to_async(devices.device_fields_save)(lease=self.lease, cross_signing_state=state)

    async def _cross_sign(self, device: selectors.Device) -> CrossSigningKeys | None:
        """Have our device cross-signed by its owner (keys made here when the account has none).
        A failure is logged and retried by the next owner; it never stops the sync. Returns the
        account's cross-signing keys when we hold them."""
        crypto = self.device
        if crypto is None:
            return None
        made: list[CrossSigningKeys] = []

        async def save(keys: CrossSigningKeys) -> None:
            await sync_to_async(devices.device_fields_save)(
                lease=self.lease, cross_signing_keys=keys.to_json()
            )
            made.append(keys)

        stored = (
            CrossSigningKeys.from_json(device.cross_signing_keys)
            if device.cross_signing_keys
            else None
        )
        try:
            state = await crypto.trust.ensure_cross_signed(stored, save)
        except MatrixError as error:
            log.warning("cross-signing for %s deferred: %s", device.user_id, error.message)
            return None
        await sync_to_async(devices.device_fields_save)(lease=self.lease, cross_signing_state=state)
        return (stored or (made[0] if made else None)) if state == "signed" else None

    async def _use_key_backup(
        self, device: selectors.Device, keys: CrossSigningKeys | None
    ) -> None:
        """Back room keys up on the homeserver (creating the backup when the account has none),
        so a new or restored device gets its history back."""
        crypto = self.device
        if crypto is None:
            return

        async def save(key: BackupKey) -> None:
            await sync_to_async(devices.device_fields_save)(
                lease=self.lease, key_backup_key=key.private
            )

        stored = BackupKey(device.key_backup_key) if device.key_backup_key else None
        try:
            version = await crypto.backup.ensure(
                stored, save, keys.master if keys is not None else None, _Ledger(self.lease)
            )
        except MatrixError as error:
            log.warning("key backup for %s deferred: %s", device.user_id, error.message)
            return
        await sync_to_async(devices.device_fields_save)(
            lease=self.lease, key_backup_version=version
        )

    async def absorb(self, raw: dict, batch) -> set[str]:
        """Give the sync to the crypto device and put decrypted events into the batch; ask our
        other devices for keys we lack. Returns the Megolm sessions whose keys just arrived."""
        crypto = self.device
        if crypto is None:
            return set()
        counts = raw.get("device_one_time_keys_count")
        verifying = self.verifications is not None and bool(self.verifications.verifier.views())
        if not verifying and not touches_crypto(raw, batch, self._key_counts):
            # Nothing for the Olm machine (most syncs of a busy room): only what nio queued
            # itself (to-device messages, key queries) goes out, as after every sync.
            await crypto.housekeeping()
            return set()
        encrypted = await sync_to_async(selectors.encrypted_room_ids)(
            account_id=self.lease.account_id
        )
        absorbed = await crypto.absorb_sync(raw, room_events(batch), encrypted)
        self._key_counts = counts
        await sync_to_async(devices.keys_withheld_save)(
            lease=self.lease, withheld=absorbed.withheld
        )
        await request_missing_keys(self.lease, crypto, apply_decryptions(batch, absorbed))
        if self.verifications is not None:
            await self.verifications.after_sync(raw)
        return {session_id for _, session_id in absorbed.keys_arrived}

    async def retry_sealed(self, session_ids: set[str] | None, *, ask_again: bool = False) -> None:
        """Decrypt what our device could not read before (see decryption.retry_sealed)."""
        if self.device is not None and self.lease is not None:
            await retry_sealed(
                self.lease,
                self.device,
                session_ids,
                ask_again=ask_again,
                schedule=self.key_requests,
            )

    async def export_devices(self, raw: dict, *, force: bool = False) -> None:
        """Keep the database's copy of the devices we encrypt for (and their trust) current, for
        the rooms' encryption indicators; only when something changed."""
        crypto = self.device
        if crypto is None:
            return
        if force or _members_may_have_changed(raw):
            await self._load_all_members()
        snapshot = crypto.trust.device_snapshot()
        lists = raw.get("device_lists") if isinstance(raw.get("device_lists"), dict) else {}
        if not force and snapshot == self._devices_seen and not lists.get("changed"):
            return
        try:
            known = await crypto.trust.identities()
        except MatrixError as error:
            log.info("device trust for %s not refreshed: %s", crypto.user_id, error.message)
            return
        await sync_to_async(devices.device_trust_save)(lease=self.lease, devices=known.devices)
        await sync_to_async(identities.identities_pin)(
            lease=self.lease, master_keys=known.master_keys
        )
        self._devices_seen = snapshot

    async def _load_all_members(self) -> None:
        """Learn the members lazy-loading left out of encrypted rooms (once per member count
        seen), so their devices are queried and counted like everyone else's."""
        missing = await sync_to_async(room_members.rooms_missing_members)(
            account_id=self.lease.account_id
        )
        for room_id, count in missing.items():
            if self._members_loaded.get(room_id) == count:
                continue
            try:
                events = await self.device.load_members(room_id)
            except MatrixError as error:
                log.info("members of %s not loaded: %s", room_id, error.message)
                continue
            self._members_loaded[room_id] = count
            await sync_to_async(room_members.room_members_fill)(
                lease=self.lease, room_id=room_id, events=events
            )

    async def close(self) -> None:
        if self.device is not None:
            await self.device.close()


# Room events the Olm machine must see: what it decrypts, and what changes who it encrypts for.
CRYPTO_EVENT_TYPES = frozenset({"m.room.encrypted", "m.room.encryption", "m.room.member"})


def touches_crypto(raw: dict, batch, key_counts_seen: object) -> bool:
    """Whether a /sync holds anything for the Olm machine: to-device messages, device list
    changes, a one-time key count it has not seen, or encrypted, encryption or membership events
    in a joined room. A sync of plain messages holds none of these."""
    if to_device_events(raw):
        return True
    lists = raw.get("device_lists") if isinstance(raw.get("device_lists"), dict) else {}
    if lists.get("changed") or lists.get("left"):
        return True
    if raw.get("device_one_time_keys_count") != key_counts_seen:
        return True
    return any(
        event.get("type") in CRYPTO_EVENT_TYPES
        for joined in batch.joined
        for event in (*joined.state, *joined.timeline)
    )


def _members_may_have_changed(raw: dict) -> bool:
    """Whether a /sync brought a joined room's member counts or membership events (only then
    can lazy-loading have left members out that we did not look up yet)."""
    rooms = raw.get("rooms") if isinstance(raw.get("rooms"), dict) else {}
    joined = rooms.get("join") if isinstance(rooms.get("join"), dict) else {}
    for room in joined.values():
        if not isinstance(room, dict):
            continue
        if room.get("summary"):
            return True
        for section in ("state", "timeline"):
            part = room.get(section) if isinstance(room.get(section), dict) else {}
            events = part.get("events") if isinstance(part.get("events"), list) else []
            if any(
                isinstance(e, dict) and e.get("type") in ("m.room.member", "m.room.encryption")
                for e in events
            ):
                return True
    return False


async def _refuse_new_keys(keys) -> None:
    raise MatrixError("Cross-signing keys are only made when the account is first set up.")


class _Ledger:
    """The database's record of which room keys the account's backup holds (see KeyBackup)."""

    def __init__(self, lease: LeaseHandle) -> None:
        self.lease = lease

    async def uploaded(self, version: str) -> set[str]:
        return await sync_to_async(devices.backup_uploaded)(
            account_id=self.lease.account_id, version=version
        )

    async def add(self, version: str, session_ids: list[str]) -> None:
        await sync_to_async(devices.backup_record)(
            lease=self.lease, version=version, session_ids=session_ids
        )

    async def restored(self) -> set[str]:
        return await sync_to_async(devices.backup_restored)(account_id=self.lease.account_id)

    async def add_restored(self, session_id: str) -> None:
        await sync_to_async(devices.backup_restored_record)(lease=self.lease, session_id=session_id)
