"""The media proxy's download streams chunk by chunk and stops at its cap, against a small local
HTTP server standing in for the homeserver (a real socket; no homeserver logic is involved)."""

from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from accounts.matrix import media_api
from accounts.matrix.errors import MatrixError

CHUNK = 64 * 1024


@pytest.fixture
async def homeserver() -> AsyncIterator[tuple[str, list[str]]]:
    """/declared/x answers with a Content-Length; /undeclared/x streams without one."""
    asked: list[str] = []

    async def download(request: web.Request) -> web.StreamResponse:
        asked.append(request.path)
        size = 10 * CHUNK
        if request.match_info["server"] == "declared":
            return web.Response(body=b"x" * size, content_type="image/png")
        response = web.StreamResponse(headers={"Content-Type": "image/png"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        for _ in range(10):
            await response.write(b"x" * CHUNK)
        await response.write_eof()
        return response

    async def missing(request: web.Request) -> web.Response:
        return web.json_response({"errcode": "M_NOT_FOUND", "error": "gone"}, status=404)

    app = web.Application()
    app.router.add_get("/_matrix/client/v1/media/download/{server}/missing", missing)
    app.router.add_get("/_matrix/client/v1/media/download/{server}/{media}", download)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}", asked
    await runner.cleanup()


async def read_all(stream: media_api.MediaStream) -> bytes:
    return b"".join([chunk async for chunk in stream.chunks])


async def test_a_file_within_the_cap_streams_in_chunks(homeserver):
    url, _ = homeserver
    stream = await media_api.open_stream(
        url, access_token="t", server_name="undeclared", media_id="x", max_bytes=20 * CHUNK
    )
    assert stream.content_type == "image/png" and stream.length is None
    sizes = [len(chunk) async for chunk in stream.chunks]
    assert sum(sizes) == 10 * CHUNK and len(sizes) > 1 and max(sizes) <= CHUNK


async def test_a_declared_size_past_the_cap_is_refused_before_the_first_byte(homeserver):
    url, _ = homeserver
    with pytest.raises(media_api.MediaTooLarge):
        await media_api.open_stream(
            url, access_token="t", server_name="declared", media_id="x", max_bytes=CHUNK
        )


async def test_an_undeclared_size_is_cut_off_at_the_cap(homeserver):
    url, _ = homeserver
    stream = await media_api.open_stream(
        url, access_token="t", server_name="undeclared", media_id="x", max_bytes=3 * CHUNK
    )
    received = 0
    with pytest.raises(media_api.MediaTooLarge):
        async for chunk in stream.chunks:
            received += len(chunk)
    assert received <= 3 * CHUNK


async def test_the_homeservers_refusal_is_our_error(homeserver):
    url, _ = homeserver
    with pytest.raises(MatrixError) as refused:
        await media_api.open_stream(
            url, access_token="t", server_name="declared", media_id="missing", max_bytes=CHUNK
        )
    assert refused.value.status == 404


async def test_a_traversal_never_leaves(homeserver):
    url, asked = homeserver
    with pytest.raises(ValueError, match="malformed"):
        await media_api.open_stream(
            url, access_token="t", server_name="..", media_id="abcdef", max_bytes=CHUNK
        )
    assert asked == []
