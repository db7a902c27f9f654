"""Re-join every open page of this process in one batch per heartbeat, not each page on a timer.

channels_redis forgets a group member `group_expiry` after it joined (and every member when Redis
restarts), so open pages re-join their groups every `live.group_rejoin_seconds()`. Done page by
page, that is three Redis round trips per page per beat through redis-py's asyncio client: with a
few thousand pages it took most of a daphne process's CPU (bench/websockets.py). Here one task per
event loop re-joins all of them with one pipeline per Redis shard, and marks them open in one more.

What a re-join writes is exactly what `group_add` writes (ZADD of the channel with the time, EXPIRE
of the group); a layer that is not channels_redis gets plain `group_add` calls.
"""

import asyncio
import collections
import logging
import time
import weakref
from typing import Protocol

from accounts import live
from rooms import open_pages

log = logging.getLogger(__name__)

CHUNK = 200  # group memberships per pipeline


class Page(Protocol):
    channel_layer: object
    channel_name: str
    joined: tuple[str, ...]
    account_id: int | None


class Rejoiner:
    """The open pages of one event loop, and the task that keeps them joined."""

    def __init__(self) -> None:
        self.pages: dict[str, Page] = {}
        self.task: asyncio.Task | None = None

    def add(self, page: Page) -> None:
        self.pages[page.channel_name] = page
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(self._run(), name="page-rejoin")

    def discard(self, page: Page) -> None:
        self.pages.pop(page.channel_name, None)

    async def _run(self) -> None:
        """Beat every `group_rejoin_seconds()`, read afresh each second (a shorter expiry set
        meanwhile takes effect at once, not after a long sleep begun under the old one)."""
        last = time.monotonic()
        while self.pages:
            await asyncio.sleep(min(1.0, live.group_rejoin_seconds()))
            if time.monotonic() - last < live.group_rejoin_seconds():
                continue
            last = time.monotonic()
            try:
                await rejoin(list(self.pages.values()))
            except Exception:  # Redis away: try again at the next beat
                log.warning("open pages could not re-join their groups", exc_info=True)

    async def stop(self) -> None:
        task, self.task = self.task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


_rejoiners: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Rejoiner]" = (
    weakref.WeakKeyDictionary()
)


def rejoiner() -> Rejoiner:
    """This event loop's rejoiner (a task belongs to the loop that runs it)."""
    loop = asyncio.get_running_loop()
    found = _rejoiners.get(loop)
    if found is None:
        found = _rejoiners[loop] = Rejoiner()
    return found


async def rejoin(pages: list[Page]) -> None:
    """Re-join each page's groups and mark it open again, in a few round trips for all."""
    pages = [page for page in pages if page.joined]
    if not pages:
        return
    layer = pages[0].channel_layer
    if hasattr(layer, "_group_key") and hasattr(layer, "consistent_hash"):
        await _rejoin_redis(layer, pages)
    else:
        for page in pages:
            for group in page.joined:
                await layer.group_add(group, page.channel_name)
    seen = [(page.account_id, page.channel_name) for page in pages if page.account_id is not None]
    for start in range(0, len(seen), CHUNK):
        await open_pages.pages_seen(seen[start : start + CHUNK])


async def _rejoin_redis(layer, pages: list[Page]) -> None:
    by_shard: dict[int, list[tuple[str, str]]] = collections.defaultdict(list)
    for page in pages:
        for group in page.joined:
            by_shard[layer.consistent_hash(group)].append(
                (layer._group_key(group), page.channel_name)
            )
    now = time.time()
    for shard, members in by_shard.items():
        # In chunks: packing thousands of commands at once holds the event loop (and every push
        # it should be forwarding) for a noticeable moment.
        for start in range(0, len(members), CHUNK):
            chunk = members[start : start + CHUNK]
            async with layer.connection(shard).pipeline(transaction=False) as pipe:
                for group_key, channel in chunk:
                    pipe.zadd(group_key, {channel: now})
                for group_key in {key for key, _ in chunk}:
                    pipe.expire(group_key, layer.group_expiry)
                await pipe.execute()
