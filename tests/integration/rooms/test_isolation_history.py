"""Against a real Synapse and sync host: people who joined late, left for a while, were invited
later or never invited see nothing their own account did not receive, on any page, fragment,
live push or media response, while the colleague who did receive it sees all of it."""

import asyncio
import io
import time
import uuid

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.test import AsyncClient, Client

from accounts.matrix import media_api
from accounts.matrix.http import matrix_request, quote
from accounts.models import MatrixAccount
from rooms import media, open_pages
from rooms.models import Membership, TimelineEntry
from rooms.notify import account_group
from rooms.search_index import search_index_run
from tests.fixtures.images import PNG
from tests.integration.rooms.helpers import join, signed_in_account
from tests.integration.rooms.test_encryption import running_host, until

pytestmark = pytest.mark.django_db(transaction=True)


class Person:
    """A signed-in person of the workspace: their browser (Django client) and Matrix account."""

    def __init__(self, creds) -> None:
        self.creds = creds
        self.client = Client()
        self.account: MatrixAccount = signed_in_account(self.client, creds)
        self.pushed: list[str] = []

    def call(self, method: str, path: str, body: dict | None = None) -> dict:
        return matrix_request(
            self.account.homeserver_url, method, path, token=self.creds.access_token, body=body
        )

    def send(self, room_id: str, content: dict, event_type: str = "m.room.message") -> str:
        path = f"/_matrix/client/v3/rooms/{quote(room_id)}/send/{event_type}/{uuid.uuid4().hex}"
        return self.call("PUT", path, content)["event_id"]

    def say(self, room_id: str, body: str, **extra) -> str:
        return self.send(room_id, {"msgtype": "m.text", "body": body, **extra})

    def image(self, room_id: str) -> str:
        uri = media_api.upload(
            self.account.homeserver_url,
            access_token=self.creds.access_token,
            stream=io.BytesIO(PNG),
            size=len(PNG),
            content_type="image/png",
            filename="dot.png",
        )
        self.send(room_id, {"msgtype": "m.image", "body": "dot.png", "url": uri})
        return uri

    def pages(self, room_id: str, thread_root: str = "") -> str:
        parts = [
            self.client.get(f"/rooms/{room_id}/").content.decode(),
            self.client.get(f"/rooms/{room_id}/events/", {"after": 0}).content.decode(),
            self.client.get("/rooms/list/").content.decode(),
            self.client.get("/").content.decode(),
            self.search("mark"),  # every marker text holds the word
        ]
        if thread_root:
            parts.append(
                self.client.get(f"/rooms/{room_id}/thread/", {"root": thread_root}).content.decode()
            )
        return "\n".join(parts)

    def search(self, query: str) -> str:
        """The search page after the indexer caught up with everything stored (highlights
        taken out, so a marker text reads whole)."""
        search_index_run()
        page = self.client.get("/search/", {"q": query}).content.decode()
        return page.replace("<mark>", "").replace("</mark>", "")

    async def media(self, uri: str) -> list[tuple[int, bytes]]:
        """The file and its thumbnail through our proxy, as the browser would ask for them."""
        browser = AsyncClient()
        browser.cookies = self.client.cookies
        server_name, media_id = media_api.parse_mxc(uri)
        answers = []
        for path in (
            f"/media/file/{server_name}/{media_id}",
            f"/media/avatar/{server_name}/{media_id}",
        ):
            response = await browser.get(path)
            body = b""
            if response.status_code == 200 and path.startswith("/media/file/"):
                assert response.is_async, "a sync iterator is read whole under ASGI"
            if response.status_code == 200:
                body = (
                    b"".join([chunk async for chunk in response.streaming_content])
                    if response.streaming
                    else response.content
                )
            answers.append((response.status_code, body))
        return answers


def create_room(owner: Person, visibility: str) -> str:
    return owner.call(
        "POST",
        "/_matrix/client/v3/createRoom",
        {
            "name": "Isolation",
            "preset": "private_chat",
            "initial_state": [
                {
                    "type": "m.room.history_visibility",
                    "state_key": "",
                    "content": {"history_visibility": visibility},
                }
            ],
        },
    )["room_id"]


def invite(owner: Person, room_id: str, person: Person) -> None:
    owner.call(
        "POST",
        f"/_matrix/client/v3/rooms/{quote(room_id)}/invite",
        {"user_id": person.creds.user_id},
    )


def membership_is(person: Person, room_id: str, state: str):
    def check():
        return Membership.objects.filter(
            account=person.account, room__room_id=room_id, membership=state
        ).exists()

    check.__name__ = f"{person.creds.localpart} {state} {room_id}"
    return check


def has_event(person: Person, event_id: str):
    def check():
        return TimelineEntry.objects.filter(
            account=person.account, event__event_id=event_id
        ).exists()

    check.__name__ = f"{person.creds.localpart} has {event_id}"
    return check


async def listen(person: Person) -> tuple[str, object]:
    """Join the person's live group as their websocket would (the consumer forwards unchanged)."""
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add(account_group(person.account.pk), channel)
    await open_pages.page_seen(person.account.pk, channel)  # notify renders only for open pages
    return channel, layer


async def drain_until(person: Person, listener, marker: str, timeout: float = 30.0) -> None:
    """Collect the person's live pushes until one carries `marker`: pushes arrive in order, so
    everything sent before it has arrived too."""
    channel, layer = listener
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            message = await asyncio.wait_for(layer.receive(channel), deadline - time.monotonic())
        except TimeoutError:
            break
        person.pushed.append(message.get("html", ""))
        if marker in person.pushed[-1]:
            return
    raise AssertionError(f"no live push with {marker} for {person.creds.localpart}")


async def test_joined_late_left_and_never_invited_see_nothing_they_did_not_receive(
    synapse, matrix_user_factory
):
    colleague, viewer, outsider = [
        await sync_to_async(Person)(matrix_user_factory()) for _ in range(3)
    ]
    room_id = await sync_to_async(create_room)(colleague, "joined")
    viewer_live, colleague_live = await listen(viewer), await listen(colleague)
    async with running_host():
        # Before the viewer joins: history visible to members only.
        before = await sync_to_async(colleague.say)(room_id, "MARK-before-join")
        image_before = await sync_to_async(colleague.image)(room_id)
        await sync_to_async(invite)(colleague, room_id, viewer)
        await sync_to_async(join)(viewer.account, room_id)
        await until(membership_is(viewer, room_id, "join"))
        shared = await sync_to_async(colleague.say)(room_id, "MARK-both-see")
        await sync_to_async(colleague.say)(
            room_id, "answer one", **{"m.relates_to": {"m.in_reply_to": {"event_id": before}}}
        )
        await until(has_event(viewer, shared))

        # The viewer leaves for a while; what happens meanwhile is not theirs.
        await sync_to_async(viewer.call)(
            "POST", f"/_matrix/client/v3/rooms/{quote(room_id)}/leave", {}
        )
        await until(membership_is(viewer, room_id, "leave"))
        away = await sync_to_async(colleague.say)(room_id, "MARK-while-away")
        reaction = {"m.relates_to": {"rel_type": "m.annotation", "event_id": shared, "key": "🦄"}}
        await sync_to_async(colleague.send)(room_id, reaction, "m.reaction")
        await sync_to_async(colleague.say)(
            room_id,
            "* MARK-edit-while-away",
            **{
                "m.new_content": {"msgtype": "m.text", "body": "MARK-edit-while-away"},
                "m.relates_to": {"rel_type": "m.replace", "event_id": shared},
            },
        )
        await sync_to_async(colleague.say)(
            room_id,
            "MARK-thread-while-away",
            **{"m.relates_to": {"rel_type": "m.thread", "event_id": shared}},
        )
        image_away = await sync_to_async(colleague.image)(room_id)

        # Back again: a reply to what they missed, then a last message to know all has arrived.
        await sync_to_async(invite)(colleague, room_id, viewer)
        await sync_to_async(join)(viewer.account, room_id)
        await until(membership_is(viewer, room_id, "join"))
        await sync_to_async(colleague.say)(
            room_id, "answer two", **{"m.relates_to": {"m.in_reply_to": {"event_id": away}}}
        )
        last = await sync_to_async(colleague.say)(room_id, "MARK-last")
        await until(has_event(viewer, last))
        await until(has_event(colleague, last))
        await drain_until(viewer, viewer_live, "MARK-last")
        await drain_until(colleague, colleague_live, "MARK-last")

        seen = await sync_to_async(viewer.pages)(room_id, thread_root=shared)
        seen += "".join(viewer.pushed)
        hidden = (
            "MARK-before-join",
            "MARK-while-away",
            "MARK-edit-while-away",
            "MARK-thread-while-away",
            "🦄",
        )
        for marker in hidden:
            assert marker not in seen, marker
        assert "MARK-both-see" in seen and "MARK-last" in seen
        assert seen.count("Original message not available") >= 2  # both answers' quotes
        for uri in (image_before, image_away):
            assert [status for status, _ in await viewer.media(uri)] == [404, 404], uri

        # The colleague received all of it: the same reads show it (so this test can fail).
        theirs = await sync_to_async(colleague.pages)(room_id, thread_root=shared)
        for marker in hidden:  # "MARK-both-see" is edited away for them
            assert marker in theirs, marker
        assert "MARK-edit-while-away" in "".join(colleague.pushed)
        for uri in (image_before, image_away):
            answers = await colleague.media(uri)
            assert [status for status, _ in answers] == [200, 200], uri
            assert answers[0][1] == PNG

        # Never invited: not the room, not its files, even with the links in hand.
        assert (await sync_to_async(outsider.client.get)(f"/rooms/{room_id}/")).status_code == 404
        for uri in (image_before, image_away):
            assert [status for status, _ in await outsider.media(uri)] == [404, 404], uri


async def test_history_visible_from_the_invite_hides_what_came_before_it(
    synapse, matrix_user_factory, monkeypatch
):
    colleague, viewer = [await sync_to_async(Person)(matrix_user_factory()) for _ in range(2)]
    room_id = await sync_to_async(create_room)(colleague, "invited")
    async with running_host():
        before = await sync_to_async(colleague.say)(room_id, "MARK-before-invite")
        image_before = await sync_to_async(colleague.image)(room_id)
        await sync_to_async(invite)(colleague, room_id, viewer)
        after = await sync_to_async(colleague.say)(room_id, "MARK-after-invite")
        await sync_to_async(join)(viewer.account, room_id)
        await until(membership_is(viewer, room_id, "join"))
        viewer_live = await listen(viewer)
        await sync_to_async(colleague.say)(
            room_id, "answer", **{"m.relates_to": {"m.in_reply_to": {"event_id": before}}}
        )
        await sync_to_async(colleague.say)(
            room_id, "answer", **{"m.relates_to": {"m.in_reply_to": {"event_id": after}}}
        )
        last = await sync_to_async(colleague.say)(room_id, "MARK-last")
        await until(has_event(viewer, last))
        await until(has_event(colleague, last))
        await drain_until(viewer, viewer_live, "MARK-last")

        seen = await sync_to_async(viewer.pages)(room_id) + "".join(viewer.pushed)
        assert "MARK-before-invite" not in seen
        assert "Original message not available" in seen
        assert "MARK-after-invite" in seen  # visible from the invite on: quoted, at least
        assert [status for status, _ in await viewer.media(image_before)] == [404, 404]

        theirs = await sync_to_async(colleague.pages)(room_id)
        assert "MARK-before-invite" in theirs and "MARK-after-invite" in theirs
        assert [status for status, _ in await colleague.media(image_before)] == [200, 200]
        monkeypatch.setattr(media, "MAX_PROXIED_BYTES", len(PNG) - 1)
        assert (await colleague.media(image_before))[0][0] == 413  # refused, not truncated
