"""Describing a room reads only the state naming needs (rooms/services._naming_state); the name and
avatar it gives must be the ones the whole state gives, namesakes of the heroes included."""

import pytest

from rooms import services
from rooms.models import Room, RoomState
from rooms.naming import resolve_room

pytestmark = pytest.mark.django_db

ME = "@me:example.org"


def member(room: Room, user_id: str, name: str = "", membership: str = "join", **extra) -> None:
    content = {"membership": membership, **({"displayname": name} if name else {}), **extra}
    RoomState.objects.create(
        room=room,
        event_type="m.room.member",
        state_key=user_id,
        event_id=f"${user_id}",
        content=content,
    )


def both_ways(room: Room, heroes: list[str] | None, joined: int, invited: int = 0):
    whole = resolve_room(
        own_user_id=ME,
        state=services._state_map(room),
        heroes=heroes,
        joined_count=joined,
        invited_count=invited,
    )
    part = resolve_room(
        own_user_id=ME,
        state=services._naming_state(room, ME, heroes, joined + invited),
        heroes=heroes,
        joined_count=joined,
        invited_count=invited,
    )
    return whole, part


def test_a_room_named_after_its_members_disambiguates_namesakes_as_the_whole_state_does():
    room = Room.objects.create(room_id="!heroes:example.org")
    member(room, ME, "Me")
    member(room, "@ann:example.org", "Ann")
    member(room, "@bob:example.org", " Bob ")
    member(room, "@bob2:example.org", "Bob")  # not a hero, but shares a hero's name
    member(room, "@ann2:example.org", "Ann", membership="leave")  # gone: no longer a namesake
    for n in range(30):
        member(room, f"@user{n}:example.org", f"User {n}")
    heroes = ["@ann:example.org", "@bob:example.org"]
    whole, part = both_ways(room, heroes, joined=34)
    assert part == whole
    assert whole.name == "Ann, Bob (@bob:example.org) and 31 others"


def test_a_named_room_and_a_room_of_two_get_the_same_name_and_avatar():
    named = Room.objects.create(room_id="!named:example.org")
    RoomState.objects.create(
        room=named, event_type="m.room.name", state_key="", event_id="$n", content={"name": "Ops"}
    )
    for n in range(30):
        member(named, f"@user{n}:example.org", f"User {n}")
    assert both_ways(named, None, joined=31)[1].name == "Ops"
    assert both_ways(named, None, joined=31)[0] == both_ways(named, None, joined=31)[1]

    pair = Room.objects.create(room_id="!pair:example.org")
    member(pair, ME, "Me")
    member(pair, "@ann:example.org", "Ann", avatar_url="mxc://example.org/ann")
    whole, part = both_ways(pair, None, joined=2)
    assert part == whole
    assert (whole.name, whole.avatar_mxc) == ("Ann", "mxc://example.org/ann")
