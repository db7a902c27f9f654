"""Authenticated media (Matrix 1.11 /_matrix/client/v1/media), fetched with the person's own token."""

import re

from accounts.matrix.http import matrix_fetch_bytes, quote

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
    homeserver_url: str, *, access_token: str, server_name: str, media_id: str, size: int
) -> tuple[bytes, str]:
    if not SERVER_NAME_RE.match(server_name) or not MEDIA_ID_RE.match(media_id):
        raise ValueError("malformed media reference")
    path = (
        f"/_matrix/client/v1/media/thumbnail/{quote(server_name)}/{quote(media_id)}"
        f"?width={size}&height={size}&method=crop&animated=false"
    )
    return matrix_fetch_bytes(homeserver_url, path, token=access_token)
