"""Every read that shows content goes through the viewer's own timeline rows and room state.

Events are stored once and shared, so a colleague's account (or device) may have stored text the
viewer never received or could not decrypt. Each case stores what both accounts received through
ingest, then checks the viewer's pages, fragments, live pushes and media access never carry the
colleague's markers while the colleague's own do (so each test can fail)."""

import pytest
from django.apps import apps
from django.contrib.auth import get_user_model
from django.test import Client

from accounts.models import MatrixAccount
from rooms import media, media_index, notify, open_pages, services, visibility
from rooms.models import (
    LinkPreview,
    MediaReference,
    Membership,
    Room,
    RoomState,
    TimelineEntry,
)

pytestmark = pytest.mark.django_db(transaction=True)

ROOM = "!shared:hs"
GHOST = "@ghost:hs"


def person(name: str) -> tuple[Client, MatrixAccount]:
    user = get_user_model().objects.create_user(username=name)
    account = MatrixAccount.objects.create(
        user=user,
        homeserver_url="http://127.0.0.1:9",
        mxid=f"@{name}:hs",
        device_id="D",
        access_token=f"syt_{name}",
    )
    client = Client()
    client.force_login(user)
    return client, account


def joined(account: MatrixAccount, room_id: str = ROOM) -> Room:
    room, _ = Room.objects.get_or_create(room_id=room_id)
    Membership.objects.update_or_create(
        account=account, room=room, defaults={"membership": "join", "display_name": "Shared"}
    )
    return room


def ingest(account: MatrixAccount, *events: dict, room_id: str = ROOM) -> None:
    """What the account's sync host stores (oldest first), through the real ingest service."""
    services.history_ingest(account_id=account.pk, room_id=room_id, chunk=list(reversed(events)))


_ts = iter(range(1_000_000, 2_000_000, 1000))


def message(event_id: str, sender: str, body: str, **content) -> dict:
    return {
        "event_id": event_id,
        "type": "m.room.message",
        "sender": sender,
        "origin_server_ts": next(_ts),
        "content": {"msgtype": "m.text", "body": body, **content},
    }


def envelope(event: dict) -> dict:
    """The same event as a device without its key received it."""
    return {
        **{k: event[k] for k in ("event_id", "sender", "origin_server_ts")},
        "type": "m.room.encrypted",
        "content": {
            "algorithm": "m.megolm.v1.aes-sha2",
            "ciphertext": "AwgAEn...",
            "session_id": "s1",
            "sender_key": "k",
            "device_id": "PEER",
        },
    }


def relation(event_id: str, sender: str, event_type: str, target: str, **content) -> dict:
    return {
        "event_id": event_id,
        "type": event_type,
        "sender": sender,
        "origin_server_ts": next(_ts),
        "content": {
            **content,
            "m.relates_to": {**content.get("m.relates_to", {}), "event_id": target},
        },
    }


def member(user_id: str, name: str, avatar: str = "") -> dict:
    content = {"membership": "join", "displayname": name}
    if avatar:
        content["avatar_url"] = avatar
    return {
        "event_id": f"$member-{name}",
        "type": "m.room.member",
        "state_key": user_id,
        "sender": user_id,
        "origin_server_ts": next(_ts),
        "content": content,
    }


def pages(client: Client, room_id: str = ROOM, thread_root: str = "") -> str:
    """Everything the person's browser can fetch about the room: page, fragments, thread."""
    parts = [
        client.get(f"/rooms/{room_id}/").content.decode(),
        client.get(f"/rooms/{room_id}/events/", {"after": 0}).content.decode(),
        client.get("/rooms/list/").content.decode(),
    ]
    if thread_root:
        parts.append(
            client.get(f"/rooms/{room_id}/thread/", {"root": thread_root}).content.decode()
        )
    return "\n".join(parts)


@pytest.fixture
def pushed(monkeypatch) -> dict[int, list[str]]:
    """What notify sends each account's websocket group (the consumer forwards it unchanged)."""
    sent: dict[int, list[str]] = {}
    monkeypatch.setattr(
        notify, "_push_html", lambda account_id, html: sent.setdefault(account_id, []).append(html)
    )
    monkeypatch.setattr(open_pages, "any_open", lambda account_id: True)  # pages are open
    return sent


def push_everything(account: MatrixAccount, event_ids: list[str]) -> str:
    """Replay every live push the account's new rows and changed messages would cause."""
    entry_ids = list(TimelineEntry.objects.filter(account=account).values_list("id", flat=True))
    notify.timeline_appended(
        account_id=account.pk, entry_ids=entry_ids, settled_txn_ids=[], touched_event_ids=event_ids
    )
    notify.messages_changed(account_id=account.pk, event_ids=event_ids)
    return ""


def test_a_reply_to_a_message_never_received_shows_neither_its_text_nor_its_sender(pushed):
    colleague_client, colleague = person("colleague")
    viewer_client, viewer = person("viewer")
    joined(colleague), joined(viewer)
    original = message("$orig", GHOST, "MARK-never-received original text")
    reply = message(
        "$reply",
        colleague.mxid,
        "MARK-reply-both-see",
        **{"m.relates_to": {"m.in_reply_to": {"event_id": "$orig"}}},
    )
    ingest(colleague, member(GHOST, "Ghostwriter"), original, reply)
    ingest(viewer, reply)  # joined after the original (history visible to members only)

    push_everything(viewer, ["$orig", "$reply"])
    push_everything(colleague, ["$orig", "$reply"])
    seen = pages(viewer_client) + "".join(pushed[viewer.pk])
    assert "MARK-reply-both-see" in seen
    assert "MARK-never-received" not in seen
    assert "Ghostwriter" not in seen
    assert "Original message not available" in seen
    theirs = pages(colleague_client) + "".join(pushed[colleague.pk])
    assert "MARK-never-received" in theirs and "Ghostwriter" in theirs


def test_what_only_a_colleagues_device_decrypted_stays_sealed_everywhere(pushed):
    colleague_client, colleague = person("colleague")
    viewer_client, viewer = person("viewer")
    joined(colleague), joined(viewer)
    secret = message("$secret", GHOST, "MARK-decrypted-by-colleague only")
    image = message(
        "$image",
        GHOST,
        "plans.png",
        msgtype="m.image",
        file={"url": "mxc://hs/encryptedplans", "key": {}, "iv": "", "hashes": {}, "v": "v2"},
    )
    reply = message(
        "$reply",
        GHOST,
        "MARK-reply-readable",
        **{"m.relates_to": {"m.in_reply_to": {"event_id": "$secret"}}},
    )
    ingest(colleague, member(GHOST, "Ghostwriter"), secret, image, reply)
    ingest(viewer, envelope(secret), envelope(image), reply)  # no key for the first two
    assert TimelineEntry.objects.filter(account=viewer, sealed=True).count() == 2

    push_everything(viewer, ["$secret", "$image", "$reply"])
    seen = pages(viewer_client) + "".join(pushed[viewer.pk])
    assert "MARK-decrypted-by-colleague" not in seen
    assert "plans.png" not in seen
    assert "MARK-reply-readable" in seen and "Encrypted message" in seen
    assert visibility.readable_event(account=viewer, room_id=ROOM, event_id="$image") is None
    denied = viewer_client.get("/media/encrypted/", {"room": ROOM, "event": "$image"})
    assert denied.status_code == 404
    with pytest.raises(media.MediaNotShown):
        media.check_media_access(account=viewer, server_name="hs", media_id="encryptedplans")

    assert "MARK-decrypted-by-colleague" in pages(colleague_client)
    assert visibility.readable_event(account=colleague, room_id=ROOM, event_id="$image")
    media.check_media_access(account=colleague, server_name="hs", media_id="encryptedplans")


def test_reactions_edits_threads_and_deletions_count_only_when_received(pushed):
    colleague_client, colleague = person("colleague")
    viewer_client, viewer = person("viewer")
    joined(colleague), joined(viewer)
    shared = message("$shared", colleague.mxid, "MARK-shared message")
    ingest(colleague, member(GHOST, "Ghostwriter"), shared)
    ingest(viewer, shared)
    # While the viewer was away (left, or history hidden): only the colleague's account got these.
    ingest(
        colleague,
        relation(
            "$react",
            GHOST,
            "m.reaction",
            "$shared",
            **{"m.relates_to": {"rel_type": "m.annotation", "key": "🦄"}},
        ),
        relation(
            "$edit",
            colleague.mxid,
            "m.room.message",
            "$shared",
            msgtype="m.text",
            body="* MARK-edit-unseen",
            **{
                "m.new_content": {"msgtype": "m.text", "body": "MARK-edit-unseen"},
                "m.relates_to": {"rel_type": "m.replace"},
            },
        ),
        relation(
            "$thread",
            GHOST,
            "m.room.message",
            "$shared",
            msgtype="m.text",
            body="MARK-thread-unseen",
            **{"m.relates_to": {"rel_type": "m.thread"}},
        ),
    )
    push_everything(viewer, ["$shared"])
    push_everything(colleague, ["$shared"])
    seen = pages(viewer_client, thread_root="$shared") + "".join(pushed[viewer.pk])
    for marker in (
        "🦄",
        "MARK-edit-unseen",
        "MARK-thread-unseen",
        "thread-summary",
        "(edited)",
        "Ghostwriter",
    ):
        assert marker not in seen, marker
    assert "MARK-shared message" in seen
    theirs = pages(colleague_client, thread_root="$shared") + "".join(pushed[colleague.pk])
    for marker in ("🦄", "MARK-edit-unseen", "MARK-thread-unseen", "thread-summary", "(edited)"):
        assert marker in theirs, marker


def test_a_reply_to_a_deleted_message_quotes_no_text():
    viewer_client, viewer = person("viewer")
    joined(viewer)
    original = message("$orig", viewer.mxid, "MARK-deleted-text")
    redaction = {
        "event_id": "$redaction",
        "type": "m.room.redaction",
        "sender": viewer.mxid,
        "origin_server_ts": next(_ts),
        "redacts": "$orig",
        "content": {},
    }
    reply = message(
        "$reply", GHOST, "answer", **{"m.relates_to": {"m.in_reply_to": {"event_id": "$orig"}}}
    )
    ingest(viewer, original, reply, redaction)
    page = pages(viewer_client)
    assert "MARK-deleted-text" not in page and "Message deleted" in page


ROOM_AVATAR = {
    "event_id": "$avatar",
    "type": "m.room.avatar",
    "state_key": "",
    "sender": GHOST,
    "origin_server_ts": 1,
    "content": {"url": "mxc://hs/roomavatar"},
}
LINK = "https://intranet.example/plan"


def private_room_media(owner: MatrixAccount) -> None:
    """A room with a file, an inline image, a previewed link, a room picture and member avatars."""
    LinkPreview.objects.create(
        url_hash=LinkPreview.hash_of(LINK), url=LINK, title="Plan", image_mxc="mxc://hs/previewimg"
    )
    ingest(
        owner,
        ROOM_AVATAR,
        member(GHOST, "Ghostwriter", avatar="mxc://hs/memberavatar"),
        message("$file", GHOST, "q3.pdf", msgtype="m.file", url="mxc://hs/privatefile"),
        message(
            "$inline",
            GHOST,
            "look",
            format="org.matrix.custom.html",
            formatted_body='look <img src="mxc://hs/inlineimg" alt="x">',
        ),
        message("$link", GHOST, f"see {LINK}"),
    )


PRIVATE = ("privatefile", "inlineimg", "previewimg", "memberavatar", "roomavatar")


def allowed(account: MatrixAccount, media_id: str) -> bool:
    try:
        media.check_media_access(account=account, server_name="hs", media_id=media_id)
    except media.MediaNotShown:
        return False
    return True


def test_media_is_served_only_to_people_shown_it(monkeypatch):
    outsider_client, outsider = person("outsider")
    _, owner = person("owner")
    joined(owner)
    private_room_media(owner)
    monkeypatch.setattr(visibility, "is_own_avatar", lambda **kwargs: False)  # no homeserver here
    assert all(allowed(owner, media_id) for media_id in PRIVATE)

    # Never invited: having the link is not enough, and nothing is asked of the homeserver.
    asked = []

    async def no_upstream(*args, **kwargs):
        asked.append(kwargs)
        raise AssertionError("the homeserver was asked")

    monkeypatch.setattr("accounts.matrix.media_api.open_stream", no_upstream)
    monkeypatch.setattr("accounts.matrix.media_api.fetch_thumbnail", no_upstream)
    assert not any(allowed(outsider, media_id) for media_id in PRIVATE)
    for media_id in PRIVATE:
        assert outsider_client.get(f"/media/file/hs/{media_id}").status_code == 404
        assert outsider_client.get(f"/media/avatar/hs/{media_id}").status_code == 404
    assert asked == []

    # Joined later: the room's current state is theirs, the earlier messages are not.
    joined(outsider)
    assert allowed(outsider, "roomavatar") and allowed(outsider, "memberavatar")
    assert not any(allowed(outsider, m) for m in ("privatefile", "inlineimg", "previewimg"))
    # A new picture replaces the old one in the room's state: the old one is no longer its to see.
    changed = member(GHOST, "Ghostwriter", avatar="mxc://hs/newavatar")
    RoomState.objects.filter(event_type="m.room.member", state_key=GHOST).update(
        content=changed["content"]
    )
    media_index.index_state(Room.objects.get(room_id=ROOM), [changed])
    assert allowed(outsider, "newavatar") and not allowed(outsider, "memberavatar")
    assert allowed(owner, "memberavatar")  # still in the owner's timeline (the old member event)
    # Left: nothing of the room's state any more.
    Membership.objects.filter(account=outsider).update(membership="leave")
    assert not allowed(outsider, "roomavatar")

    # Their own upload is theirs (before any message shows it), and only theirs.
    media_index.index_upload(outsider.pk, "mxc://hs/mydraft")
    assert allowed(outsider, "mydraft") and not allowed(owner, "mydraft")


def test_malformed_references_are_refused_before_any_check_or_request(monkeypatch):
    client, _ = person("someone")
    monkeypatch.setattr(visibility, "may_see_media", lambda **kw: pytest.fail("checked"))
    for path in (
        "/media/file/../abcdef",
        "/media/file/-/abcdef",
        "/media/file/hs:99999/abc",
        "/media/avatar/./abc",
        "/media/file/hs/abc.def",
    ):
        assert client.get(path).status_code == 404, path


def test_the_migration_indexes_media_stored_before_it():
    from importlib import import_module

    backfill = import_module("rooms.migrations.0003_media_references_for_visibility").backfill
    _, owner = person("owner")
    joined(owner)
    private_room_media(owner)
    before = set(
        MediaReference.objects.values_list("server_name", "media_id", "event_id", "state_id")
    )
    MediaReference.objects.all().delete()
    backfill(apps, None)
    after = set(
        MediaReference.objects.values_list("server_name", "media_id", "event_id", "state_id")
    )
    assert after == before and {m for _, m, _, _ in after} == set(PRIVATE)


def test_an_invite_shows_its_own_stripped_state_not_the_rooms_current_state():
    member_client, member_account = person("member")
    invitee_client, invitee = person("invitee")
    room = joined(member_account)
    Membership.objects.create(account=invitee, room=room, membership="invite")
    ingest(
        member_account,
        {
            "event_id": "$create",
            "type": "m.room.create",
            "state_key": "",
            "sender": GHOST,
            "origin_server_ts": 1,
            "content": {"room_version": "12"},
        },
        {
            "event_id": "$tombstone",
            "type": "m.room.tombstone",
            "state_key": "",
            "sender": GHOST,
            "origin_server_ts": 2,
            "content": {"body": "MARK-tombstone-reason", "replacement_room": "!new:hs"},
        },
    )
    assert "MARK-tombstone-reason" in member_client.get(f"/rooms/{ROOM}/").content.decode()
    page = invitee_client.get(f"/rooms/{ROOM}/").content.decode()
    assert "invited you" in page
    assert "MARK-tombstone-reason" not in page


def test_a_message_the_server_already_redacted_never_shows_an_earlier_fuller_copy():
    colleague_client, colleague = person("colleague")
    viewer_client, viewer = person("viewer")
    joined(colleague), joined(viewer)
    full = message(
        "$deleted", GHOST, "MARK-deleted-later.pdf", msgtype="m.file", url="mxc://hs/deletedfile"
    )
    ingest(colleague, full)
    assert allowed(colleague, "deletedfile")
    assert "MARK-deleted-later" in pages(colleague_client)  # received before the deletion
    # The viewer joined after the deletion: the homeserver gives it the event already redacted.
    redacted = {
        **{k: full[k] for k in ("event_id", "type", "sender", "origin_server_ts")},
        "content": {},
        "unsigned": {"redacted_because": {"type": "m.room.redaction", "sender": GHOST}},
    }
    ingest(viewer, redacted)
    page = pages(viewer_client)
    assert "MARK-deleted-later" not in page and "Message deleted" in page
    assert not allowed(viewer, "deletedfile") and not allowed(colleague, "deletedfile")
