"""What the accounts of one group commit (rooms/ingest_group.py) share while their syncs are stored.

Every account of a room receives the same events and the same state in its own /sync. In one
transaction, the first account looks them up or writes them; the accounts after it ask this memo
instead of the database: the room row, the events' primary keys (and which of them this very
transaction inserted, so nobody can have a timeline row for them yet), the state rows held, the
accounts' membership rows (read for the whole group in one query), and which accounts have an open
page (one Redis round trip after commit). Per-account rows (timeline entries, memberships, the
since-token) are still each account's own: the memo shares only what is shared in the database.

The memo lives for one group's transaction on the thread running it; outside a group, `current()`
is None and ingest asks the database as before.
"""

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

from rooms import open_pages
from rooms.models import Membership, Room


@dataclass
class GroupMemo:
    rooms: dict[str, Room] = field(default_factory=dict)  # room_id -> row
    event_pks: dict[str, int] = field(default_factory=dict)  # event_id -> Event pk
    inserted: set[str] = field(default_factory=set)  # event ids this transaction inserted
    # (room pk, type, state_key) -> (event_id, content) of the RoomState row as it stands now
    state: dict[tuple[int, str, str], tuple[str, dict]] = field(default_factory=dict)
    memberships: dict[tuple[int, str], Membership] = field(default_factory=dict)
    prefetched: tuple[set[int], set[str]] = field(default_factory=lambda: (set(), set()))
    open_pages: dict[int, bool] = field(default_factory=dict)

    def membership(self, account_id: int, room: Room) -> Membership | None:
        """The account's membership row of the room, or a new one, if the group read it; None if
        it did not (the caller reads it)."""
        accounts, room_ids = self.prefetched
        if account_id not in accounts or room.room_id not in room_ids:
            return None
        found = self.memberships.get((account_id, room.room_id))
        return found or Membership(account_id=account_id, room=room)

    def prefetch_memberships(self, account_ids: set[int], room_ids: set[str]) -> None:
        """Read the accounts' memberships of these rooms in one query (rooms too)."""
        for room in Room.objects.filter(room_id__in=room_ids):
            self.rooms[room.room_id] = room
        rows = Membership.objects.filter(
            account_id__in=account_ids, room__room_id__in=room_ids
        ).select_related("room")
        for membership in rows:
            membership.room = self.rooms.get(membership.room.room_id, membership.room)
            self.memberships[membership.account_id, membership.room.room_id] = membership
        # Rooms not stored yet are created by the first account's ingest: only pairs whose room
        # was found count as read.
        self.prefetched = (set(account_ids), set(self.rooms))


_local = threading.local()


def current() -> GroupMemo | None:
    return getattr(_local, "memo", None)


@contextlib.contextmanager
def group() -> Iterator[GroupMemo]:
    memo = GroupMemo()
    _local.memo = memo
    try:
        yield memo
    finally:
        _local.memo = None


def any_open(account_id: int) -> bool:
    """Whether the account has an open page: the group's answer if it asked, else Redis."""
    memo = current()
    if memo is not None and account_id in memo.open_pages:
        return memo.open_pages[account_id]
    return open_pages.any_open(account_id)
