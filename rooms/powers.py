"""Who may do what in a room: power levels from the room state, with room version 12's rule that
the room's creators outrank everyone and are not listed in m.room.power_levels."""

from dataclasses import dataclass, field

from rooms.models import Room, RoomState

CREATOR_LEVEL = 2**53  # "infinite" (MSC4289)
CREATOR_VERSIONS = {"12", "org.matrix.hydra.11"}


def _int(value, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


@dataclass(frozen=True)
class Powers:
    users: dict[str, int] = field(default_factory=dict)
    users_default: int = 0
    events_default: int = 0
    state_default: int = 50
    redact: int = 50
    creators: frozenset[str] = frozenset()

    def level(self, user_id: str) -> int:
        if user_id in self.creators:
            return CREATOR_LEVEL
        return self.users.get(user_id, self.users_default)


def room_powers(room: Room) -> Powers:
    """One query: the room's power levels and create event (with its sender, a creator)."""
    rows = RoomState.objects.filter(
        room=room, state_key="", event_type__in=["m.room.power_levels", "m.room.create"]
    ).values_list("event_type", "content", "sender")
    state = {
        event_type: (content if isinstance(content, dict) else {}, sender)
        for event_type, content, sender in rows
    }
    power = state.get("m.room.power_levels", ({}, ""))[0]
    create, sender = state.get("m.room.create", ({}, ""))
    creators: frozenset[str] = frozenset()
    if str(create.get("room_version", "1")) in CREATOR_VERSIONS:
        extra = create.get("additional_creators")
        extra = [u for u in extra if isinstance(u, str)] if isinstance(extra, list) else []
        creators = frozenset([sender, *extra] if sender else extra)
    users = power.get("users") if isinstance(power.get("users"), dict) else {}
    return Powers(
        users={u: v for u, v in users.items() if isinstance(v, int)},
        users_default=_int(power.get("users_default"), 0),
        events_default=_int(power.get("events_default"), 0),
        state_default=_int(power.get("state_default"), 50),
        redact=_int(power.get("redact"), 50),
        creators=creators,
    )
