"""Room and member names as the Matrix spec computes them ("Calculating the display name for a
room"), as pure functions over state so they are unit-testable and shared by ingest and pages."""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

StateMap = Mapping[tuple[str, str], Mapping]
"""(event type, state key) -> content."""


@dataclass(frozen=True)
class ResolvedRoom:
    name: str
    avatar_mxc: str


def _text(value: object, limit: int = 255) -> str:
    return value.strip()[:limit] if isinstance(value, str) else ""


def member_display_name(user_id: str, state: StateMap) -> str:
    """A member's name, disambiguated with their user id when another joined/invited member shares it."""
    content = state.get(("m.room.member", user_id), {})
    name = _text(content.get("displayname"))
    if not name:
        return user_id
    for (event_type, other), other_content in state.items():
        if event_type != "m.room.member" or other == user_id:
            continue
        if other_content.get("membership") not in ("join", "invite"):
            continue
        if _text(other_content.get("displayname")) == name:
            return f"{name} ({user_id})"
    return name


def _hero_names(heroes: Iterable[str], state: StateMap) -> list[str]:
    return [member_display_name(hero, state) for hero in heroes]


def resolve_room(
    *,
    own_user_id: str,
    state: StateMap,
    heroes: list[str] | None,
    joined_count: int | None,
    invited_count: int | None,
) -> ResolvedRoom:
    """Name and avatar of a room for one member, following the spec's order of preference."""
    name = _text(state.get(("m.room.name", ""), {}).get("name"))
    if not name:
        name = _text(state.get(("m.room.canonical_alias", ""), {}).get("alias"))
    members = _members(own_user_id, state)
    if heroes is None:
        heroes = members[:5]
    heroes = [hero for hero in heroes if isinstance(hero, str) and hero != own_user_id][:5]
    if joined_count is None or invited_count is None:
        joined_count = 1 + len(members)
        invited_count = 0
    total = joined_count + invited_count
    if not name:
        name = _name_from_heroes(_hero_names(heroes, state), total)
    avatar = _text(state.get(("m.room.avatar", ""), {}).get("url"), 512)
    if not avatar and len(heroes) == 1 and total <= 2:
        avatar = _text(state.get(("m.room.member", heroes[0]), {}).get("avatar_url"), 512)
    return ResolvedRoom(name=name, avatar_mxc=avatar)


def _members(own_user_id: str, state: StateMap) -> list[str]:
    return sorted(
        key
        for (event_type, key), content in state.items()
        if event_type == "m.room.member"
        and key != own_user_id
        and content.get("membership") in ("join", "invite")
    )


def _name_from_heroes(names: list[str], total: int) -> str:
    if total <= 1:
        if not names:
            return "Empty room"
        return f"Empty room (was {_join_names(names)})"
    if not names:
        return "Empty room"
    others = total - 1 - len(names)
    if others > 0:
        return f"{', '.join(names)} and {others} other{'s' if others > 1 else ''}"
    return _join_names(names)


def _join_names(names: list[str]) -> str:
    if len(names) == 1:
        return names[0]
    return f"{', '.join(names[:-1])} and {names[-1]}"


def member_names(members: Mapping[str, Mapping]) -> dict[str, str]:
    """Display names for many members at once (user id -> content), disambiguated in O(n)."""
    names = {user_id: _text(content.get("displayname")) for user_id, content in members.items()}
    counts: dict[str, int] = {}
    for user_id, content in members.items():
        if names[user_id] and content.get("membership") in ("join", "invite"):
            counts[names[user_id]] = counts.get(names[user_id], 0) + 1
    return {
        user_id: (f"{name} ({user_id})" if counts.get(name, 0) > 1 else name) if name else user_id
        for user_id, name in names.items()
    }
