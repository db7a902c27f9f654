"""The one place that pushes live updates: called by services after commit, never by views.

What is pushed is rendered here once; consumers only forward it. The websocket is a hint: a page that
missed one refreshes on reconnect.
"""

import asyncio
import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.template.loader import render_to_string

log = logging.getLogger(__name__)


def account_group(account_id: int) -> str:
    return f"account.{account_id}"


def _send(account_id: int, message: dict) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        async_to_sync(layer.group_send)(account_group(account_id), message)
        return
    asyncio.get_running_loop().create_task(layer.group_send(account_group(account_id), message))


def room_list_changed(*, account_id: int) -> None:
    """Ask the account's open pages to reload their room list fragment."""
    html = render_to_string("rooms/live.html#room-list-hint")
    try:
        _send(account_id, {"type": "live.hint", "html": html})
    except Exception:  # optional by design: pages also refresh when they (re)connect
        log.warning("live hint for account %s not sent", account_id, exc_info=True)
