"""When to ask our other devices again for a room key we still lack.

A key request goes to every device of the person's; asking for every missing key on every pass
floods them (and the homeserver) for keys that may never come. So each session is asked again
after KEY_REQUEST_RETRY_SECONDS, then after twice as long each time (capped), and never again once
its sender withheld the key (m.room_key.withheld: it said it will not share it)."""

import time
from collections.abc import Callable

CAP_SECONDS = 6 * 3600.0


class KeyRequestSchedule:
    """Per Megolm session: how often it was asked again and when it is next due (in memory: a
    new owner of the account starts over, which costs one request per missing key)."""

    def __init__(
        self, first_delay: float, *, cap: float = CAP_SECONDS, clock: Callable = time.monotonic
    ) -> None:
        self.first_delay = first_delay
        self.cap = cap
        self._clock = clock
        self._due: dict[str, tuple[int, float]] = {}  # session id -> (times asked again, due at)

    def due(self, session_id: str) -> bool:
        """Whether to ask again now; if so, the next time is scheduled twice as far away."""
        now = self._clock()
        asked, due_at = self._due.get(session_id, (0, now))
        if now < due_at:
            return False
        asked += 1
        self._due[session_id] = (asked, now + min(self.cap, self.first_delay * 2**asked))
        return True

    def forget(self, session_id: str) -> None:
        """The key arrived: nothing more to schedule."""
        self._due.pop(session_id, None)
