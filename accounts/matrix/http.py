"""A small synchronous JSON client for the client-server and Synapse admin APIs.

Web requests, admin forms and short jobs make one call at a time and need a bounded wait and a clear
error, not a retry loop, so this uses the standard library rather than nio's long-lived AsyncClient.
"""

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from accounts.matrix.errors import (
    AccountDeactivated,
    HomeserverUnreachable,
    InvalidCredentials,
    InvalidUsername,
    MatrixError,
    RateLimited,
    RegistrationRefused,
    TokenInvalid,
    UsernameTaken,
)
from accounts.matrix.metrics import homeserver_error

_ERRCODE_EXCEPTIONS: dict[str, type[MatrixError]] = {
    "M_FORBIDDEN": MatrixError,
    "M_USER_DEACTIVATED": AccountDeactivated,
    "M_USER_IN_USE": UsernameTaken,
    "M_INVALID_USERNAME": InvalidUsername,
    "M_EXCLUSIVE": InvalidUsername,
    "M_UNKNOWN_TOKEN": TokenInvalid,
    "M_MISSING_TOKEN": TokenInvalid,
}


def quote(value: str) -> str:
    """Percent-encode one path segment (user ids and room ids contain '@', ':' and '!')."""
    return urllib.parse.quote(value, safe="")


def matrix_request(
    base_url: str,
    method: str,
    path: str,
    *,
    token: str | None = None,
    body: dict[str, Any] | None = None,
    timeout: float = 15.0,
) -> dict[str, Any]:
    """Send one JSON request and return the decoded JSON object, or raise a MatrixError."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(endpoint_url(base_url, path), data=data, method=method)  # noqa: S310
    request.add_header("Accept", "application/json")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return _decode(response.read(), response.status)
    except urllib.error.HTTPError as error:
        raise error_from_response(error.code, error.read()) from None
    except (TimeoutError, urllib.error.URLError, ConnectionError, OSError) as error:
        raise HomeserverUnreachable() from error


def endpoint_url(base_url: str, path: str) -> str:
    """Only http(s) homeservers: a configured file:// or custom scheme must never be opened."""
    if not base_url:
        raise HomeserverUnreachable("No Matrix homeserver URL is configured.")
    if not base_url.startswith(("http://", "https://")):
        raise HomeserverUnreachable(
            "The Matrix homeserver URL must start with http:// or https://."
        )
    return base_url.rstrip("/") + path


def _decode(payload: bytes, status: int) -> dict[str, Any]:
    try:
        decoded = json.loads(payload or b"{}")
    except ValueError:
        raise MatrixError(
            "The homeserver answered with something that is not JSON.", status=status
        ) from None
    if not isinstance(decoded, dict):
        raise MatrixError("The homeserver answered with an unexpected shape.", status=status)
    return decoded


def error_from_response(status: int, payload: bytes) -> MatrixError:
    homeserver_error(status=status)
    try:
        decoded = json.loads(payload or b"{}")
    except ValueError:
        decoded = {}
    if not isinstance(decoded, dict):
        decoded = {}
    errcode = str(decoded.get("errcode", ""))
    detail = str(decoded.get("error", ""))[:300]
    if status >= 500 and not errcode:  # a proxy or a crashed worker: worth retrying
        return HomeserverUnreachable(status=status)
    if errcode == "M_LIMIT_EXCEEDED" or status == 429:
        retry = decoded.get("retry_after_ms", 0)
        return RateLimited(
            retry_after_ms=retry if isinstance(retry, int) else 0, errcode=errcode, status=status
        )
    exception = _ERRCODE_EXCEPTIONS.get(errcode)
    if exception is MatrixError and status == 403 and "registration" in detail.lower():
        exception = RegistrationRefused
    if exception is None:
        exception = MatrixError
    if exception is MatrixError:
        message = f"The Matrix homeserver refused the request: {detail or errcode or status}."
        return MatrixError(message, errcode=errcode, status=status)
    return exception(errcode=errcode, status=status)


__all__ = ["InvalidCredentials", "matrix_request", "quote"]


def matrix_fetch_bytes(
    base_url: str, path: str, *, token: str, timeout: float = 15.0, max_bytes: int = 5_000_000
) -> tuple[bytes, str]:
    """GET a binary resource (media); returns (body, content type), refusing oversized bodies."""
    request = urllib.request.Request(endpoint_url(base_url, path), method="GET")  # noqa: S310
    request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            body = response.read(max_bytes + 1)
            if len(body) > max_bytes:
                raise MatrixError("The media file is larger than allowed here.")
            return body, response.headers.get_content_type()
    except urllib.error.HTTPError as error:
        raise error_from_response(error.code, error.read()) from None
    except (TimeoutError, urllib.error.URLError, ConnectionError, OSError) as error:
        raise HomeserverUnreachable() from error
