"""Checking a room's archive chain link by link, and naming the first link that does not hold."""

from collections.abc import Iterator
from dataclasses import dataclass

from records.chain import GENESIS, digest_of, link_hash
from records.models import ArchiveChain, ArchiveRecord


@dataclass(frozen=True)
class BrokenLink:
    room_id: str
    position: int
    event_id: str
    reason: str

    def __str__(self) -> str:
        event = f" (event {self.event_id})" if self.event_id else ""
        return f"{self.room_id} position {self.position}{event}: {self.reason}"


@dataclass(frozen=True)
class RoomVerdict:
    room_id: str
    links: int
    head_hash: str
    broken: BrokenLink | None


def _links(room_id: str) -> Iterator[ArchiveRecord]:
    return ArchiveRecord.objects.filter(room_id=room_id).order_by("position").iterator(2000)


def verify_room(room_id: str) -> RoomVerdict:
    """Walk the chain from its base: every link in place, continuing from the one before, its
    content matching its digest (purged links keep only the digest), every purged link accounted
    for by a purge link, and the chain ending where its head says."""
    chain = ArchiveChain.objects.filter(room_id=room_id).first()
    base_position = chain.base_position if chain else 0
    prev = chain.base_hash if chain else GENESIS
    expected = base_position + 1
    emptied: dict[int, tuple[int, str]] = {}  # emptied link's position -> (its purge, event id)
    purges: dict[int, ArchiveRecord] = {}
    checkpoint = None
    count = 0

    def broken(position: int, event_id: str, reason: str) -> RoomVerdict:
        return RoomVerdict(room_id, count, prev, BrokenLink(room_id, position, event_id, reason))

    for link in _links(room_id):
        count += 1
        if chain is None:
            return broken(link.position, link.event_id, "the room's chain head is missing")
        if link.position != expected:
            if link.position < expected:
                return broken(link.position, link.event_id, "link before the chain's base")
            return broken(expected, "", f"link missing (the next one is {link.position})")
        if link.prev_hash != prev:
            return broken(link.position, link.event_id, "does not continue from the link before")
        if link.purged_at is None and digest_of(link) != link.digest:
            return broken(link.position, link.event_id, "content differs from what was archived")
        if link_hash(prev, link.digest) != link.hash:
            return broken(link.position, link.event_id, "hash does not match its digest")
        if link.purged_at is not None:
            if link.purged_by is None:
                return broken(link.position, link.event_id, "emptied without a purge")
            emptied[link.position] = (link.purged_by, link.event_id)
        if link.kind == ArchiveRecord.PURGE:
            purges[link.position] = link
        if link.kind == ArchiveRecord.CHECKPOINT:
            checkpoint = link
        prev = link.hash
        expected += 1
    if chain is not None and (expected - 1, prev) != (chain.head_position, chain.head_hash):
        return broken(
            expected, "", f"chain ends at {expected - 1}, its head says {chain.head_position}"
        )
    for position, (purge_position, event_id) in sorted(emptied.items()):
        purge = purges.get(purge_position)
        if purge is None and purge_position > base_position:
            return broken(
                position, event_id, f"emptied by purge {purge_position}, not in the chain"
            )
        if purge is not None and position not in (purge.body or {}).get("positions", []):
            return broken(
                position, event_id, f"emptied, but purge {purge_position} does not name it"
            )
    for purge_position, purge in sorted(purges.items()):
        for position in (purge.body or {}).get("positions", []):
            if position > base_position and emptied.get(position, (None,))[0] != purge_position:
                return broken(
                    position, "", f"named by purge {purge_position} but not emptied by it"
                )
    if base_position and (
        checkpoint is None
        or (checkpoint.body or {}).get("base") != [base_position, chain.base_hash]
    ):
        return broken(base_position, "", "the chain's base is not vouched for by a checkpoint")
    return RoomVerdict(room_id, count, prev, None)


def archived_rooms() -> list[str]:
    """Every room with a chain head or any link (a room whose head row was deleted is still
    verified, and fails)."""
    heads = set(ArchiveChain.objects.values_list("room_id", flat=True))
    links = set(ArchiveRecord.objects.order_by().values_list("room_id", flat=True).distinct())
    return sorted(heads | links)
