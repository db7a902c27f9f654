"""An account's first /sync, stored in parts so the person's room list fills in as it is stored.

The first sync holds every room the account is in; stored in one transaction, the first sign-in
showed "Loading your rooms…" until the last room was written and then all of them at once. Here it
is cut into parts of whole rooms, the most recently active first, in parts that double in size
(1, 2, 4, … rooms, at most `LARGEST_PART`): each part is ingested and committed on its own, and
its commit pushes the room-list hint, so the first room is listed after one room's work.

Nothing can be lost by cutting: only the last part carries the sync's next_batch (the others store
an empty one, which is what an account that has not synced yet has). A host that stops half way
leaves the account without a since-token, so the next owner fetches the first sync again and
ingests it whole; events already stored are not stored twice (event_id is unique).
"""

from dataclasses import replace

from rooms.sync.batch import JoinedRoomBatch, SyncBatch

LARGEST_PART = 32


def first_sync_parts(batch: SyncBatch) -> list[SyncBatch]:
    """`batch` cut into parts to commit one after the other (a single part when it is small).

    Invitations come in the first part (they head the list), rooms left in the last."""
    joined = sorted(batch.joined, key=_last_activity, reverse=True)
    groups: list[list[JoinedRoomBatch]] = []
    size = 1
    while joined:
        groups.append(joined[:size])
        joined = joined[size:]
        size = min(size * 2, LARGEST_PART)
    if len(groups) <= 1:
        return [batch]
    parts = []
    for index, group in enumerate(groups):
        first, last = index == 0, index == len(groups) - 1
        parts.append(
            replace(
                batch,
                next_batch=batch.next_batch if last else "",
                joined=group,
                invited=batch.invited if first else [],
                left=batch.left if last else [],
                dropped_events=batch.dropped_events if last else 0,
            )
        )
    return parts


def _last_activity(room: JoinedRoomBatch) -> int:
    """The newest timestamp in the room's timeline (0 for none): the room list's own order."""
    stamps = [e.get("origin_server_ts") for e in room.timeline]
    return max((ts for ts in stamps if isinstance(ts, int) and not isinstance(ts, bool)), default=0)
