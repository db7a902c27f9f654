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
