"""Who really sent a decrypted Megolm event, as far as our own device can tell.

Decrypting proves only that someone holding the room key wrote the message. Which device that was
follows from how the key reached us: straight from the sender's device over Olm (its curve25519
key is then authenticated), or second hand (forwarded by another device, or restored from the key
backup, which anyone with the backup's public key can write to). Element marks the second kind and
a claimed sender device whose keys do not match the session's; this module gathers those facts for
the rooms app, which adds whether the person trusts the device (verified or cross-signed).
"""

from dataclasses import dataclass
from typing import Any

OWN = "own"  # our own device's room key: we wrote it
DIRECT = "direct"  # received over Olm from the device that made it
FORWARDED = "forwarded"  # handed on by another device (a key request answered)
BACKUP = "backup"  # restored from the server-side key backup


@dataclass(frozen=True)
class Provenance:
    """What our device knows of where a decrypted event came from."""

    sender: str
    device_id: str  # the sender's device that made the session (or the one the event claims)
    key_origin: str  # OWN, DIRECT, FORWARDED or BACKUP
    device_known: bool  # we hold that device's keys (from /keys/query)
    mismatch: bool  # the claimed device's keys are not the session's: someone else wrote it
    verified: bool  # verified by this person with emoji (or our own device)


def _devices_of(olm, user_id: str) -> dict:
    """A user's devices without adding the user to nio's store (its store's [] would, and nio
    counts every user in it as tracked)."""
    for owner, devices in olm.device_store.items():
        if owner == user_id:
            return devices
    return {}


def provenance(
    olm, room_id: str, envelope: dict[str, Any], restored: frozenset[str] | set[str]
) -> Provenance | None:
    """The facts for an envelope nio just decrypted (None when its session is gone)."""
    content = envelope.get("content") if isinstance(envelope.get("content"), dict) else {}
    sender = str(envelope.get("sender", ""))
    sender_key, session_id = content.get("sender_key"), content.get("session_id")
    claimed_device = content.get("device_id") if isinstance(content.get("device_id"), str) else ""
    session = olm.inbound_group_store.get(room_id, sender_key, session_id)
    if session is None:
        return None
    own_keys = olm.account.identity_keys
    if (
        sender == olm.user_id
        and session.sender_key == own_keys["curve25519"]
        and session.ed25519 == own_keys["ed25519"]
    ):
        return Provenance(sender, olm.device_id, OWN, True, False, True)
    if session.id in restored:
        origin = BACKUP
    elif session.forwarding_chain:
        origin = FORWARDED
    else:
        origin = DIRECT
    devices = _devices_of(olm, sender)
    by_key = next(
        (d for d in devices.values() if not d.deleted and d.curve25519 == session.sender_key),
        None,
    )
    claimed = devices.get(claimed_device) if claimed_device else None
    mismatch = (claimed is not None and claimed.curve25519 != session.sender_key) or (
        by_key is not None and by_key.ed25519 != session.ed25519
    )
    device = by_key or claimed
    return Provenance(
        sender=sender,
        device_id=(device.id if device is not None else claimed_device)[:255],
        key_origin=origin,
        device_known=device is not None,
        mismatch=bool(mismatch),
        verified=device is not None and not mismatch and olm.is_device_verified(device),
    )
