"""Search against a real Synapse and sync host: what each person finds is what their own account
received and their own device could read, in English and Japanese, with edits, redactions and
filters applied (the search page itself, as the browser asks for it)."""

import re
from datetime import date, timedelta

import pytest
from asgiref.sync import sync_to_async
from nio import RoomCreateResponse

from accounts.matrix.http import quote
from rooms.models import TimelineEntry
from rooms.search_index import search_index_run
from tests.integration.rooms.helpers import join
from tests.integration.rooms.test_encryption import (
    ENCRYPTION,
    decrypted,
    encrypted_membership,
    encrypting_peer,
    peer_send,
    running_host,
    until,
)
from tests.integration.rooms.test_isolation_encrypted import sealed_for
from tests.integration.rooms.test_isolation_history import (
    Person,
    create_room,
    has_event,
    invite,
    membership_is,
)

pytestmark = pytest.mark.django_db(transaction=True)


def search_page(person: Person, query: str, **filters) -> list[str]:
    """The event ids on the person's search page, in order (the page the browser gets)."""
    page = person.client.get("/search/", {"q": query, **filters}).content.decode()
    return re.findall(r'class="search-hit" data-event-id="([^"]+)"', page)


async def found(person: Person, query: str, **filters) -> list[str]:
    return await sync_to_async(search_page)(person, query, **filters)


def readable_for(person: Person, event_id: str):
    def check():
        return TimelineEntry.objects.filter(
            account=person.account, event__event_id=event_id, sealed=False
        ).exists()

    check.__name__ = f"readable for {person.creds.localpart}: {event_id}"
    return check


async def indexed() -> None:
    await sync_to_async(search_index_run)()


async def test_each_person_finds_only_what_their_own_account_received(synapse, matrix_user_factory):
    colleague, viewer, outsider = [
        await sync_to_async(Person)(matrix_user_factory()) for _ in range(3)
    ]
    room_id = await sync_to_async(create_room)(colleague, "joined")
    other_room = await sync_to_async(create_room)(colleague, "joined")
    outsider_room = await sync_to_async(create_room)(outsider, "joined")
    async with running_host():
        before = await sync_to_async(colleague.say)(room_id, "会議 before the viewer joined")
        for room in (room_id, other_room):
            await sync_to_async(invite)(colleague, room, viewer)
            await sync_to_async(join)(viewer.account, room)
            await until(membership_is(viewer, room, "join"))
        japanese = await sync_to_async(colleague.say)(room_id, "明日の会議は10時")
        english = await sync_to_async(colleague.say)(room_id, "Quarterly budget meeting")
        own = await sync_to_async(viewer.say)(room_id, "my budget draft")
        elsewhere = await sync_to_async(colleague.say)(other_room, "budget for the other team")
        await sync_to_async(colleague.image)(room_id)  # body "dot.png"
        lunch = await sync_to_async(colleague.say)(room_id, "lunch at noon")
        doomed = await sync_to_async(colleague.say)(room_id, "confidential merger notes")
        secret = await sync_to_async(outsider.say)(outsider_room, "会議 budget of the outsider")
        await until(has_event(viewer, doomed))
        await until(has_event(colleague, doomed))
        await until(has_event(outsider, secret))
        await indexed()

        assert await found(viewer, "会議") == [japanese]  # not the one from before they joined
        assert await found(colleague, "会議") == [japanese, before]
        assert await found(viewer, "会") == [japanese]
        assert await found(viewer, "budget") == [elsewhere, own, english]
        assert await found(viewer, "QUARTERLY meeting") == [english]
        assert await found(viewer, "merger") == [doomed]
        assert await found(outsider, "budget") == [secret] and await found(outsider, "会議") == [
            secret
        ]

        # Filters: room, sender, file, dates.
        assert await found(viewer, "budget", room=other_room) == [elsewhere]
        assert await found(viewer, "budget", sender=viewer.creds.user_id) == [own]
        assert len(await found(viewer, "dot", has_file="on")) == 1
        assert await found(viewer, "budget", has_file="on") == []
        tomorrow = (date.today() + timedelta(days=1)).isoformat()
        assert await found(viewer, "budget", since=tomorrow) == []
        assert await found(viewer, "budget", until=tomorrow) == [elsewhere, own, english]

        # An edit replaces the text; a redaction removes the message.
        edit = await sync_to_async(colleague.say)(
            room_id,
            "* dinner at eight",
            **{
                "m.new_content": {"msgtype": "m.text", "body": "dinner at eight"},
                "m.relates_to": {"rel_type": "m.replace", "event_id": lunch},
            },
        )
        redaction = await sync_to_async(colleague.call)(
            "PUT",
            f"/_matrix/client/v3/rooms/{quote(room_id)}/redact/{quote(doomed)}/r1",
            {"reason": "oops"},
        )
        for person in (viewer, colleague):
            await until(has_event(person, edit))
            await until(has_event(person, redaction["event_id"]))
        await indexed()
        assert await found(viewer, "lunch") == []
        assert await found(viewer, "dinner") == [lunch]
        assert await found(viewer, "merger") == [] and await found(colleague, "merger") == []


async def test_an_encrypted_message_is_found_by_the_device_that_decrypted_it_only(
    synapse, matrix_user_factory, tmp_path
):
    colleague = await sync_to_async(Person)(matrix_user_factory())
    viewer_creds = matrix_user_factory()
    peer = await encrypting_peer(synapse, matrix_user_factory(), tmp_path / "peer")
    created = await peer.room_create(
        name="Board", invite=[colleague.creds.user_id], initial_state=[ENCRYPTION]
    )
    assert isinstance(created, RoomCreateResponse)
    room_id = created.room_id
    await sync_to_async(join)(colleague.account, room_id)
    try:
        async with running_host():
            await until(encrypted_membership(colleague.account, room_id))
            secret = await peer_send(peer, room_id, "暗号化された会議の議事録 minutes")
            await until(decrypted(secret))

            # The viewer joins later; the sender's device never gave its device that key.
            viewer = await sync_to_async(Person)(viewer_creds)
            await peer.room_invite(room_id, viewer_creds.user_id)
            await sync_to_async(join)(viewer.account, room_id)
            await until(sealed_for(viewer, secret))
            later = await peer_send(peer, room_id, "later minutes for everyone")
            await until(readable_for(viewer, later))
            await until(readable_for(colleague, later))
            await indexed()

            assert await found(colleague, "会議") == [secret]
            assert await found(colleague, "minutes") == [later, secret]
            assert await found(viewer, "会議") == []
            assert await found(viewer, "minutes") == [later]
    finally:
        await peer.close()
