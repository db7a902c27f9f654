"""Homeserver failures as our own exceptions, each with a message fit for the person who caused it."""

from accounts.matrix.metrics import homeserver_error


class MatrixError(Exception):
    """Anything the homeserver refused or could not do. `errcode` is the spec's code when known."""

    default_message = "The Matrix homeserver could not complete the request."

    def __init__(
        self, message: str | None = None, *, errcode: str = "", status: int | None = None
    ) -> None:
        self.errcode = errcode
        self.status = status
        super().__init__(message or self.default_message)

    @property
    def message(self) -> str:
        return str(self)


class HomeserverUnreachable(MatrixError):
    default_message = (
        "The Matrix homeserver cannot be reached right now. Nothing was changed; try again shortly."
    )

    def __init__(self, message: str | None = None, *, reached: bool = True, **kwargs) -> None:
        # False only when no connection was made: the request cannot have had any effect.
        self.reached = reached
        super().__init__(message, **kwargs)
        if self.status is None:  # no answer at all (answers are counted in error_from_response)
            homeserver_error(status=None)


class InvalidCredentials(MatrixError):
    default_message = "That user name and password do not match an account on this homeserver."


class AccountDeactivated(MatrixError):
    default_message = "This Matrix account has been deactivated."


class UsernameTaken(MatrixError):
    default_message = "That user name is already taken on the Matrix homeserver."


class InvalidUsername(MatrixError):
    default_message = "That user name is not allowed on Matrix: use lower-case letters, digits and . _ = - / only."


class RegistrationRefused(MatrixError):
    default_message = "The Matrix homeserver refused to create the account."


class RateLimited(MatrixError):
    default_message = "The Matrix homeserver asks us to slow down; try again in a few seconds."

    def __init__(self, message: str | None = None, *, retry_after_ms: int = 0, **kwargs) -> None:
        self.retry_after_ms = retry_after_ms
        super().__init__(message, **kwargs)


class TokenInvalid(MatrixError):
    default_message = "The Matrix session has expired; please sign in again."


class NotConfigured(MatrixError):
    default_message = "The Matrix homeserver is not configured for this workspace."


PERMANENT_STATUSES = range(400, 500)


def is_transient(error: MatrixError) -> bool:
    """Worth trying again later: the homeserver was away, busy or broken (5xx, timeouts, rate
    limits), as opposed to a refusal of the request itself (4xx: forbidden, too large, unknown room)."""
    if isinstance(error, HomeserverUnreachable | RateLimited):
        return True
    if isinstance(error, TokenInvalid):
        return False
    return error.status is None or error.status not in PERMANENT_STATUSES
