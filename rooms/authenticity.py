"""Can this account's device vouch for who sent a message? The mark Element shows, per account.

The crypto device says how the room key reached it (accounts/matrix/crypto_authenticity); here we
add what the person trusts (a device verified with emoji or cross-signed by its owner) and store
the verdict on the account's own timeline entry, since it is that device's decryption. When a
device's trust changes later, the marks of its messages follow.
"""

from collections.abc import Iterable

from accounts.matrix.crypto_authenticity import BACKUP, FORWARDED, OWN, Provenance
from rooms.models import DeviceTrust, Room, RoomState, TimelineEntry

UNVERIFIED = "unverified"
UNKNOWN_DEVICE = "unknown_device"
UNSAFE_KEY = "unsafe_key"
MISMATCH = "mismatch"
PLAINTEXT = "plaintext"

# What the mark says (a tooltip and visually hidden text); red marks are the ones to distrust.
EXPLANATIONS = {
    UNVERIFIED: "Encrypted by a device not verified by its owner.",
    UNKNOWN_DEVICE: "Encrypted by an unknown or deleted device.",
    UNSAFE_KEY: (
        "The authenticity of this encrypted message can't be guaranteed on this device: its key "
        "came from the key backup or another device, not from the sender."
    ),
    MISMATCH: "The sender's device keys do not match this message: it may not be from its sender.",
    PLAINTEXT: "Not encrypted: sent in the clear in an encrypted room.",
}
RED = {MISMATCH, PLAINTEXT}
FOLLOWS_TRUST = ("", UNVERIFIED)  # verdicts that change with the device's trust

PLAIN_TYPES = ("m.room.message", "m.sticker")  # shown messages that should have been encrypted


def verdict(found: Provenance | None, trusted: set[tuple[str, str]]) -> str:
    """The mark for one decrypted event ("" when our device can vouch for its sender)."""
    if found is None:
        return UNKNOWN_DEVICE
    if found.mismatch:
        return MISMATCH
    if found.key_origin in (BACKUP, FORWARDED):
        return UNSAFE_KEY
    if found.key_origin == OWN:
        return ""
    if not found.device_known:
        return UNKNOWN_DEVICE
    if found.verified or (found.sender, found.device_id) in trusted:
        return ""
    return UNVERIFIED


def trusted_devices(account_id: int, senders: Iterable[str]) -> set[tuple[str, str]]:
    """The senders' devices this account trusts (verified by the person or owner-signed)."""
    return {
        (user_id, device_id)
        for user_id, device_id, verified, signed in DeviceTrust.objects.filter(
            account_id=account_id, user_id__in=set(senders)
        ).values_list("user_id", "device_id", "verified", "cross_signed")
        if verified or signed
    }


def entry_marks(
    account_id: int,
    room: Room,
    events: list[dict],
    envelopes: dict[str, dict],
    origins: dict[str, Provenance | None],
    *,
    maybe_encrypted: bool = True,
) -> dict[str, tuple[str, str]]:
    """(mark, sender device) for the account's new entries of `events`: decrypted ones by where
    their key came from, plain messages in an encrypted room as not encrypted. Two queries at
    most: the senders' device trust when something was decrypted, the room's encryption when
    a plain message arrived in a room that may be encrypted (`maybe_encrypted=False`: the caller
    knows it is not, so plain messages need no query)."""
    marks: dict[str, tuple[str, str]] = {}
    decrypted = [e for e in events if e["event_id"] in envelopes]
    if decrypted:
        trusted = trusted_devices(account_id, {e["sender"] for e in decrypted})
        for event in decrypted:
            found = origins.get(event["event_id"])
            marks[event["event_id"]] = (
                verdict(found, trusted),
                found.device_id if found is not None else "",
            )
    plain = [
        e
        for e in events
        if e["type"] in PLAIN_TYPES and "state_key" not in e and e["event_id"] not in envelopes
    ]
    if plain and maybe_encrypted:
        since = (
            RoomState.objects.filter(room=room, event_type="m.room.encryption", state_key="")
            .values_list("origin_server_ts", flat=True)
            .first()
        )
        for event in plain:
            if since is not None and _ts(event) >= since:
                marks[event["event_id"]] = (PLAINTEXT, "")
    return marks


def marks_after_decryption(account_id: int, origins: dict[str, Provenance | None]) -> list[str]:
    """Mark entries that became readable after they were stored (keys arrived later)."""
    if not origins:
        return []
    trusted = trusted_devices(
        account_id, {found.sender for found in origins.values() if found is not None}
    )
    entries = TimelineEntry.objects.filter(
        account_id=account_id, event__event_id__in=list(origins)
    ).values_list("id", "event__event_id")
    for entry_id, event_id in entries:
        found = origins[event_id]
        TimelineEntry.objects.filter(pk=entry_id).update(
            authenticity=verdict(found, trusted),
            sender_device=found.device_id if found is not None else "",
        )
    return list(origins)


def marks_follow_trust(
    account_id: int, before: dict[tuple[str, str], bool], after: dict[tuple[str, str], bool]
) -> list[str]:
    """A device became trusted (or stopped being): its messages' marks follow. `before` and
    `after` map (user, device) to trusted. Returns the event ids whose mark changed."""
    changed_events: list[str] = []
    for (user_id, device_id), trusted in after.items():
        if before.get((user_id, device_id), False) == trusted:
            continue
        old, new = (UNVERIFIED, "") if trusted else ("", UNVERIFIED)
        entries = TimelineEntry.objects.filter(
            account_id=account_id,
            sender_device=device_id,
            event__sender=user_id,
            authenticity=old,
        )
        ids = list(entries.values_list("id", "event__event_id"))
        if ids:
            TimelineEntry.objects.filter(pk__in=[i for i, _ in ids]).update(authenticity=new)
            changed_events.extend(event_id for _, event_id in ids)
    return changed_events


def explanation(mark: str) -> str:
    return EXPLANATIONS.get(mark, "")


def _ts(event: dict) -> int:
    ts = event.get("origin_server_ts")
    return ts if isinstance(ts, int) and not isinstance(ts, bool) else 0
