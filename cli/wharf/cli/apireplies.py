"""Reading wharfd's API replies, and the one request encoding the calls share.

A non-2xx reply becomes the ``wharf.errors`` kind for its status (``from_http_status``) with
the message the docker CLI would show (:func:`error_for`); JSON-message streams (pull, push,
load, import, events) are decoded object by object (:func:`decode_messages`); a wait's result
comes with :class:`WaitHandle`; ``cp``'s path-stat header is decoded by :func:`path_stat`.
"""

from __future__ import annotations

import json

from wharf.errors import Internal, WharfError, from_http_status

TYPE_CHECKING = False  # `typing` costs start-up time (docs/cli.md "Start-up")
if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping
    from typing import Any

    from wharf.cli.transport import StreamReply

JSONObject = dict[str, "Any"]  # "Any" in quotes: typing is not imported at run time
# Docker sends `e30=` (base64 of "{}") when it has no credentials for a registry.
EMPTY_AUTH = "e30="
_REASONS = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
            409: "Conflict", 500: "Internal Server Error", 503: "Service Unavailable"}


def error_for(status: int, body: bytes, content_type: str) -> WharfError:
    """The error kind for a non-2xx reply, with the message the docker CLI would show."""
    text = body.decode("utf-8", "replace").strip()
    if status == 404 and not text:
        return from_http_status(status, "page not found: check if the server supports the "
                                        "requested API version")
    if "json" not in content_type:
        return from_http_status(status, text)
    try:
        message = json.loads(text).get("message")
    except (ValueError, AttributeError):
        message = text
    if not message:
        reason = _REASONS.get(status, "error")
        message = f"API returned a {status} ({reason}) but provided no error-message"
    return from_http_status(status, str(message))


def filters_param(filters: Mapping[str, Iterable[str]]) -> str:
    """Docker's map form, byte for byte as the docker CLI sends it (Go sorts map keys):
    ``{"dangling":{"true":true},"label":{"a=b":true}}``."""
    return json.dumps({k: dict.fromkeys(v, True) for k, v in filters.items()}, sort_keys=True,
                      separators=(",", ":"))


def decode_messages(lines: Iterable[str]) -> Iterator[JSONObject]:
    """JSON objects from a JSON-message stream, tolerating several objects on one line."""
    decoder = json.JSONDecoder()
    for line in lines:
        pos, text = 0, line.strip()
        while pos < len(text):
            try:
                obj, end = decoder.raw_decode(text, pos)
            except ValueError as exc:
                raise Internal(f"the daemon sent a malformed progress message: {text!r}") from exc
            if isinstance(obj, dict):
                yield obj
            pos = end
            while pos < len(text) and text[pos].isspace():
                pos += 1


class WaitHandle:
    """A ``POST /containers/{id}/wait`` whose headers arrived; the body comes at exit."""

    def __init__(self, reply: StreamReply) -> None:
        self._reply = reply

    def result(self) -> JSONObject:
        """Blocks until the condition is met: ``{"StatusCode": N, "Error": …}``."""
        try:
            body = self._reply.read()
        finally:
            self._reply.close()
        try:
            return dict(json.loads(body))
        except (ValueError, TypeError) as exc:
            raise Internal(f"the daemon sent an invalid wait result: {body[:200]!r}") from exc

    def close(self) -> None:
        self._reply.close()


def path_stat(headers: Mapping[str, str]) -> JSONObject:
    """The ``X-Docker-Container-Path-Stat`` header, decoded (base64 of a JSON object)."""
    import base64  # noqa: PLC0415 - only cp needs it

    raw = headers.get("x-docker-container-path-stat", "")
    try:
        value = json.loads(base64.b64decode(raw, validate=True))
    except ValueError as exc:
        raise Internal(f"unable to decode container path stat header: {exc}") from exc
    if not isinstance(value, dict):
        raise Internal("unable to decode container path stat header: not an object")
    return value


def bytes_then_close(reply: StreamReply) -> Iterator[bytes]:
    """A streamed body as it arrives; the connection is closed when the iteration ends."""
    try:
        yield from reply.iter_bytes()
    finally:
        reply.close()
