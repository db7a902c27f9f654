"""Room names per the spec's "Calculating the display name for a room"."""

from rooms.naming import member_display_name, resolve_room

ME = "@me:hs"


def member(name: str | None, membership: str = "join", avatar: str | None = None) -> dict:
    content: dict = {"membership": membership}
    if name is not None:
        content["displayname"] = name
    if avatar:
        content["avatar_url"] = avatar
    return content


def test_explicit_name_wins_over_alias_and_members():
    state = {
        ("m.room.name", ""): {"name": "Design"},
        ("m.room.canonical_alias", ""): {"alias": "#design:hs"},
        ("m.room.member", "@a:hs"): member("Alice"),
    }
    resolved = resolve_room(
        own_user_id=ME, state=state, heroes=["@a:hs"], joined_count=2, invited_count=0
    )
    assert resolved.name == "Design"


def test_blank_name_falls_back_to_canonical_alias():
    state = {
        ("m.room.name", ""): {"name": "  "},
        ("m.room.canonical_alias", ""): {"alias": "#ops:hs"},
    }
    assert (
        resolve_room(own_user_id=ME, state=state, heroes=[], joined_count=3, invited_count=0).name
        == "#ops:hs"
    )


def test_heroes_name_a_direct_chat_and_give_its_avatar():
    state = {("m.room.member", "@a:hs"): member("Alice", avatar="mxc://hs/abc")}
    resolved = resolve_room(
        own_user_id=ME, state=state, heroes=["@a:hs"], joined_count=2, invited_count=0
    )
    assert resolved.name == "Alice"
    assert resolved.avatar_mxc == "mxc://hs/abc"


def test_more_members_than_heroes_counts_the_others():
    state = {("m.room.member", u): member(n) for u, n in [("@a:hs", "Alice"), ("@b:hs", "Bob")]}
    resolved = resolve_room(
        own_user_id=ME, state=state, heroes=["@a:hs", "@b:hs"], joined_count=5, invited_count=1
    )
    assert resolved.name == "Alice, Bob and 3 others"


def test_two_heroes_joined_with_and():
    state = {("m.room.member", u): member(n) for u, n in [("@a:hs", "Alice"), ("@b:hs", "Bob")]}
    assert (
        resolve_room(
            own_user_id=ME, state=state, heroes=["@a:hs", "@b:hs"], joined_count=3, invited_count=0
        ).name
        == "Alice and Bob"
    )


def test_alone_after_others_left_says_empty_was():
    state = {("m.room.member", "@a:hs"): member("Alice", membership="leave")}
    assert (
        resolve_room(
            own_user_id=ME, state=state, heroes=["@a:hs"], joined_count=1, invited_count=0
        ).name
        == "Empty room (was Alice)"
    )


def test_alone_without_heroes_is_empty_room():
    assert (
        resolve_room(own_user_id=ME, state={}, heroes=[], joined_count=1, invited_count=0).name
        == "Empty room"
    )


def test_own_user_never_counts_as_hero():
    state = {("m.room.member", ME): member("Me"), ("m.room.member", "@a:hs"): member("Alice")}
    assert (
        resolve_room(
            own_user_id=ME, state=state, heroes=[ME, "@a:hs"], joined_count=2, invited_count=0
        ).name
        == "Alice"
    )


def test_shared_display_names_are_disambiguated_by_user_id():
    state = {("m.room.member", "@a:hs"): member("Sam"), ("m.room.member", "@b:hs"): member("Sam")}
    assert member_display_name("@a:hs", state) == "Sam (@a:hs)"


def test_missing_or_non_string_display_name_uses_user_id():
    state = {("m.room.member", "@a:hs"): {"membership": "join", "displayname": 42}}
    assert member_display_name("@a:hs", state) == "@a:hs"


def test_without_summary_members_from_state_are_used():
    state = {("m.room.member", "@a:hs"): member("Alice"), ("m.room.member", ME): member("Me")}
    assert (
        resolve_room(
            own_user_id=ME, state=state, heroes=None, joined_count=None, invited_count=None
        ).name
        == "Alice"
    )
