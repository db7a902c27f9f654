"""The account's server-side key backup (m.megolm_backup.v1.curve25519-aes-sha2), on its crypto
device: created once with a key the workspace keeps, every room key uploaded, missing keys restored.
"""

from typing import Any, Protocol

from nio.crypto import InboundGroupSession

from accounts.matrix import key_backup
from accounts.matrix.cross_signing import SigningKey, canonical_json
from accounts.matrix.errors import MatrixError
from accounts.matrix.http import quote
from accounts.matrix.key_backup import BackupKey


class BackupLedger(Protocol):
    """Where the caller remembers which room keys a backup version already holds, so a restarted
    owner uploads only new ones."""

    async def uploaded(self, version: str) -> set[str]: ...

    async def add(self, version: str, session_ids: list[str]) -> None: ...

    async def restored(self) -> set[str]: ...

    async def add_restored(self, session_id: str) -> None: ...


class KeyBackup:
    def __init__(self, device) -> None:
        self._device = device  # the CryptoDevice this backup belongs to
        self._in_use: tuple[str, BackupKey] | None = None  # (version, key) once in use
        self._uploaded: set[str] = set()  # session ids the backup holds
        self._absent: set[str] = set()  # session ids the backup did not have
        self._ledger: BackupLedger | None = None
        # Sessions taken from the backup, not from their sender: their messages are not vouched
        # for (see crypto_authenticity).
        self.restored: set[str] = set()

    async def ensure(
        self,
        stored: BackupKey | None,
        save,
        master: SigningKey | None = None,
        ledger: BackupLedger | None = None,
    ) -> str:
        """Use the account's server-side key backup, creating it when there is none (`save` is
        awaited with a fresh key before the backup exists). Returns its version, or "" when the
        account's backup belongs to a key we do not hold (another client made it)."""
        self._ledger = ledger
        if ledger is not None:
            self.restored |= await ledger.restored()
        try:
            info = await self._device.request("GET", "/_matrix/client/v3/room_keys/version")
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
                self._in_use = (version, stored)
                if ledger is not None:
                    self._uploaded |= await ledger.uploaded(version)
                await self.back_up_new_sessions()
                return version
            return ""
        key = stored or BackupKey.generate()
        if stored is None:
            await save(key)
        auth_data: dict[str, Any] = {"public_key": key.public}
        auth_data["signatures"] = {
            self._device.user_id: {
                f"ed25519:{self._device.device_id}": self._device.client.olm.account.sign(
                    canonical_json(auth_data).decode()
                )
            }
        }
        if master is not None:
            auth_data = master.sign(auth_data, self._device.user_id)
        reply = await self._device.post(
            "/_matrix/client/v3/room_keys/version",
            {"algorithm": key_backup.ALGORITHM, "auth_data": auth_data},
        )
        version = reply.get("version")
        if not isinstance(version, str):
            raise MatrixError("The homeserver did not return the key backup's version.")
        self._in_use = (version, key)
        await self.back_up_new_sessions()
        return version

    async def back_up_new_sessions(self) -> int:
        """Upload the room keys this owner has not backed up yet; returns how many."""
        if self._in_use is None:
            return 0
        version, key = self._in_use
        fresh = [
            s for s in self._device.client.olm.inbound_group_store if s.id not in self._uploaded
        ]
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
            await self._device.request(
                "PUT",
                f"/_matrix/client/v3/room_keys/keys?version={quote(version)}",
                {"rooms": rooms},
            )
            self._uploaded.update(s.id for s in chunk)
            if self._ledger is not None:
                await self._ledger.add(version, [s.id for s in chunk])
        return len(fresh)

    async def restore(self, room_id: str, session_id: str) -> bool:
        """Fetch one room key from the backup into the store; True when it is now here."""
        if self._in_use is None or not session_id or session_id in self._absent:
            return False
        version, key = self._in_use
        path = (
            f"/_matrix/client/v3/room_keys/keys/{quote(room_id)}/{quote(session_id)}"
            f"?version={quote(version)}"
        )
        try:
            entry = await self._device.request("GET", path)
        except MatrixError as error:
            if error.errcode == "M_NOT_FOUND":
                self._absent.add(session_id)
                return False
            raise
        data = key.decrypt(entry.get("session_data") or {})
        if data is None or not key_backup.is_usable_session(data):
            self._absent.add(session_id)
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
            self._absent.add(session_id)
            return False
        if session.id != session_id:
            self._absent.add(session_id)
            return False
        self.restored.add(session_id)
        if self._ledger is not None:
            await self._ledger.add_restored(session_id)
        olm = self._device.client.olm
        if olm.inbound_group_store.add(session):
            olm.store.save_inbound_group_session(session)
        self._uploaded.add(session_id)
        return True
