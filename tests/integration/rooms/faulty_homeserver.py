"""A pass-through proxy in front of the real Synapse that can hold or fail /messages requests, to
show what a slow or failing homeserver does to gap filling while the live /sync goes on."""

import asyncio

import aiohttp
from aiohttp import web


class FaultyHomeserver:
    """`messages`: "pass", "hold" (each request waits until `release()`), or "fail" (503).
    `passes_before_hold`: with "hold", let this many /messages requests through first."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.messages = "pass"
        self.passes_before_hold = 0
        self.held = 0  # /messages requests waiting right now
        self.failed = 0
        self.messages_served = 0
        self._released = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._http: aiohttp.ClientSession | None = None
        self.url = ""

    async def start(self) -> "FaultyHomeserver":
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120))
        return self

    def hold(self, *, after: int = 0) -> None:
        self._released.clear()
        self.passes_before_hold = after
        self.messages = "hold"

    def release(self, mode: str = "pass") -> None:
        self.messages = mode
        self._released.set()

    async def stop(self) -> None:
        self._released.set()
        if self._http is not None:
            await self._http.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.path.endswith("/messages"):
            if self.messages == "fail":
                self.failed += 1
                return web.Response(status=503, text="test outage")
            if self.messages == "hold":
                if self.passes_before_hold > 0:
                    self.passes_before_hold -= 1
                else:
                    self.held += 1
                    try:
                        await self._released.wait()
                    finally:
                        self.held -= 1
                    if self.messages == "fail":
                        self.failed += 1
                        return web.Response(status=503, text="test outage")
        headers = {
            k: v
            for k, v in request.headers.items()
            if k.lower() in ("authorization", "content-type")
        }
        async with self._http.request(
            request.method,
            self.upstream + request.path_qs,
            headers=headers,
            data=await request.read() if request.can_read_body else None,
        ) as upstream:
            body = await upstream.read()
            if request.path.endswith("/messages"):
                self.messages_served += 1
            return web.Response(
                status=upstream.status,
                body=body,
                content_type=upstream.content_type or "application/json",
            )
