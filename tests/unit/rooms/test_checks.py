"""What people type for rooms and people is checked before any homeserver call."""

import pytest

from rooms import services


@pytest.mark.parametrize(
    "address", ["#team:example.org", "!abc:example.org:8448", "!OpaqueV12Id_-x", "#a-b.c:localhost"]
)
def test_room_addresses_accepted(address):
    assert services.ADDRESS_RE.match(address)


@pytest.mark.parametrize("address", ["team", "#team", "@alice:example.org", "! space:x", "#a:b c"])
def test_room_addresses_refused(address):
    with pytest.raises(services.MessageRejected):
        services.room_join_by_address(account=None, address=address)


@pytest.mark.parametrize("user_id", ["alice", "@Alice:example.org", "@a:b c", "@:x", "#a:b"])
def test_user_ids_refused(user_id):
    with pytest.raises(services.MessageRejected):
        services.check_user_id(user_id)


def test_room_fields():
    assert services.check_room_fields(name="  Ops ", topic=" t ") == ("Ops", "t")
    for name, topic in (("", ""), ("x" * 256, ""), ("ok", "t" * 2001)):
        with pytest.raises(services.MessageRejected):
            services.check_room_fields(name=name, topic=topic)
