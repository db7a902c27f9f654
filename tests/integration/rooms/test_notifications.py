"""Notification counts are the homeserver's, computed from the person's push rules; the levels and
keywords chosen here are those push rules (so Element on their phone follows them too)."""

import pytest
from asgiref.sync import sync_to_async

from accounts.matrix.errors import MatrixError
from accounts.matrix.http import quote
from rooms.models import Membership, TimelineEntry
from tests.integration.rooms.helpers import (
    as_user,
    create_room,
    join,
    run_host_until,
    send_event,
    signed_in_account,
    text,
)

pytestmark = pytest.mark.django_db(transaction=True)


def counts(account, room_id: str) -> tuple[int, int] | None:
    row = (
        Membership.objects.filter(account=account, room__room_id=room_id)
        .values_list("notification_count", "highlight_count")
        .first()
    )
    return tuple(row) if row else None


def holds(account, event_id: str) -> bool:
    return TimelineEntry.objects.filter(account=account, event__event_id=event_id).exists()


def rule(creds, kind: str, rule_id: str) -> dict | None:
    """The person's push rule as any Matrix client reads it (not through our code)."""
    try:
        return as_user(creds, "GET", f"/_matrix/client/v3/pushrules/global/{kind}/{quote(rule_id)}")
    except MatrixError:  # M_NOT_FOUND
        return None


async def shared_room(client, matrix_user_factory):
    me, bob = matrix_user_factory(), matrix_user_factory()
    account = await sync_to_async(signed_in_account)(client, me)
    room_id = await sync_to_async(create_room)(bob, invite=[me.user_id], name="Counts")
    await sync_to_async(join)(account, room_id)
    assert await run_host_until(lambda: counts(account, room_id) is not None)
    return me, account, bob, room_id


async def test_messages_mentions_and_keywords_raise_the_counts_and_reading_clears_them(
    client, matrix_user_factory
):
    me, account, bob, room_id = await shared_room(client, matrix_user_factory)
    await sync_to_async(send_event)(bob, room_id, text("hello"))
    assert await run_host_until(lambda: counts(account, room_id) == (1, 0))

    response = await sync_to_async(client.post)(
        "/notifications/", {"keyword": "  deploy ", "action": "add"}
    )
    assert response.status_code == 302
    stored = await sync_to_async(rule)(me, "content", "deploy")
    assert stored and stored["pattern"] == "deploy"
    assert {"set_tweak": "highlight"} in stored["actions"]
    page = await sync_to_async(client.get)("/notifications/")
    assert "deploy" in page.content.decode()

    await sync_to_async(send_event)(bob, room_id, text("the deploy is done"))
    assert await run_host_until(lambda: counts(account, room_id) == (2, 1))
    mention = text(f"{me.localpart}: lunch?", **{"m.mentions": {"user_ids": [me.user_id]}})
    newest = await sync_to_async(send_event)(bob, room_id, mention)
    assert await run_host_until(lambda: counts(account, room_id) == (3, 2))

    read = await sync_to_async(client.post)(f"/rooms/{room_id}/read/", {"event_id": newest})
    assert read.status_code == 204
    assert await sync_to_async(counts)(account, room_id) == (0, 0)
    # The homeserver has the receipt: its own counts say 0 as well, sync after sync.
    late = await sync_to_async(send_event)(bob, room_id, text("after reading"))
    assert await run_host_until(lambda: holds(account, late))
    assert await run_host_until(lambda: counts(account, room_id) == (1, 0))

    response = await sync_to_async(client.post)(
        "/notifications/", {"keyword": "deploy", "action": "remove"}
    )
    assert response.status_code == 302
    assert await sync_to_async(rule)(me, "content", "deploy") is None


async def test_a_room_level_is_a_push_rule_that_the_counts_follow(client, matrix_user_factory):
    me, account, bob, room_id = await shared_room(client, matrix_user_factory)
    url = f"/rooms/{room_id}/notifications/"
    form = await sync_to_async(client.get)(url)
    assert 'value="all" checked' in form.content.decode()

    response = await sync_to_async(client.post)(url, {"level": "off"})
    assert response.status_code == 302
    off = await sync_to_async(rule)(me, "override", room_id)
    assert off is not None and off["actions"] == []
    assert off["conditions"] == [{"kind": "event_match", "key": "room_id", "pattern": room_id}]
    form = await sync_to_async(client.get)(url)
    assert 'value="off" checked' in form.content.decode()
    quiet = await sync_to_async(send_event)(bob, room_id, text("nobody hears this"))
    assert await run_host_until(lambda: holds(account, quiet))
    assert await sync_to_async(counts)(account, room_id) == (0, 0)

    await sync_to_async(client.post)(url, {"level": "mentions"}, HTTP_HX_REQUEST="true")
    assert await sync_to_async(rule)(me, "override", room_id) is None
    assert (await sync_to_async(rule)(me, "room", room_id))["actions"] == []
    plain = await sync_to_async(send_event)(bob, room_id, text("just chatting"))
    assert await run_host_until(lambda: holds(account, plain))
    assert await sync_to_async(counts)(account, room_id) == (0, 0)
    mention = text("ping", **{"m.mentions": {"user_ids": [me.user_id]}})
    await sync_to_async(send_event)(bob, room_id, mention)
    assert await run_host_until(lambda: counts(account, room_id) == (1, 1))

    await sync_to_async(client.post)(url, {"level": "all"})
    assert await sync_to_async(rule)(me, "room", room_id) is None
    await sync_to_async(send_event)(bob, room_id, text("back to normal"))
    assert await run_host_until(lambda: counts(account, room_id) == (2, 1))

    bad = await sync_to_async(client.post)(url, {"level": "loud"}, HTTP_HX_REQUEST="true")
    assert bad.status_code == 400
    assert "Choose all messages" in bad.content.decode()


async def test_a_bad_keyword_is_refused_with_a_reason(client, matrix_user_factory):
    me = matrix_user_factory()
    await sync_to_async(signed_in_account)(client, me)
    for typed, reason in [("", "Type a word"), ("a/b", "cannot contain /"), (".x", "dot")]:
        response = await sync_to_async(client.post)(
            "/notifications/", {"keyword": typed, "action": "add"}
        )
        assert response.status_code == 400
        assert reason in response.content.decode()
    server_rule = {"keyword": ".m.rule.contains_user_name", "action": "remove"}
    response = await sync_to_async(client.post)("/notifications/", server_rule)
    assert response.status_code == 400
    assert await sync_to_async(rule)(me, "content", ".m.rule.contains_user_name") is not None
