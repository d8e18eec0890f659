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

Over TLS the same half-close needs :class:`HalfCloseTLSProtocol`: the docker CLI sends TLS
``close_notify`` when its stdin ends, ``wharf`` a TCP FIN, and asyncio's TLS transport treats
either as the end of the connection. This subclass delivers the end of input to the
application protocol and, when that protocol's ``eof_received`` returns true (the hijacked
protocol does), keeps the connection open for writing; otherwise it behaves exactly as
asyncio's. It relies on CPython 3.11's ``asyncio.sslproto`` internals; the TLS integration
tests (attach with stdin over TLS, wharfd's and the gateway's) catch a change there.

Why one uvicorn ``Server`` and not two: uvicorn applies its single ``config.ssl`` to every socket
it serves, so a unix socket and a TLS TCP socket cannot share a stock server. Two servers in
one loop would each install signal handlers (the second shadows the first), run the app's
lifespan twice and shut down separately. :class:`ListeningServer` instead lets uvicorn serve
the plain sockets and adds one asyncio server per TLS socket in ``startup``, built from the
same protocol class, server state and app state, and registered in ``self.servers``: one app,
one lifespan, one signal handling, one graceful shutdown that also drains TLS connections.
Both wharfd and wharf-gateway serve through it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import socket
import ssl
from asyncio import sslproto
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import parse_qs, unquote

import h11
import uvicorn
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
        await self.reply(error.http_status, "application/json", body)

    async def reply(self, status: int, content_type: str, body: bytes,
                    headers: tuple[tuple[str, str], ...] = ()) -> None:
        """An ordinary HTTP answer instead of the upgrade; the connection closes after it."""
        extra = "".join(f"{k}: {v}\r\n" for k, v in headers)
        head = (f"HTTP/1.1 {status} {h11_reason(status)}\r\nContent-Type: {content_type}\r\n"
                f"Content-Length: {len(body)}\r\n{self._headers()}{extra}"
                "Connection: close\r\n\r\n")
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


# --- TLS: half-close, and one server for plain and TLS sockets ------------------------------

_WRAPPED = sslproto.SSLProtocolState.WRAPPED
_CON_MADE = sslproto.AppProtocolState.STATE_CON_MADE
_EOF = sslproto.AppProtocolState.STATE_EOF
# typeshed describes the pre-3.11 SSLProtocol (no _state, _do_read, ...): typed as Any here.
_SSLProtocol: Any = sslproto.SSLProtocol
HANDSHAKE_TIMEOUT = 10.0


class HalfCloseTLSProtocol(_SSLProtocol):  # type: ignore[misc]
    """asyncio's TLS protocol, plus half-close when the application protocol asks for it."""

    _peer_done = False  # the peer ended its input and the app keeps writing
    _skip_shutdown = False  # the read path's shutdown right after that end is not wanted

    def _app_keeps_open(self) -> bool:
        """Tell the app its input ended; True when it keeps the connection for writing."""
        self._app_state = _EOF
        try:
            keep = bool(self._app_protocol.eof_received())
        except Exception as exc:
            self._fatal_error(exc, "Error calling eof_received()")
            return False
        self._peer_done = keep
        return keep

    def _call_eof_received(self) -> None:
        # A close_notify while wrapped; asyncio would shut the connection down next.
        if self._state == _WRAPPED and self._app_state == _CON_MADE:
            if self._app_keeps_open():
                self._skip_shutdown = True
            return
        super()._call_eof_received()

    def _start_shutdown(self) -> None:
        if self._skip_shutdown:
            self._skip_shutdown = False
            return
        super()._start_shutdown()

    def _do_read(self) -> None:
        if self._peer_done:  # nothing more can come; only flush what we owe
            if self._write_backlog:
                self._do_write()
            return
        super()._do_read()

    def eof_received(self) -> bool | None:
        # A TCP FIN without close_notify (a raw half-close) while wrapped.
        if self._state == _WRAPPED and self._app_state == _CON_MADE:
            self._do_read()  # application data that came before the FIN
        if self._state == _WRAPPED and self._app_state == _CON_MADE:
            self._eof_received = True  # no close_notify will come: do not wait for one
            if self._app_keeps_open():
                return True
        elif self._peer_done and self._state == _WRAPPED:
            return True
        result: bool | None = super().eof_received()
        return result


class ListeningServer(uvicorn.Server):
    """uvicorn serving the plain sockets it is given plus ``tls_sockets`` with their contexts."""

    def __init__(self, config: uvicorn.Config,
                 tls_sockets: Sequence[tuple[socket.socket, ssl.SSLContext]] = ()) -> None:
        super().__init__(config)
        self.tls_sockets = list(tls_sockets)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.should_exit or not self.started:
            return
        loop = asyncio.get_running_loop()
        for sock, context in self.tls_sockets:
            server = await loop.create_server(self._tls_factory(loop, context), sock=sock,
                                              backlog=self.config.backlog)
            self.servers.append(server)

    def _tls_factory(self, loop: asyncio.AbstractEventLoop,
                     context: ssl.SSLContext) -> Any:
        config, state = self.config, self.server_state

        def factory() -> asyncio.BaseProtocol:
            app = config.http_protocol_class(  # type: ignore[call-arg]
                config=config, server_state=state, app_state=self.lifespan.state, _loop=loop)
            return HalfCloseTLSProtocol(loop, app, context, None, server_side=True,
                                        ssl_handshake_timeout=HANDSHAKE_TIMEOUT)

        return factory
