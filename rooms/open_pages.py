"""Which accounts have a page open: notify renders and pushes only for them.

Each open websocket is a member of a sorted set in Redis per account, scored with the moment it
lapses. The consumer adds itself before it accepts (so a page that then catches up misses nothing),
refreshes itself on its existing re-join heartbeat, and removes itself when it closes; a page whose
process died lapses on its own. Notify asks with one ZCOUNT per account and remembers a "yes" for a
moment; a "no" is never remembered, because a page that just connected must get the next push.
Pages catch up on (re)connect anyway: the websocket is a hint, never the record.
"""

import asyncio
import logging
import threading
import time
import weakref

import redis
import redis.asyncio as aioredis
from django.conf import settings

from accounts import live

log = logging.getLogger(__name__)

# A "yes" is trusted this long: a closed page costs at most this much of needless rendering.
OPEN_CACHE_SECONDS = 2.0

_open_until: dict[int, float] = {}
_sync_client: redis.Redis | None = None
_sync_lock = threading.Lock()
_async_clients: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aioredis.Redis]" = (
    weakref.WeakKeyDictionary()
)


def page_lifetime_seconds() -> float:
    """How long a page counts as open after it last said so: three of its heartbeats."""
    return 3 * live.group_rejoin_seconds()


def _key(account_id: int) -> str:
    prefix = settings.CHANNEL_LAYERS["default"]["CONFIG"].get("prefix", "webclient")
    return f"{prefix}:open-pages:{account_id}"


def _async_client() -> aioredis.Redis:
    """One client per event loop (a redis.asyncio connection belongs to the loop that made it)."""
    loop = asyncio.get_running_loop()
    client = _async_clients.get(loop)
    if client is None:
        client = aioredis.Redis.from_url(settings.REDIS_URL, socket_timeout=5)
        _async_clients[loop] = client
    return client


def _client() -> redis.Redis:
    global _sync_client
    with _sync_lock:
        if _sync_client is None:
            _sync_client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2)
        return _sync_client


async def page_seen(account_id: int, page: str) -> None:
    """The page (a websocket's channel name) is open: count it for one more lifetime."""
    now = time.time()
    lifetime = page_lifetime_seconds()
    key = _key(account_id)
    async with _async_client().pipeline(transaction=False) as pipe:
        pipe.zremrangebyscore(key, "-inf", now)  # pages whose process died without a goodbye
        pipe.zadd(key, {page: now + lifetime})
        pipe.expire(key, int(lifetime) + 1)
        await pipe.execute()


async def pages_seen(pages: list[tuple[int, str]]) -> None:
    """Many pages (account id, channel name) are open: one pipeline for all (the re-join beat)."""
    if not pages:
        return
    now = time.time()
    lifetime = page_lifetime_seconds()
    keys = {_key(account_id) for account_id, _ in pages}
    async with _async_client().pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.zremrangebyscore(key, "-inf", now)
        for account_id, page in pages:
            pipe.zadd(_key(account_id), {page: now + lifetime})
        for key in keys:
            pipe.expire(key, int(lifetime) + 1)
        await pipe.execute()


async def page_closed(account_id: int, page: str) -> None:
    """The page closed: renders for the account stop once its other pages are gone too."""
    await _async_client().zrem(_key(account_id), page)


def any_open(account_id: int) -> bool:
    """Whether the account has an open page (True when Redis cannot tell: rendering for nobody
    wastes a little; skipping it for a page would leave the page behind until it reconnects)."""
    now = time.monotonic()
    if _open_until.get(account_id, 0.0) > now:
        return True
    try:
        count = _client().zcount(_key(account_id), time.time(), "+inf")
    except redis.RedisError:
        log.warning("open pages of account %s unknown", account_id, exc_info=True)
        return True
    if count:
        _open_until[account_id] = now + OPEN_CACHE_SECONDS
        return True
    _open_until.pop(account_id, None)
    return False
