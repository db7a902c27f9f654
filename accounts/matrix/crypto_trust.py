"""Trust on a crypto device: the account's cross-signing (our device signed by its owner, our
other devices signed after verification) and what we know of other devices' trust."""

from dataclasses import dataclass
from typing import Any

from accounts.matrix.cross_signing import (
    CrossSigningKeys,
    canonical_json,
    public_key_of,
    verify_signature,
)
from accounts.matrix.errors import MatrixError, TokenInvalid


@dataclass(frozen=True)
class KnownDevice:
    """A device we encrypt for, with what we know of its trust."""

    user_id: str
    device_id: str
    ed25519: str
    verified: bool  # verified by this person (emoji comparison)
    cross_signed: bool  # signed by its owner's self-signing key, itself signed by their master


@dataclass(frozen=True)
class Identities:
    """What one /keys/query round told us: the devices we encrypt for, and each other person's
    cross-signing identity (master key), to pin on first sight."""

    devices: list[KnownDevice]
    master_keys: dict[str, str]


class DeviceTrust:
    def __init__(self, device) -> None:
        self._device = device  # the CryptoDevice whose trust this is

    async def ensure_cross_signed(self, stored: CrossSigningKeys | None, save) -> str:
        """Make our device cross-signed by its owner: bootstrap the account's cross-signing keys
        when it has none (`save` is awaited with fresh keys before they are uploaded, so they are
        never lost), then sign our device with the self-signing key if it is not yet.

        Returns "signed", "foreign" (another client owns the account's cross-signing keys: our
        device is trusted once the person verifies it from there) or "needs_auth" (the homeserver
        wants interactive authentication for the first upload)."""
        own = await self._query_own_keys()
        server_master = public_key_of(own.get("master_keys", {}).get(self._device.user_id))
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
            return (
                "signed" if (self._device.user_id, self._device.device_id) in signed else "foreign"
            )
        device = (
            own.get("device_keys", {}).get(self._device.user_id, {}).get(self._device.device_id)
        )
        if not isinstance(device, dict):
            raise MatrixError("The homeserver does not list this device's keys.")
        if not verify_signature(device, self._device.user_id, keys.self_signing.public):
            await self._device.post(
                "/_matrix/client/v3/keys/signatures/upload",
                {
                    self._device.user_id: {
                        self._device.device_id: keys.self_signing.sign(device, self._device.user_id)
                    }
                },
            )
        return "signed"

    async def cross_sign_own_device(self, keys: CrossSigningKeys, device_id: str) -> bool:
        """Sign another device of ours (just verified with emoji) with the self-signing key, so
        every client that trusts the person's identity trusts that device too."""
        own = await self._query_own_keys()
        device = own.get("device_keys", {}).get(self._device.user_id, {}).get(device_id)
        if not isinstance(device, dict):
            return False
        if verify_signature(device, self._device.user_id, keys.self_signing.public):
            return True
        await self._device.post(
            "/_matrix/client/v3/keys/signatures/upload",
            {
                self._device.user_id: {
                    device_id: keys.self_signing.sign(device, self._device.user_id)
                }
            },
        )
        return True

    def device_snapshot(self) -> frozenset[tuple[str, str, str, bool]]:
        """What nio knows of other devices now (cheap; compared to notice changes)."""
        return frozenset(
            (d.user_id, d.id, d.ed25519, d.verified)
            for d in self._device.client.olm.device_store
            if not d.deleted
            and not (d.user_id == self._device.user_id and d.id == self._device.device_id)
        )

    async def known_devices(self) -> list[KnownDevice]:
        return (await self.identities()).devices

    async def identities(self) -> Identities:
        """Every device nio tracks, with whether its owner cross-signed it (checked here from the
        homeserver's keys: nio itself knows nothing of cross-signing), and their owners' master
        keys."""
        devices = [
            d
            for d in self._device.client.olm.device_store
            if not d.deleted
            and not (d.user_id == self._device.user_id and d.id == self._device.device_id)
        ]
        users = sorted({d.user_id for d in devices})
        signed: set[tuple[str, str]] = set()
        masters: dict[str, str] = {}
        for start in range(0, len(users), 100):
            keys = await self._device.post(
                "/_matrix/client/v3/keys/query",
                {"device_keys": {u: [] for u in users[start : start + 100]}},
            )
            signed |= owner_signed_devices(keys)
            masters.update(master_keys(keys))
        masters.pop(self._device.user_id, None)  # our own identity is ours to manage
        return Identities(
            [
                KnownDevice(d.user_id, d.id, d.ed25519, d.verified, (d.user_id, d.id) in signed)
                for d in devices
            ],
            masters,
        )

    async def _query_own_keys(self) -> dict[str, Any]:
        return await self._device.post(
            "/_matrix/client/v3/keys/query", {"device_keys": {self._device.user_id: []}}
        )

    async def _upload_cross_signing_keys(self, keys: CrossSigningKeys) -> bool:
        device_signature = (
            f"ed25519:{self._device.device_id}",
            self._device.client.olm.account.sign(
                canonical_json(keys.master_key_object(self._device.user_id)).decode()
            ),
        )
        body = keys.upload_body(self._device.user_id, device_signature)
        try:
            await self._device.post("/_matrix/client/v3/keys/device_signing/upload", body)
        except MatrixError as error:
            if error.status == 401 and not isinstance(error, TokenInvalid):  # UIA demanded
                return False
            raise
        return True


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


def master_keys(keys_query: dict[str, Any]) -> dict[str, str]:
    """Each user's master cross-signing key (public, base64) in a /keys/query answer."""
    found = {}
    masters = keys_query.get("master_keys")
    for user_id, key in (masters if isinstance(masters, dict) else {}).items():
        public = public_key_of(key)
        if isinstance(user_id, str) and public:
            found[user_id[:255]] = public[:64]
    return found
