"""How many accounts a sync host claims or gives back: the fair share, nothing left without an
owner while some host has room, and no back-and-forth."""

from rooms.sync.balance import Peer, claim_limit, fair_share, release_count


def test_the_fair_share_rounds_up_and_a_lone_host_takes_everything():
    assert fair_share(12, 3) == 4
    assert fair_share(13, 3) == 5
    assert fair_share(12, 0) == 12
    assert claim_limit(capacity=500, owned=0, free=12, active=12, peers=[]) == 12


def test_a_host_claims_only_its_share_while_the_others_have_room():
    peers = [Peer(500, 0), Peer(500, 0)]
    assert claim_limit(capacity=500, owned=0, free=12, active=12, peers=peers) == 4
    assert claim_limit(capacity=500, owned=4, free=8, active=12, peers=peers) == 0


def test_a_host_never_claims_beyond_its_capacity_or_what_is_free():
    assert claim_limit(capacity=3, owned=0, free=12, active=12, peers=[]) == 3
    assert claim_limit(capacity=500, owned=0, free=2, active=12, peers=[Peer(500, 10)]) == 2


def test_accounts_no_live_host_has_room_for_are_split_beyond_the_share():
    # A dead host still counts as live (its heartbeat is not a lease old yet): its 4 accounts are
    # free, the two survivors hold their 4 each. Nothing waits: each takes half.
    peers = [Peer(500, 4), Peer(500, 4)]  # the other survivor, the dead host's last heartbeat
    assert claim_limit(capacity=500, owned=4, free=4, active=12, peers=peers) == 2
    # A peer at capacity leaves its share to the others.
    assert claim_limit(capacity=500, owned=0, free=12, active=12, peers=[Peer(2, 0)]) == 10


def test_a_host_above_its_share_gives_back_a_few_and_only_what_others_can_take():
    two_new = [Peer(500, 0), Peer(500, 0)]
    assert release_count(owned=12, active=12, peers=two_new) == 2  # a few per heartbeat
    assert release_count(owned=12, active=12, peers=[Peer(500, 4), Peer(500, 4)]) == 0  # no room
    assert release_count(owned=12, active=12, peers=[Peer(500, 3), Peer(2, 2)]) == 1
    assert release_count(owned=5, active=12, peers=two_new) == 0  # within the slack
    assert release_count(owned=4, active=12, peers=[]) == 0  # alone: everything is its share
    big = [Peer(500, 0)] * 2
    assert release_count(owned=900, active=900, peers=big) == 30  # a tenth of the share of 300


def test_spread_settles_without_back_and_forth():
    """Three hosts, the first took all twelve: each heartbeat in turn claims and gives back, until
    nothing moves; then no host is above its share plus the slack, and nothing is unowned."""
    capacity, active = 500, 12
    owned = [12, 0, 0]
    moves = 0
    for _round in range(20):
        moved = 0
        for me in range(3):
            peers = [Peer(capacity, owned[o]) for o in range(3) if o != me]
            free = active - sum(owned)
            took = claim_limit(
                capacity=capacity, owned=owned[me], free=free, active=active, peers=peers
            )
            owned[me] += took
            gave = release_count(owned=owned[me], active=active, peers=peers)
            owned[me] -= gave
            moved += took + gave
        moves += moved
        if moved == 0 and sum(owned) == active:
            break
    assert sum(owned) == active
    assert max(owned) <= 5, owned
    assert moves <= 2 * 8 + 2, moves  # each surplus account moves once (released, claimed)
