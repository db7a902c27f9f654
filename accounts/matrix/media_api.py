"""Authenticated media (Matrix 1.11 /_matrix/client/v1/media), fetched with the person's own token."""

import ipaddress
import json
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp

from accounts.matrix.errors import HomeserverUnreachable, MatrixError
from accounts.matrix.http import (
    endpoint_url,
    error_from_response,
    matrix_fetch_bytes,
    matrix_request,
    quote,
)

# The spec's server name (appendix "Server Name"), tightened to what can be a real host: DNS labels
# of letters, digits and inner hyphens (so never "", ".", ".." or "-"), a dotted IPv4 address, or a
# bracketed IPv6 address; an optional port from 1 to 65535. fullmatch everywhere: "$" would let a
# trailing newline through.
_DNS_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOST_RE = re.compile(rf"{_DNS_LABEL}(?:\.{_DNS_LABEL})*")
_IPV4_RE = re.compile(
    r"(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])(?:\.(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])){3}"
)
_PORT_RE = re.compile(r"[1-9][0-9]{0,4}")
MEDIA_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,255}")


def valid_server_name(server_name: object) -> bool:
    """A server name by the spec's grammar (hostname, IPv4 or [IPv6], optional port 1-65535)."""
    if not isinstance(server_name, str) or not 0 < len(server_name) <= 255:
        return False
    host, port = server_name, ""
    if host.startswith("["):
        end = host.find("]")
        if end < 0:
            return False
        host, rest = host[: end + 1], host[end + 1 :]
        if rest and not rest.startswith(":"):
            return False
        port = rest[1:] if rest else None
        if not _ipv6(host[1:-1]):
            return False
    else:
        if ":" in host:
            host, _, port = host.partition(":")
        else:
            port = None
        if not (_IPV4_RE.fullmatch(host) or _HOST_RE.fullmatch(host)):
            return False
    if port is None:
        return True
    return bool(_PORT_RE.fullmatch(port)) and int(port) <= 65535


def _ipv6(text: str) -> bool:
    if not 2 <= len(text) <= 45 or not re.fullmatch(r"[0-9A-Fa-f:.]+", text):
        return False
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def valid_media_id(media_id: object) -> bool:
    return isinstance(media_id, str) and MEDIA_ID_RE.fullmatch(media_id) is not None


def check_media(server_name: object, media_id: object) -> None:
    """Refuse a media reference that could steer a request anywhere but one media item (a '..'
    server name would make /download/../id: CVE-2024-50336's shape). Called before any request."""
    if not valid_server_name(server_name) or not valid_media_id(media_id):
        raise ValueError("malformed media reference")


def parse_mxc(uri: str) -> tuple[str, str] | None:
    """(server_name, media_id) of a well-formed mxc:// URI, else None. Checked before any request."""
    if not isinstance(uri, str) or not uri.startswith("mxc://"):
        return None
    server_name, _, media_id = uri[len("mxc://") :].partition("/")
    if not valid_server_name(server_name) or not valid_media_id(media_id):
        return None
    return server_name, media_id


def fetch_thumbnail(
    homeserver_url: str,
    *,
    access_token: str,
    server_name: str,
    media_id: str,
    size: int,
    method: str = "crop",
) -> tuple[bytes, str]:
    check_media(server_name, media_id)
    path = (
        f"/_matrix/client/v1/media/thumbnail/{quote(server_name)}/{quote(media_id)}"
        f"?width={size}&height={size}&method={method}&animated=false"
    )
    return matrix_fetch_bytes(homeserver_url, path, token=access_token)


def media_config(homeserver_url: str, *, access_token: str) -> dict:
    """The homeserver's media limits, e.g. {"m.upload.size": 52428800}."""
    return matrix_request(
        homeserver_url, "GET", "/_matrix/client/v1/media/config", token=access_token
    )


def upload(
    homeserver_url: str,
    *,
    access_token: str,
    stream,
    size: int,
    content_type: str,
    filename: str,
    timeout: float = 300.0,
) -> str:
    """Upload a file (streamed, not read into memory); returns its mxc:// URI."""
    path = f"/_matrix/media/v3/upload?{urllib.parse.urlencode({'filename': filename})}"
    url = endpoint_url(homeserver_url, path)
    request = urllib.request.Request(url, data=stream, method="POST")  # noqa: S310
    request.add_header("Authorization", f"Bearer {access_token}")
    request.add_header("Content-Type", content_type or "application/octet-stream")
    request.add_header("Content-Length", str(size))
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            reply = json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        raise error_from_response(error.code, error.read()) from None
    except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as error:
        raise HomeserverUnreachable() from error
    except ValueError:
        raise MatrixError("The homeserver's upload answer is not JSON.") from None
    uri = reply.get("content_uri") if isinstance(reply, dict) else None
    if not isinstance(uri, str) or parse_mxc(uri) is None:
        raise MatrixError("The homeserver did not return a valid media address.")
    return uri


def open_download(
    homeserver_url: str,
    *,
    access_token: str,
    server_name: str,
    media_id: str,
    timeout: float = 60.0,
):
    """Start downloading media with the person's own token: (response to stream, content type,
    length or None). The caller closes the response."""
    check_media(server_name, media_id)
    path = f"/_matrix/client/v1/media/download/{quote(server_name)}/{quote(media_id)}"
    request = urllib.request.Request(endpoint_url(homeserver_url, path))  # noqa: S310
    request.add_header("Authorization", f"Bearer {access_token}")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)  # noqa: S310
    except urllib.error.HTTPError as error:
        raise error_from_response(error.code, error.read()) from None
    except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as error:
        raise HomeserverUnreachable() from error
    length = response.headers.get("Content-Length")
    return (
        response,
        response.headers.get_content_type(),
        int(length) if length and length.isdigit() else None,
    )


class MediaTooLarge(MatrixError):
    def __init__(self) -> None:
        super().__init__("The file is larger than this workspace serves.", status=413)


@dataclass
class MediaStream:
    """A download in progress: read `chunks` to the end (or close it) to free the connection."""

    content_type: str
    length: int | None
    chunks: AsyncIterator[bytes]


async def open_stream(
    homeserver_url: str,
    *,
    access_token: str,
    server_name: str,
    media_id: str,
    max_bytes: int,
    chunk_size: int = 64 * 1024,
    timeout: float = 60.0,
) -> MediaStream:
    """Start downloading media with the person's own token, asynchronously, so an ASGI server
    sends each chunk as it arrives instead of holding the whole file. Refused before the first
    byte when the homeserver declares more than `max_bytes`, and cut off past `max_bytes` when it
    does not say (the client then sees a broken download, never a silently truncated file)."""
    check_media(server_name, media_id)
    url = endpoint_url(
        homeserver_url, f"/_matrix/client/v1/media/download/{quote(server_name)}/{quote(media_id)}"
    )
    session = aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=timeout)
    )
    try:
        response = await session.get(
            url, headers={"Authorization": f"Bearer {access_token}"}, allow_redirects=False
        )
        if response.status != 200:
            payload = await response.content.read(64 * 1024)
            raise error_from_response(response.status, payload)
        length = response.content_length
        if length is not None and length > max_bytes:
            raise MediaTooLarge()
    except BaseException as error:
        await session.close()
        if isinstance(error, aiohttp.ClientError | TimeoutError | OSError):
            raise HomeserverUnreachable() from error
        raise

    async def chunks() -> AsyncIterator[bytes]:
        sent = 0
        try:
            async for chunk in response.content.iter_chunked(chunk_size):
                sent += len(chunk)
                if sent > max_bytes:
                    raise MediaTooLarge()
                yield chunk
        finally:
            response.release()
            await session.close()

    return MediaStream(response.content_type or "application/octet-stream", length, chunks())


def preview_url(homeserver_url: str, *, access_token: str, url: str) -> dict:
    """The homeserver's Open Graph preview of a link (it fetches the page, never we)."""
    path = f"/_matrix/client/v1/media/preview_url?{urllib.parse.urlencode({'url': url})}"
    return matrix_request(homeserver_url, "GET", path, token=access_token, timeout=20.0)


def download_bytes(
    homeserver_url: str, *, access_token: str, server_name: str, media_id: str, max_bytes: int
) -> bytes:
    """A whole (encrypted) file, refused past `max_bytes` so a lying server cannot exhaust us."""
    response, _content_type, length = open_download(
        homeserver_url, access_token=access_token, server_name=server_name, media_id=media_id
    )
    with response:
        if length is not None and length > max_bytes:
            raise MatrixError("The file is larger than this workspace accepts.")
        data = response.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise MatrixError("The file is larger than this workspace accepts.")
    return data
