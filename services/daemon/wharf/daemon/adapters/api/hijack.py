"""Docker's connection hijack (``Connection: Upgrade`` + ``Upgrade: tcp``) on top of uvicorn.

uvicorn hands an ASGI app no raw socket, and Docker's attach and exec-start need one: after
``101 UPGRADED`` the connection is a bidirectional byte pipe. uvicorn already switches protocols
for websockets (it gives the transport to another ``asyncio.Protocol``); this module uses the
same hook for ``Upgrade: tcp``: :class:`HijackH11Protocol` passes the request to a
:class:`Dispatcher`, which answers with an HTTP error or upgrades and streams.

Contract for a dispatcher: it is awaited once per hijacked request; it must call exactly one of
``HijackStream.refuse`` (an ordinary HTTP error reply) or ``HijackStream.upgrade`` (the 101),
then may read the client's bytes and write its own until it returns; the connection is closed
when it returns. Read-EOF from the client is a half-close, not a hang-up (Docker clients
``shutdown(SHUT_WR)`` when they have no stdin), so writing goes on after it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import parse_qs, unquote

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from wharf.errors import InvalidArgument, WharfError

log = logging.getLogger("wharf.api.hijack")
_VERSION_PREFIX = re.compile(r"^/v[0-9][0-9.]*(?=/)")
_MAX_BODY = 1 << 20


@dataclass
class HijackRequest:
    method: str
    path: str  # version prefix stripped
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes = b""

    def param(self, name: str, default: str = "") -> str:
        values = self.query.get(name)
        return values[-1] if values else default

    def json(self) -> dict[str, Any]:
        """The body's JSON object; ``{}`` for an empty body or one that is not an object.

        Raises:
            InvalidArgument: the body is not JSON.
        """
        if not self.body.strip():
            return {}
        try:
            data = json.loads(self.body)
        except ValueError:
            raise InvalidArgument("invalid JSON in the request body") from None
        return data if isinstance(data, dict) else {}


class Dispatcher(Protocol):
    def matches(self, request: HijackRequest) -> bool: ...

    async def __call__(self, request: HijackRequest, stream: HijackStream) -> None: ...


@dataclass
class HijackStream:
    """The hijacked connection: client bytes in through ``read``, ours out through ``write``."""

    transport: asyncio.Transport
    extra_headers: list[tuple[str, str]] = field(default_factory=list)
    _reader: asyncio.StreamReader = field(default_factory=asyncio.StreamReader)
    _can_write: asyncio.Event = field(default_factory=asyncio.Event)
    upgraded: bool = False

    def __post_init__(self) -> None:
        self._can_write.set()

    async def refuse(self, error: WharfError) -> None:
        body = json.dumps({"message": error.message}).encode()
        reason = h11_reason(error.http_status)
        head = (f"HTTP/1.1 {error.http_status} {reason}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n{self._headers()}Connection: close\r\n\r\n")
        self.transport.write(head.encode() + body)

    async def upgrade(self, content_type: str = "application/vnd.docker.raw-stream") -> None:
        head = (f"HTTP/1.1 101 UPGRADED\r\nContent-Type: {content_type}\r\n"
                f"Connection: Upgrade\r\nUpgrade: tcp\r\n{self._headers()}\r\n")
        self.transport.write(head.encode())
        self.upgraded = True

    async def read(self, n: int = 65536) -> bytes:
        """Client bytes; ``b""`` once the client half-closed (keep writing after that)."""
        return await self._reader.read(n)

    async def write(self, data: bytes) -> None:
        if self.transport.is_closing():
            raise ConnectionResetError("client went away")
        self.transport.write(data)
        await self._can_write.wait()

    @property
    def closed(self) -> bool:
        return self.transport.is_closing()

    def _headers(self) -> str:
        return "".join(f"{k}: {v}\r\n" for k, v in self.extra_headers)


class _HijackedProtocol(asyncio.Protocol):
    """Owns the transport after the upgrade: reads the request body, then runs the dispatcher."""

    def __init__(self, request: HijackRequest, body_length: int, dispatcher: Dispatcher,
                 extra_headers: list[tuple[str, str]]) -> None:
        self.request = request
        self.body_left = body_length
        self.dispatcher = dispatcher
        self.extra_headers = extra_headers
        self.stream: HijackStream | None = None
        self.task: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.stream = HijackStream(transport, self.extra_headers)
        if self.body_left == 0:
            self._start()

    def data_received(self, data: bytes) -> None:
        assert self.stream is not None
        if self.body_left > 0:
            take, data = data[: self.body_left], data[self.body_left:]
            self.request.body += take
            self.body_left -= len(take)
            if self.body_left == 0:
                self._start()
        if data:
            self.stream._reader.feed_data(data)

    def eof_received(self) -> bool:
        assert self.stream is not None
        self.stream._reader.feed_eof()
        return True  # half-close: keep our side open for output

    def connection_lost(self, exc: Exception | None) -> None:
        if self.stream is not None:
            self.stream._reader.feed_eof()
            self.stream._can_write.set()

    def pause_writing(self) -> None:
        if self.stream is not None:
            self.stream._can_write.clear()

    def resume_writing(self) -> None:
        if self.stream is not None:
            self.stream._can_write.set()

    def _start(self) -> None:
        if self.task is None:
            self.task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        stream = self.stream
        assert stream is not None
        try:
            await self.dispatcher(self.request, stream)
        except WharfError as exc:
            if not stream.upgraded:
                await stream.refuse(exc)
        except (ConnectionError, asyncio.CancelledError):
            pass
        except Exception:
            log.exception("hijacked %s %s failed", self.request.method, self.request.path)
        finally:
            if not stream.transport.is_closing():
                if stream.transport.can_write_eof():
                    stream.transport.write_eof()
                stream.transport.close()


class HijackH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, plus ``Upgrade: tcp`` for the routes a dispatcher claims."""

    dispatcher: Dispatcher | None = None
    extra_headers: list[tuple[str, str]] = []

    def _hijack_request(self) -> HijackRequest | None:
        if self.dispatcher is None or self._get_upgrade() != b"tcp":
            return None
        path = _VERSION_PREFIX.sub("", self.scope["path"], count=1)
        query = parse_qs(self.scope["query_string"].decode("latin-1"), keep_blank_values=True)
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in self.headers}
        request = HijackRequest(self.scope["method"], unquote(path), query, headers)
        return request if self.dispatcher.matches(request) else None

    def _should_upgrade(self) -> bool:
        if self._hijack_request() is not None:
            return True
        return super()._should_upgrade()

    def handle_websocket_upgrade(self, event: h11.Request) -> None:
        request = self._hijack_request()
        if request is None:
            super().handle_websocket_upgrade(event)
            return
        assert self.dispatcher is not None
        length = int(request.headers.get("content-length") or 0)
        if length > _MAX_BODY or length < 0:
            self.send_400_response("request body too large")
            return
        self.connections.discard(self)
        protocol = _HijackedProtocol(request, length, self.dispatcher, self.extra_headers)
        trailing, _ = self.conn.trailing_data
        protocol.connection_made(self.transport)
        if trailing:
            protocol.data_received(bytes(trailing))
        self.transport.set_protocol(protocol)


def bind_protocol(dispatcher: Dispatcher, extra_headers: list[tuple[str, str]]
                  ) -> type[HijackH11Protocol]:
    """A protocol class for ``uvicorn.Config(http=…)`` that hijacks through ``dispatcher``."""
    return type("BoundHijackH11Protocol", (HijackH11Protocol,),
                {"dispatcher": dispatcher, "extra_headers": extra_headers})


def h11_reason(status: int) -> str:
    from http import HTTPStatus  # noqa: PLC0415

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"
