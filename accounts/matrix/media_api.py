"""Authenticated media (Matrix 1.11 /_matrix/client/v1/media), fetched with the person's own token."""

import json
import re
import urllib.error
import urllib.parse
import urllib.request

from accounts.matrix.errors import HomeserverUnreachable, MatrixError
from accounts.matrix.http import (
    endpoint_url,
    error_from_response,
    matrix_fetch_bytes,
    matrix_request,
    quote,
)

SERVER_NAME_RE = re.compile(r"^(?:[A-Za-z0-9.\-]{1,255}|\[[0-9A-Fa-f:.]{2,45}\])(?::[0-9]{1,5})?$")
MEDIA_ID_RE = re.compile(r"^[A-Za-z0-9_\-]{1,255}$")


def parse_mxc(uri: str) -> tuple[str, str] | None:
    """(server_name, media_id) of a well-formed mxc:// URI, else None. Checked before any request."""
    if not isinstance(uri, str) or not uri.startswith("mxc://"):
        return None
    server_name, _, media_id = uri[len("mxc://") :].partition("/")
    if not SERVER_NAME_RE.match(server_name) or not MEDIA_ID_RE.match(media_id):
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
    if not SERVER_NAME_RE.match(server_name) or not MEDIA_ID_RE.match(media_id):
        raise ValueError("malformed media reference")
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
    if not SERVER_NAME_RE.match(server_name) or not MEDIA_ID_RE.match(media_id):
        raise ValueError("malformed media reference")
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
