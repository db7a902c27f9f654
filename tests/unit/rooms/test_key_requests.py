"""Key re-requests back off per session: after the first delay, then twice as long each time."""

import itertools

from rooms.sync.key_requests import KeyRequestSchedule


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def asked_at(schedule: KeyRequestSchedule, clock: Clock, session: str, until: float) -> list:
    times = []
    while clock.now < until:
        if schedule.due(session):
            times.append(clock.now - 1000.0)
        clock.now += 1.0
    return times


def test_each_session_is_asked_again_less_and_less_often():
    clock = Clock()
    schedule = KeyRequestSchedule(4.0, clock=clock)
    assert asked_at(schedule, clock, "s1", 1000.0 + 130) == [0, 8, 24, 56, 120]


def test_sessions_back_off_independently_and_a_delivered_key_starts_over():
    clock = Clock()
    schedule = KeyRequestSchedule(4.0, clock=clock)
    assert schedule.due("a") and not schedule.due("a")
    clock.now += 3
    assert schedule.due("b")  # a new session is not held back by another's backoff
    schedule.forget("a")
    assert schedule.due("a")


def test_the_delay_is_capped():
    clock = Clock()
    schedule = KeyRequestSchedule(4.0, cap=30.0, clock=clock)
    times = asked_at(schedule, clock, "s", 1000.0 + 200)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert max(gaps) == 30
