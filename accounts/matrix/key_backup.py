"""Server-side key backup, m.megolm_backup.v1.curve25519-aes-sha2, as plain encoding functions.

Each Megolm session is exported at its first known index, encrypted to the backup's Curve25519
public key (libolm-compatible "pk" encryption, which vodozemac provides) and stored on the
homeserver. Whoever holds the backup's private key (here: the workspace, encrypted at rest) can get
every room key back onto a new or restored device.
"""

import json
from dataclasses import dataclass, field
from typing import Any

import vodozemac

ALGORITHM = "m.megolm_backup.v1.curve25519-aes-sha2"
MEGOLM = "m.megolm.v1.aes-sha2"


@dataclass(frozen=True)
class BackupKey:
    """The backup's Curve25519 key pair, from its base64 private key."""

    private: str = field(repr=False)  # never in a repr or a log line

    @classmethod
    def generate(cls) -> "BackupKey":
        return cls(vodozemac.PkDecryption().key.to_base64())

    @property
    def _decryption(self) -> vodozemac.PkDecryption:
        return vodozemac.PkDecryption.from_key(
            vodozemac.Curve25519SecretKey.from_base64(self.private)
        )

    @property
    def public(self) -> str:
        return self._decryption.public_key.to_base64()

    def decrypt(self, session_data: dict[str, Any]) -> dict[str, Any] | None:
        """The backed-up session from its `session_data`, or None when it is not ours or broken."""
        try:
            message = vodozemac.Message.from_base64(
                session_data["ciphertext"], session_data["mac"], session_data["ephemeral"]
            )
            decoded = json.loads(self._decryption.decrypt(message))
        except Exception:  # a foreign or damaged entry: treat as missing
            return None
        return decoded if isinstance(decoded, dict) else None


def session_data_for(public_key: str, session: dict[str, Any]) -> dict[str, str]:
    """Encrypt one exported session for the backup."""
    encryption = vodozemac.PkEncryption.from_key(
        vodozemac.Curve25519PublicKey.from_base64(public_key)
    )
    ephemeral, mac, ciphertext = encryption.encrypt(json.dumps(session).encode()).to_base64()
    return {"ephemeral": ephemeral, "mac": mac, "ciphertext": ciphertext}


def exported_session(
    *, session_key: str, sender_key: str, signing_key: str, forwarding_chain: list[str]
) -> dict[str, Any]:
    """The spec's BackedUpSessionData (before encryption)."""
    return {
        "algorithm": MEGOLM,
        "sender_key": sender_key,
        "session_key": session_key,
        "sender_claimed_keys": {"ed25519": signing_key},
        "forwarding_curve25519_key_chain": forwarding_chain,
    }


def is_usable_session(data: dict[str, Any]) -> bool:
    claimed = data.get("sender_claimed_keys")
    return (
        data.get("algorithm") == MEGOLM
        and isinstance(data.get("session_key"), str)
        and isinstance(data.get("sender_key"), str)
        and isinstance(claimed, dict)
        and isinstance(claimed.get("ed25519"), str)
    )
