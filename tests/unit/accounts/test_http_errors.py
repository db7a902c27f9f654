"""Homeserver error bodies become our exceptions with a clear message."""

import json

from accounts.matrix import errors
from accounts.matrix.http import error_from_response


def body(**fields) -> bytes:
    return json.dumps(fields).encode()


def test_errcodes_map_to_exceptions():
    assert isinstance(error_from_response(400, body(errcode="M_USER_IN_USE")), errors.UsernameTaken)
    assert isinstance(
        error_from_response(400, body(errcode="M_INVALID_USERNAME")), errors.InvalidUsername
    )
    assert isinstance(
        error_from_response(401, body(errcode="M_UNKNOWN_TOKEN")), errors.TokenInvalid
    )
    assert isinstance(
        error_from_response(403, body(errcode="M_USER_DEACTIVATED")), errors.AccountDeactivated
    )


def test_rate_limit_keeps_retry_after():
    error = error_from_response(429, body(errcode="M_LIMIT_EXCEEDED", retry_after_ms=1500))
    assert isinstance(error, errors.RateLimited) and error.retry_after_ms == 1500


def test_gateway_errors_without_json_mean_unreachable():
    assert isinstance(
        error_from_response(502, b"<html>bad gateway</html>"), errors.HomeserverUnreachable
    )


def test_unknown_error_quotes_the_homeserver_reason():
    error = error_from_response(403, body(errcode="M_FORBIDDEN", error="Registration is disabled"))
    assert isinstance(error, errors.RegistrationRefused)
    error = error_from_response(400, body(errcode="M_WEIRD", error="Something odd"))
    assert type(error) is errors.MatrixError and "Something odd" in error.message


def test_server_trouble_is_transient_and_refusals_are_not():
    """The outbox retries what the server may still do and fails what it refused for good."""
    transient = [
        error_from_response(500, b"<html>oops</html>"),  # a bare 5xx: no errcode
        error_from_response(502, b""),
        error_from_response(500, body(errcode="M_UNKNOWN", error="Internal server error")),
        error_from_response(429, body(errcode="M_LIMIT_EXCEEDED", retry_after_ms=10)),
        errors.HomeserverUnreachable(reached=False),
    ]
    permanent = [
        error_from_response(403, body(errcode="M_FORBIDDEN", error="not in room")),
        error_from_response(413, body(errcode="M_TOO_LARGE", error="event too large")),
        error_from_response(400, body(errcode="M_BAD_JSON")),
        error_from_response(401, body(errcode="M_UNKNOWN_TOKEN")),
    ]
    assert isinstance(transient[0], errors.HomeserverUnreachable)
    assert [errors.is_transient(e) for e in transient] == [True] * len(transient)
    assert [errors.is_transient(e) for e in permanent] == [False] * len(permanent)
