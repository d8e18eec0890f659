"""The closed set of error kinds every wharf program raises and maps.

Raise a kind with a message that names the thing (image, container, registry). Servers map a
kind to an HTTP status in exactly one place; on the wire an error is ``{code, message}`` and the
client rebuilds the same kind from ``code`` (never from the message text).
"""

from __future__ import annotations

TYPE_CHECKING = False  # `typing` costs the CLI's start-up time; mypy reads the block anyway
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import ClassVar


class WharfError(Exception):
    """Base of every error kind; ``code`` is its stable wire name."""

    code: ClassVar[str] = "internal"
    http_status: ClassVar[int] = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class NotFound(WharfError):
    code = "not_found"
    http_status = 404


class AlreadyExists(WharfError):
    code = "already_exists"
    http_status = 409


class Conflict(WharfError):
    code = "conflict"
    http_status = 409


class InvalidArgument(WharfError):
    code = "invalid_argument"
    http_status = 400


class Unprocessable(WharfError):
    """Well-formed, but not something the server can do as sent (a retry key reused for a
    different request); only the gateway raises it, the Docker API never does."""

    code = "unprocessable"
    http_status = 422


class Unavailable(WharfError):
    code = "unavailable"
    http_status = 503


class MaybeSent(Unavailable):
    """Unavailable after a message was handed to the broker without its confirm: it may have
    gone out (a connection lost, a nack). Whoever sent it keeps its id to send it again."""


class DeadlineExceeded(WharfError):
    code = "deadline_exceeded"
    http_status = 504


class PermissionDenied(WharfError):
    code = "permission_denied"
    http_status = 403


class Unauthenticated(WharfError):
    code = "unauthenticated"
    http_status = 401


class Internal(WharfError):
    code = "internal"
    http_status = 500


class NotModified(WharfError):
    """The request asked for a state the object is already in (Docker answers 304)."""

    code = "not_modified"
    http_status = 304


KINDS: dict[str, type[WharfError]] = {
    kind.code: kind
    for kind in (
        NotFound,
        AlreadyExists,
        Conflict,
        InvalidArgument,
        Unprocessable,
        Unavailable,
        DeadlineExceeded,
        PermissionDenied,
        Unauthenticated,
        Internal,
        NotModified,
    )
}


def as_value_error(check: Callable[[str], object], value: str | None) -> str | None:
    """For a settings validator (pydantic): ``value`` once ``check`` accepted it (None passes),
    the check's InvalidArgument raised as the ValueError pydantic reports, with the check's own
    message (the checks of addresses word theirs without a password)."""
    if value is not None:
        try:
            check(value)
        except InvalidArgument as exc:
            raise ValueError(str(exc)) from None
    return value


def from_code(code: str, message: str) -> WharfError:
    """Rebuild the error kind named by ``code`` (unknown codes become Internal)."""
    return KINDS.get(code, Internal)(message)


_STATUS_KINDS: dict[int, type[WharfError]] = {
    304: NotModified,
    400: InvalidArgument,
    401: Unauthenticated,
    403: PermissionDenied,
    404: NotFound,
    409: Conflict,
    422: Unprocessable,
    503: Unavailable,
    504: DeadlineExceeded,
}


def from_http_status(status: int, message: str) -> WharfError:
    """Rebuild a kind from a Docker-style HTTP error (the Docker API carries no code)."""
    return _STATUS_KINDS.get(status, Internal)(message)
