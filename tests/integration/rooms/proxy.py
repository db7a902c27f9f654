"""A homeserver that misbehaves on demand: an aiohttp reverse proxy in front of the real Synapse.

Point an account's homeserver_url at `proxy.url` and its sync host talks to Synapse through it. The
test then takes the homeserver down (`fail_with = 503`, or `502` with no errcode), holds /sync
requests, forwards a PUT and drops the connection before the answer comes back, or makes the
homeserver forget transaction ids (later PUTs go in under another device of the same user, so
Synapse's own dedupe cannot hide a second post)."""

import asyncio
import time
from collections.abc import Callable

import aiohttp
from aiohttp import web

SKIPPED_HEADERS = {"host", "content-length", "transfer-encoding", "connection"}


class HomeserverProxy:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.fail_with: int | None = None  # answer every request with this status, no errcode
        self.fail_when: Callable[[web.Request], bool] = lambda request: True
        self.sync_open = asyncio.Event()  # cleared: /sync requests and answers wait here
        self.sync_open.set()
        # Forward this many PUTs, each time cutting the connection before the answer goes back
        # (aiohttp resends an idempotent PUT once at once on a reused connection: drop two).
        self.drop_put_answers = 0
        # Synapse remembers a transaction id only for a while: PUTs of the same path later than
        # `forget_after` seconds after the first go in under this other token (another device).
        self.forget_transactions_with: str | None = None
        self.forget_after = 0.25
        self._first_put: dict[str, float] = {}
        self.puts: list[str] = []  # paths of the PUTs that reached the homeserver
        # Called once a PUT reached the homeserver, before its answer goes back (kill the sender).
        self.after_put: Callable[[web.Request], None] | None = None
        self.url = ""
        self._runner: web.AppRunner | None = None
        self._http: aiohttp.ClientSession | None = None

    async def start(self) -> "HomeserverProxy":
        app = web.Application(client_max_size=10 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        self._http = aiohttp.ClientSession(auto_decompress=False)
        return self

    async def stop(self) -> None:
        self.sync_open.set()
        if self._http is not None:
            await self._http.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if self.fail_with is not None and self.fail_when(request):
            return web.Response(status=self.fail_with, text="<html>Bad gateway</html>")
        if request.path.endswith("/sync"):
            await self.sync_open.wait()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in SKIPPED_HEADERS}
        is_put = request.method == "PUT" and "/send/" in request.path
        if is_put and self.forget_transactions_with:
            first = self._first_put.setdefault(request.path, time.monotonic())
            if time.monotonic() - first > self.forget_after:
                headers["Authorization"] = f"Bearer {self.forget_transactions_with}"
        body = await request.read()
        async with self._http.request(
            request.method,
            f"{self.upstream}{request.path_qs}",
            headers=headers,
            data=body or None,
            allow_redirects=False,
        ) as upstream:
            payload = await upstream.read()
            if request.path.endswith("/sync"):
                await self.sync_open.wait()  # a long-poll already upstream waits here too
            if is_put:
                self.puts.append(request.path)
                if self.after_put is not None:
                    self.after_put(request)
                if self.drop_put_answers > 0:
                    self.drop_put_answers -= 1
                    request.transport.close()  # the homeserver has it; the client never hears
            response = web.Response(status=upstream.status, body=payload)
            response.content_type = upstream.content_type
            return response
