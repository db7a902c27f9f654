"""Between /sync and ingest: encrypted timeline events replaced by what their senders wrote."""

from accounts.matrix.crypto import Absorbed, Decrypted, RoomEvents, Undecrypted
from rooms.sync.batch import SyncBatch


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
                joined.timeline[index] = result.event
            elif isinstance(result, Undecrypted) and result.reason == "missing_key":
                missing.append((joined.room_id, event))
    return missing
