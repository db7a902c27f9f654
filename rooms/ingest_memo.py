"""What the accounts of one group commit (rooms/ingest_group.py) share while their syncs are stored.

Every account of a room receives the same events and the same state in its own /sync. In one
transaction, the first account looks them up or writes them; the accounts after it ask this memo
instead of the database: the room row, the events' primary keys, the state rows held; and what
is read for the whole group in one query each: the accounts' membership rows, which of the
events they already hold in their timelines (a replayed sync), and which accounts have an open
page (one Redis round trip after commit). Per-account rows (timeline entries, memberships, the
since-token) are still each account's own: the memo shares only what is shared in the database.

The memo lives for one group's transaction on the thread running it; outside a group, `current()`
is None and ingest asks the database as before.
"""

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

from django.utils import timezone

from rooms import open_pages
from rooms.models import Membership, Room, TimelineEntry

DEFERRABLE = {"last_activity_ts", "notification_count", "highlight_count", "read_up_to_ts"}


@dataclass
class GroupMemo:
    rooms: dict[str, Room] = field(default_factory=dict)  # room_id -> row
    event_pks: dict[str, int] = field(default_factory=dict)  # event_id -> Event pk
    # (room pk, type, state_key) -> (event_id, content) of the RoomState row as it stands now
    state: dict[tuple[int, str, str], tuple[str, dict]] = field(default_factory=dict)
    memberships: dict[tuple[int, str], Membership] = field(default_factory=dict)
    prefetched: tuple[set[int], set[str]] = field(default_factory=lambda: (set(), set()))
    open_pages: dict[int, bool] = field(default_factory=dict)
    # (account, event_id) timeline rows held before the group began, for the accounts in
    # `entries_read` (one query for the group instead of one per account)
    entries: set[tuple[int, str]] = field(default_factory=set)
    entries_read: set[int] = field(default_factory=set)
    # Membership columns a sync of plain messages changes, saved together at the end of the
    # group: (column, value) pairs -> the membership rows to set them on.
    saves: dict[tuple[tuple[str, object], ...], list[int]] = field(default_factory=dict)

    def defer_save(self, membership: Membership, changed: list[str]) -> bool:
        """Keep the membership's changed columns for one UPDATE with every row that gets the
        same values (a message reaches a room's accounts with the same timestamp); only columns
        nothing else in a sync's ingest writes (a leave, the direct flags) are deferred."""
        if membership.pk is None or not set(changed) <= DEFERRABLE:
            return False
        values = tuple(sorted((name, getattr(membership, name)) for name in changed))
        self.saves.setdefault(values, []).append(membership.pk)
        return True

    def flush_saves(self) -> None:
        now = timezone.now()
        for values, pks in self.saves.items():
            Membership.objects.filter(pk__in=pks).update(**dict(values), updated_at=now)
        self.saves.clear()

    def entries_held(self, account_id: int, event_ids: list[str]) -> set[str] | None:
        """Which of these events the account already has in its timeline, if the group read
        it (None: the caller asks the database). Only the account's own sync writes its rows,
        and a group holds one sync per account, so what was read at the start still holds."""
        if account_id not in self.entries_read:
            return None
        return {event_id for event_id in event_ids if (account_id, event_id) in self.entries}

    def prefetch_entries(self, account_ids: set[int], event_ids: set[str]) -> None:
        """Read which of these events the accounts already have in their timelines (replays)."""
        if event_ids:
            rows = TimelineEntry.objects.filter(
                account_id__in=account_ids, event__event_id__in=event_ids
            ).values_list("account_id", "event__event_id")
            self.entries.update(rows)
        self.entries_read = set(account_ids)

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
