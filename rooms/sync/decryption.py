"""Between /sync and ingest: encrypted timeline events replaced by what their senders wrote."""

from typing import Any

from asgiref.sync import sync_to_async

from accounts.matrix.crypto import (
    Absorbed,
    CryptoDevice,
    Decrypted,
    RoomEvents,
    Undecrypted,
    is_encrypted_event,
)
from rooms import selectors, services, trust
from rooms.selectors import megolm_session_id
from rooms.services import LeaseHandle
from rooms.sync.batch import SyncBatch
from rooms.sync.key_requests import KeyRequestSchedule


def room_events(batch: SyncBatch) -> dict[str, RoomEvents]:
    """The joined rooms' validated events, as the crypto device takes them."""
    return {joined.room_id: RoomEvents(joined.state, joined.timeline) for joined in batch.joined}


def apply_decryptions(batch: SyncBatch, absorbed: Absorbed) -> list[tuple[str, dict]]:
    """Swap each decrypted event into the batch (its envelope kept beside it) and return the
    (room id, event) pairs still waiting for a key, to request it."""
    missing = []
    for joined in batch.joined:
        for index, event in enumerate(joined.timeline):
            result = absorbed.results.get(event["event_id"])
            if isinstance(result, Decrypted):
                joined.envelopes[event["event_id"]] = event
                joined.origins[event["event_id"]] = result.provenance
                joined.timeline[index] = result.event
            elif isinstance(result, Undecrypted) and result.reason == "missing_key":
                missing.append((joined.room_id, event))
    return missing


async def request_missing_keys(
    lease: LeaseHandle, crypto: CryptoDevice, missing: list[tuple[str, dict]]
) -> None:
    """Ask our other devices once for each key we lack, but not for keys their senders withheld
    (they said they will not share them: asking again only adds traffic)."""
    if not missing:
        return
    withheld = await sync_to_async(trust.withheld_session_ids)(
        account_id=lease.account_id, session_ids={megolm_session_id(e) for _, e in missing}
    )
    for room_id, event in missing:
        if megolm_session_id(event) not in withheld:
            await crypto.request_key(room_id, event)


async def decrypt_history(
    crypto: CryptoDevice | None,
    room_id: str,
    events: list[dict],
    origins: dict[str, Any] | None = None,
) -> dict[str, dict]:
    """Decrypt a /messages page in place (as sync does); returns the envelopes of what we read
    (and fills `origins` with where their keys came from)."""
    envelopes: dict[str, dict] = {}
    if crypto is None:
        return envelopes
    for index, event in enumerate(events):
        if not is_encrypted_event(event):
            continue
        result = await crypto.decrypt_or_restore(room_id, event)
        if isinstance(result, Decrypted):
            envelopes[event["event_id"]] = event
            if origins is not None:
                origins[event["event_id"]] = result.provenance
            events[index] = result.event
    return envelopes


async def retry_sealed(
    lease: LeaseHandle,
    crypto: CryptoDevice,
    session_ids: set[str] | None = None,
    *,
    ask_again: bool = False,
    limit: int = 500,
    schedule: KeyRequestSchedule | None = None,
) -> int:
    """Decrypt stored events our device could not read before (keys arrived since, or history
    fetched by a page); pages update in place. With `ask_again`, keys still missing are asked for
    again from our other devices, as often as `schedule` allows and never when withheld.
    Returns how many became readable."""
    waiting = await sync_to_async(selectors.events_awaiting_keys)(
        account_id=lease.account_id, session_ids=session_ids, limit=limit
    )
    withheld = await sync_to_async(trust.withheld_session_ids)(
        account_id=lease.account_id, session_ids={megolm_session_id(e) for _, e in waiting}
    )
    decrypted, origins = [], {}
    asked: set[str] = set()
    for room_id, event in waiting:
        result = await crypto.decrypt_or_restore(room_id, event)
        session_id = megolm_session_id(event)
        if isinstance(result, Decrypted):
            decrypted.append((result.event, event))
            origins[event["event_id"]] = result.provenance
            if schedule is not None:
                schedule.forget(session_id)
        elif result.reason == "missing_key" and session_id not in withheld:
            again = ask_again and session_id not in asked
            if again and schedule is not None and not schedule.due(session_id):
                continue
            asked.add(session_id)
            await crypto.request_key(room_id, event, again=again)
    await sync_to_async(services.events_decrypted)(
        lease=lease, decrypted=decrypted, origins=origins
    )
    return len(decrypted)
