"""The plumbing every API call goes through: one request over the :class:`Transport` with its
reply checked (non-2xx raise), JSON or streamed bodies, and the hijack of attach and exec.
"""

from __future__ import annotations

import json

from wharf.cli.apireplies import decode_messages, error_for
from wharf.errors import Internal

TYPE_CHECKING = False  # `typing` costs start-up time (docs/cli.md "Start-up")
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any

    from wharf.cli.apireplies import JSONObject
    from wharf.cli.hijack import Hijacker, RawStream
    from wharf.cli.transport import Params, Reply, StreamReply, Transport


class APIBase:
    """A :class:`Transport` (and a Hijacker for attach) and the calls made over it."""

    def __init__(self, transport: Transport, hijacker: Hijacker | None = None) -> None:
        self._t = transport
        self._hijacker = hijacker

    def close(self) -> None:
        self._t.close()

    # -- plumbing ---------------------------------------------------------------------------
    def _call(self, method: str, path: str, *, ok_304: bool = False, **kw: Any) -> Reply:
        reply = self._t.request(method, path, **kw)
        if ok_304 and reply.status == 304:  # start/stop of a container already in that state
            return reply
        if not 200 <= reply.status < 300:
            raise error_for(reply.status, reply.body, reply.content_type)
        return reply

    def _json(self, method: str, path: str, **kw: Any) -> Any:
        reply = self._call(method, path, **kw)
        if not reply.body.strip():
            return None
        try:
            return json.loads(reply.body)
        except ValueError as exc:
            raise Internal(f"the daemon sent invalid JSON for {method} {path}") from exc

    def _stream(self, method: str, path: str, **kw: Any) -> StreamReply:
        reply = self._t.stream(method, path, **kw)
        if not 200 <= reply.status < 300:
            try:
                body = reply.read()
            finally:
                reply.close()
            raise error_for(reply.status, body, reply.headers.get("content-type", ""))
        return reply

    def _messages(self, method: str, path: str, **kw: Any) -> Iterator[JSONObject]:
        """Opens the stream now (so HTTP errors raise here) and decodes it lazily."""
        reply = self._stream(method, path, **kw)

        def gen() -> Iterator[JSONObject]:
            try:
                yield from decode_messages(reply.iter_lines())
            finally:
                reply.close()

        return gen()


    def _hijack(self, path: str, params: Params, body: object) -> RawStream:
        if self._hijacker is None:
            raise Internal("this API client cannot attach: it has no hijacker")
        result = self._hijacker.open(path, params, body)
        if result.stream is not None:
            return result.stream
        reply = result.reply
        if 200 <= reply.status < 300:
            raise Internal(f"unable to upgrade to tcp, received {reply.status}")
        raise error_for(reply.status, reply.body, reply.content_type)
