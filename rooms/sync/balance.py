"""How many accounts a sync host claims or gives up at a heartbeat, so accounts spread over the live
hosts: pure arithmetic on what the heartbeat read (leases.balance_view), tested without a database.

Each host aims at its fair share, ceil(active accounts / live hosts). It claims up to that share,
and beyond it only for accounts that no live host has room for within its share (a dead host still
counted as live, a host at capacity), split evenly, so nothing waits for an owner while any host has
room. A host above its share by more than the slack gives a few back per heartbeat, and only as many
as the other live hosts have room for, so a join or a leave moves accounts gradually, never back
and forth.
"""

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Peer:
    """Another live host as its last heartbeat described it."""

    capacity: int
    account_count: int


def fair_share(active: int, live_hosts: int) -> int:
    return math.ceil(active / max(1, live_hosts))


def slack(fair: int) -> int:
    """How far above its fair share a host may stay: one account, or a tenth of a big share."""
    return max(1, fair // 10)


def release_step(fair: int) -> int:
    """At most this many accounts leave a host at one heartbeat."""
    return max(2, fair // 10)


def _room_within_share(peers: list[Peer], fair: int) -> int:
    return sum(max(0, min(p.capacity, fair) - p.account_count) for p in peers)


def claim_limit(*, capacity: int, owned: int, free: int, active: int, peers: list[Peer]) -> int:
    """How many free accounts this host claims now."""
    fair = fair_share(active, len(peers) + 1)
    mine = max(0, min(capacity, fair) - owned)
    overflow = max(0, free - mine - _room_within_share(peers, fair))
    # Shared by the hosts that can hold more than their share: us and peers below capacity.
    takers = 1 + sum(p.capacity > max(fair, p.account_count) for p in peers)
    extra = math.ceil(overflow / takers)
    return max(0, min(capacity - owned, mine + extra, free))


def release_count(*, owned: int, active: int, peers: list[Peer]) -> int:
    """How many of its accounts this host gives back now for other live hosts to claim."""
    fair = fair_share(active, len(peers) + 1)
    if owned - fair <= slack(fair):
        return 0
    return min(owned - fair, _room_within_share(peers, fair), release_step(fair))
