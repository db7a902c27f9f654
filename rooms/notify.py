"""The one place that pushes live updates: called by services after commit, never by views.

What is pushed is rendered here once; consumers only forward it. The websocket is a hint: a page that
missed a push asks for everything after its last stream position when it reconnects.
"""

from accounts import live
from accounts.models import MatrixAccount
from rooms import open_pages, selectors, timeline
from rooms.metrics import render_to_string  # Django's, timed per fragment
from rooms.models import Membership, Room, TimelineEntry, TimelineGap

account_group = live.account_group


def outbox_group(account_id: int) -> str:
    return f"outbox.{account_id}"


HOSTS_GROUP = "sync.hosts"


def hosts_claim_now() -> None:
    """An account needs an owner (someone just signed in): hosts claim at once, not at the next
    heartbeat, so a new person's rooms appear in moments."""
    _group_send(HOSTS_GROUP, {"type": "hosts.claim"})


_group_send = live.group_send  # a hint is optional by design: pages catch up on (re)connect


def _push_html(account_id: int, html: str) -> None:
    _group_send(account_group(account_id), {"type": "live.hint", "html": html})


def push_html(*, account_id: int, html: str) -> None:
    """Push ready-made out-of-band HTML to the account's open pages (a reminder's notice)."""
    _push_html(account_id, html)


def room_list_changed(*, account_id: int) -> None:
    """Ask the account's open pages to reload their room list fragment."""
    if not open_pages.any_open(account_id):
        return  # no page to push to: it renders what it needs when it opens
    _push_html(account_id, render_to_string("rooms/live.html#room-list-hint"))


def timeline_appended(
    *,
    account_id: int,
    entry_ids: list[int],
    settled_txn_ids: list[str],
    touched_event_ids: list[str] = (),
) -> None:
    """Render new timeline rows once and push them to the account's pages."""
    if not open_pages.any_open(account_id):
        return  # no page to push to: it renders what it needs when it opens
    account = MatrixAccount.objects.filter(pk=account_id).first()
    if account is None:
        return
    room_ids = set(TimelineEntry.objects.filter(id__in=entry_ids).values_list("room_id", flat=True))
    parts = []
    for room in Room.objects.filter(pk__in=room_ids):
        items = selectors.timeline_items(
            account=account, room=room, entry_ids=entry_ids, limit=len(entry_ids)
        )
        if items:
            context = {"items": items, "room": room, "offer_older": _history_left(account, room)}
            parts.append(render_to_string("rooms/room.html#live-events", context))
    parts.extend(_thread_replies(account, entry_ids))
    parts.extend(_updated_messages(account, touched_event_ids))
    parts.extend(
        render_to_string("rooms/live.html#outbox-settled", {"txn_id": txn})
        for txn in settled_txn_ids
    )
    parts.append(render_to_string("rooms/live.html#room-list-hint"))
    _push_html(account_id, "".join(parts))


def _history_left(account: MatrixAccount, room: Room) -> bool:
    """Older history still on the homeserver: a page opened before the room's first sync came in
    has no "Earlier messages" yet, so the push offers it (pages that have one keep theirs)."""
    membership = Membership.objects.filter(account=account, room=room).first()
    return membership is not None and selectors.history_on_homeserver(membership=membership)


def outbox_status(*, account_id: int, txn_id: str) -> None:
    """Push a queued message's new state (sent or failed with a retry button)."""
    if not open_pages.any_open(account_id):
        return  # no page to push to: it renders what it needs when it opens
    message = selectors.outbox_message(account_id=account_id, txn_id=txn_id)
    if message is None:
        return
    html = render_to_string("rooms/room.html#outbox-item", {"message": message, "oob": True})
    _push_html(account_id, html)


def session_ended(*, account_id: int) -> None:
    """Tell the person's open pages that the homeserver ended their session."""
    if not open_pages.any_open(account_id):
        return  # no page to push to: it renders what it needs when it opens
    html = render_to_string("rooms/live.html#session-notice", {"ended": True, "oob": True})
    _push_html(account_id, html)


# What a nudge asks the owning host to do. Each kind runs only its own work, so a send's PUT never
# waits behind verification handling or the reading of sealed history.
NUDGE_SEND = "send"
NUDGE_VERIFICATION = "verification"
NUDGE_HISTORY_SEALED = "history-sealed"


def _nudge(account_id: int, kind: str, **extra) -> None:
    message = {"type": "outbox.nudge", "account_id": account_id, "kind": kind, **extra}
    _group_send(outbox_group(account_id), message)


def outbox_nudge(*, account_id: int, txn_id: str = "") -> None:
    """Wake the sync host that owns the account: a message (`txn_id`) is waiting to be sent."""
    _nudge(account_id, NUDGE_SEND, txn_id=txn_id)


def verification_nudge(*, account_id: int) -> None:
    """Wake the owning host: the person answered or started a verification."""
    _nudge(account_id, NUDGE_VERIFICATION)


def history_sealed_nudge(*, account_id: int) -> None:
    """Wake the owning host: history a page fetched arrived encrypted; only its keys can read it."""
    _nudge(account_id, NUDGE_HISTORY_SEALED)


def _updated_messages(account: MatrixAccount, event_ids) -> list[str]:
    """Messages that were edited, reacted to or deleted, re-rendered to replace themselves."""
    if not event_ids:
        return []
    entries = TimelineEntry.objects.filter(account=account, event__event_id__in=event_ids)
    parts = []
    for room in Room.objects.filter(pk__in=entries.values("room_id")):
        ids = list(entries.filter(room=room).values_list("id", flat=True))
        items = selectors.timeline_items(account=account, room=room, entry_ids=ids, limit=len(ids))
        parts.extend(
            render_to_string("rooms/room.html#event", {"item": item, "update": True})
            for item in items
        )
    return parts


def gap_changed(*, account_id: int, gap_id: int) -> None:
    """A gap was recorded or filled further (its marker moves up), or is complete (it goes)."""
    if not open_pages.any_open(account_id):
        return  # no page to push to: it renders what it needs when it opens
    gap = (
        TimelineGap.objects.filter(pk=gap_id, account_id=account_id).select_related("room").first()
    )
    if gap is None:
        html = render_to_string("rooms/room.html#gap-filled", {"gap_id": gap_id})
    else:
        marker = timeline.GapMarker(gap.pk, gap.anchor_ts, gap.last_error)
        html = render_to_string("rooms/room.html#live-gap", {"gap": marker, "room": gap.room})
    _push_html(account_id, html)


def typing_changed(*, account_id: int, typing: dict[str, list[str]]) -> None:
    """Who is typing in which room, rendered for the account's open pages (not stored)."""
    if not open_pages.any_open(account_id):
        return  # no page to push to: it renders what it needs when it opens
    parts = []
    for room in Room.objects.filter(room_id__in=list(typing)):
        names = selectors.typing_names(room=room, user_ids=typing[room.room_id])
        parts.append(render_to_string("rooms/live.html#typing", {"room": room, "names": names}))
    if parts:
        _push_html(account_id, "".join(parts))


def messages_changed(*, account_id: int, event_ids: list[str]) -> None:
    """Re-render messages whose surroundings changed (who has seen them)."""
    if not open_pages.any_open(account_id):
        return  # no page to push to: it renders what it needs when it opens
    account = MatrixAccount.objects.filter(pk=account_id).first()
    if account is None:
        return
    parts = _updated_messages(account, event_ids)
    if parts:
        _push_html(account_id, "".join(parts))


def _thread_replies(account: MatrixAccount, entry_ids: list[int]) -> list[str]:
    """New thread replies, for open thread panels (the main timeline shows only the summary)."""
    replies = TimelineEntry.objects.filter(
        account=account, id__in=entry_ids, event__rel_type="m.thread"
    ).values_list("room_id", "event__relates_to", "id")
    by_thread: dict[tuple[int, str], list[int]] = {}
    for room_pk, root, entry_id in replies:
        by_thread.setdefault((room_pk, root), []).append(entry_id)
    parts = []
    for (room_pk, root), ids in by_thread.items():
        room = Room.objects.get(pk=room_pk)
        items = selectors.thread_items(
            account=account, room=room, root_event_id=root, entry_ids=ids
        )
        parts.append(
            render_to_string("rooms/thread.html#live-replies", {"items": items, "root": root})
        )
    return parts


def verifications_changed(*, account_id: int) -> None:
    """Re-render the verification banner on the account's open pages."""
    if not open_pages.any_open(account_id):
        return  # no page to push to: it renders what it needs when it opens
    account = MatrixAccount.objects.filter(pk=account_id).first()
    if account is None:
        return
    html = render_to_string(
        "rooms/security.html#verification-banner",
        {
            "verifications": selectors.verifications_needing_attention(account=account),
            "oob": True,
        },
    )
    _push_html(account_id, html)
