"""Link previews: the first web link of a message, previewed by the homeserver (we never fetch
other sites ourselves). Not in encrypted rooms: asking the homeserver would reveal the link."""

import logging

from celery import current_app
from django.db import transaction

from accounts.matrix import media_api
from accounts.matrix.errors import MatrixError
from accounts.models import MatrixAccount
from rooms import media_index, notify
from rooms.links import link_of
from rooms.models import Event, LinkPreview

log = logging.getLogger(__name__)

MAX_PER_SYNC = 10


def schedule(*, account_id: int, events: list[dict], encrypted: bool) -> None:
    """After commit, have the worker fetch previews for new links (never for encrypted rooms)."""
    if encrypted:
        return
    links = {link for link in (link_of(e) for e in events) if link}
    if not links:
        return
    known = set(
        LinkPreview.objects.filter(
            url_hash__in=[LinkPreview.hash_of(link) for link in links]
        ).values_list("url", flat=True)
    )
    wanted = [e["event_id"] for e in events if link_of(e) and link_of(e) not in known]
    if wanted:
        transaction.on_commit(lambda: _enqueue(account_id, wanted[:MAX_PER_SYNC]), robust=True)


def _enqueue(account_id: int, event_ids: list[str]) -> None:
    try:
        current_app.send_task(
            "rooms.tasks.link_previews_fetch",
            kwargs={"account_id": account_id, "event_ids": event_ids},
        )
    except Exception:  # a preview is a nicety: never let the broker break ingest
        log.warning("link previews not queued", exc_info=True)


def fetch(*, account_id: int, event_ids: list[str]) -> int:
    """Fetch and keep the previews of these messages' links with the account's own access,
    then re-render the messages on the account's pages. Returns how many were fetched."""
    account = MatrixAccount.objects.filter(pk=account_id, is_active=True).first()
    if account is None:
        return 0
    fetched = 0
    shown = []
    for pk, event_id, raw in Event.objects.filter(event_id__in=event_ids).values_list(
        "id", "event_id", "raw"
    ):
        link = link_of(raw)
        if not link:
            continue
        preview = LinkPreview.objects.filter(url_hash=LinkPreview.hash_of(link)).first()
        if preview is None:
            preview = _store(link, _ask_homeserver(account, link))
            fetched += 1
        # Its image is shown with the message, so whoever may see the message may see it.
        media_index.index_preview(preview, [pk])
        shown.append(event_id)
    if shown:
        notify.messages_changed(account_id=account_id, event_ids=shown)
    return fetched


def _ask_homeserver(account: MatrixAccount, link: str) -> dict | None:
    try:
        return media_api.preview_url(
            account.homeserver_url, access_token=account.access_token, url=link
        )
    except MatrixError as error:
        log.info("no preview for a link: %s", error.message)
        return None


def _text(value: object, limit: int) -> str:
    return value.strip()[:limit] if isinstance(value, str) else ""


def _store(link: str, og: dict | None) -> LinkPreview:
    og = og or {}
    image = _text(og.get("og:image"), 512)
    preview, _ = LinkPreview.objects.update_or_create(
        url_hash=LinkPreview.hash_of(link),
        defaults={
            "url": link,
            "title": _text(og.get("og:title"), 300),
            "description": _text(og.get("og:description"), 1000),
            "site_name": _text(og.get("og:site_name"), 200),
            "image_mxc": image if image.startswith("mxc://") else "",
            "failed": not (og.get("og:title") or og.get("og:description")),
        },
    )
    return preview
