"""Cross-signing: the account's master, self-signing and user-signing keys, and our device signed
by them, so other clients (Element with "exclude insecure devices", MSC4153) trust and share keys
with the device this workspace holds for the person.

The private keys are 32-byte Ed25519 seeds, kept by the caller encrypted at rest like every secret.
Signing follows the spec's "Signing JSON": canonical JSON without `signatures` and `unsigned`,
unpadded base64 signatures.
"""

import base64
import json
import secrets
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey


def unpadded_b64(data: bytes) -> str:
    return base64.b64encode(data).decode().rstrip("=")


def b64decode(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


def canonical_json(value: Any) -> bytes:
    """The spec's canonical JSON (sorted keys, no spaces, UTF-8; we never sign floats)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def signable(value: dict) -> bytes:
    return canonical_json({k: v for k, v in value.items() if k not in ("signatures", "unsigned")})


@dataclass(frozen=True)
class SigningKey:
    """One Ed25519 cross-signing key pair, from its 32-byte seed."""

    seed: bytes = field(repr=False)  # the private key: never in a repr or a log line

    @classmethod
    def generate(cls) -> "SigningKey":
        return cls(secrets.token_bytes(32))

    @property
    def _private(self) -> Ed25519PrivateKey:
        return Ed25519PrivateKey.from_private_bytes(self.seed)

    @property
    def public(self) -> str:
        raw = self._private.public_key().public_bytes_raw()
        return unpadded_b64(raw)

    @property
    def key_id(self) -> str:
        return f"ed25519:{self.public}"

    def sign(self, value: dict, user_id: str) -> dict:
        """`value` with our signature added under the user's id."""
        signature = unpadded_b64(self._private.sign(signable(value)))
        signatures = {user: dict(sigs) for user, sigs in value.get("signatures", {}).items()}
        signatures.setdefault(user_id, {})[self.key_id] = signature
        return {**value, "signatures": signatures}


def verify_signature(value: dict, user_id: str, public_key: str, key_id: str = "") -> bool:
    """Whether `value` carries a valid signature by `public_key` under `user_id`. Cross-signing
    keys are named by their public key; a device's key by its device id (`key_id`)."""
    key_id = key_id or f"ed25519:{public_key}"
    signature = value.get("signatures", {}).get(user_id, {}).get(key_id)
    if not isinstance(signature, str):
        return False
    try:
        Ed25519PublicKey.from_public_bytes(b64decode(public_key)).verify(
            b64decode(signature), signable(value)
        )
    except Exception:
        return False
    return True


@dataclass(frozen=True)
class CrossSigningKeys:
    master: SigningKey
    self_signing: SigningKey
    user_signing: SigningKey

    @classmethod
    def generate(cls) -> "CrossSigningKeys":
        return cls(SigningKey.generate(), SigningKey.generate(), SigningKey.generate())

    def to_json(self) -> str:
        return json.dumps(
            {
                "master": unpadded_b64(self.master.seed),
                "self_signing": unpadded_b64(self.self_signing.seed),
                "user_signing": unpadded_b64(self.user_signing.seed),
            }
        )

    @classmethod
    def from_json(cls, text: str) -> "CrossSigningKeys | None":
        try:
            seeds = json.loads(text)
            keys = cls(
                SigningKey(b64decode(seeds["master"])),
                SigningKey(b64decode(seeds["self_signing"])),
                SigningKey(b64decode(seeds["user_signing"])),
            )
        except (ValueError, KeyError, TypeError):
            return None
        return keys

    def upload_body(self, user_id: str, device_signature: tuple[str, str] | None) -> dict:
        """The body of /keys/device_signing/upload: the master key (also signed by our device,
        which lets our other sessions trust it) and the two subkeys signed by the master."""
        master = {
            "user_id": user_id,
            "usage": ["master"],
            "keys": {self.master.key_id: self.master.public},
        }
        if device_signature is not None:
            key_id, signature = device_signature
            master["signatures"] = {user_id: {key_id: signature}}
        return {
            "master_key": master,
            "self_signing_key": self.master.sign(
                {
                    "user_id": user_id,
                    "usage": ["self_signing"],
                    "keys": {self.self_signing.key_id: self.self_signing.public},
                },
                user_id,
            ),
            "user_signing_key": self.master.sign(
                {
                    "user_id": user_id,
                    "usage": ["user_signing"],
                    "keys": {self.user_signing.key_id: self.user_signing.public},
                },
                user_id,
            ),
        }

    def master_key_object(self, user_id: str) -> dict:
        return {
            "user_id": user_id,
            "usage": ["master"],
            "keys": {self.master.key_id: self.master.public},
        }


def public_key_of(key_object: Any) -> str:
    """The single Ed25519 public key of a cross-signing key object ("" when malformed)."""
    keys = key_object.get("keys") if isinstance(key_object, dict) else None
    if not isinstance(keys, dict) or len(keys) != 1:
        return ""
    value = next(iter(keys.values()))
    return value if isinstance(value, str) else ""
