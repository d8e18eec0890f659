"""Interactive streams through the gateway: a node's attach, exec and ``logs -f``, relayed to
its wharfd over the cluster's mutual TLS.

Commands travel through RabbitMQ (:mod:`wharf.gateway.dispatch`); a byte stream both ways does
not fit a queue (every keystroke a message through the broker and two consumers, and no
half-close), so these routes go straight to the node's Docker API at the address it advertises
in its heartbeat (``--advertise-addr``, or its ``-H tcp://…`` with ``--tlsverify``), with the
gateway's own client certificate (``--node-tls-ca``/``--node-tls-cert``/``--node-tls-key``).
The gateway checks the token, its scope and its rate first, exactly as for every other route;
the node sees only the gateway. A node's heartbeat can name only its own address (the broker
checks who publishes it), so a node can misdirect no stream but its own.

Two shapes: :class:`StreamRelay` hijacks (``Upgrade: tcp``, under uvicorn like wharfd's own
attach, :mod:`wharf.hijack`) and then copies bytes both ways, a client's half-close passed on
as a TCP half-close under TLS (what wharfd reads as the end of stdin); :func:`forward` sends
one request and streams the node's answer back as it comes (exec create, resize, wait,
``logs -f``). HTTP/1.1 on the node's connection is spoken with h11, as uvicorn does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import re
import socket
import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import h11

from wharf.errors import Unavailable, WharfError, from_http_status
from wharf.hijack import HijackRequest, HijackStream
from wharf.protocol import ADDRESS

log = logging.getLogger("wharf.gateway.relay")
NODE_API = "/v1.41"  # the Engine API version the gateway speaks to wharfd
CONNECT_TIMEOUT = 5.0
HEAD_TIMEOUT = 30.0  # from the request to the node's reply head (an exec start waits for it)
CHUNK = 65536
TRANSFER_TIMEOUT = 3600.0  # a move's image or volume data, sent and taken in
# The hijacked routes, as HijackH11Protocol hands them over (the /v1 prefix stripped).
_HIJACKED = re.compile(r"/nodes/(?P<node>[A-Za-z0-9][A-Za-z0-9_.-]{0,62})"
                       r"(?P<rest>/containers/[^/]+/attach|/exec/[^/]+/start)/?")  # fullmatch


@dataclass
class NodeReply:
    """The node's reply head, and what follows it: the body's events (``body``), or after a
    ``101`` the raw connection with the bytes already read past the head (``trailing``)."""

    status: int
    headers: list[tuple[str, str]]
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    conn: h11.Connection
    trailing: bytes = b""

    def header(self, name: str, default: str = "") -> str:
        return next((v for k, v in self.headers if k == name), default)

    async def body(self) -> AsyncIterator[bytes]:
        """The body as it arrives (Content-Length or chunked); ends at its end."""
        while True:
            event = self.conn.next_event()
            if event is h11.NEED_DATA:
                self.conn.receive_data(await self.reader.read(CHUNK))
            elif isinstance(event, h11.Data):
                yield bytes(event.data)
            else:  # EndOfMessage, ConnectionClosed
                return

    async def read_all(self, limit: int = 1 << 20) -> bytes:
        parts, size = [], 0
        async for part in self.body():
            size += len(part)
            if size > limit:
                raise Unavailable("the node's answer is larger than the gateway relays")
            parts.append(part)
        return b"".join(parts)

    def close(self) -> None:
        self.writer.close()


class NodeLinks:
    """Connections to the nodes' daemons: where a node is (its last heartbeat's address) and
    the TLS context the gateway dials with (None: the gateway relays no stream)."""

    def __init__(self, context: ssl.SSLContext | None) -> None:
        self.context = context

    async def open(self, address: str, node: str, method: str, target: str, *,
                   body: bytes = b"", upgrade: bool = False,
                   content_type: str = "application/json",
                   stream: AsyncIterator[bytes] | None = None,
                   head_timeout: float = HEAD_TIMEOUT) -> NodeReply:
        """Send one request to the node and read its reply head. ``stream``, when given, is
        the body, sent chunked as it comes (a move's image or volume data); ``head_timeout``
        bounds the wait for the reply head once the request is sent.

        Raises:
            Unavailable: the gateway has no certificate for the nodes, the node advertises no
                address, or it cannot be reached or does not answer.
        """
        if self.context is None:
            raise Unavailable("this gateway relays no interactive stream: start it with "
                              "--node-tls-ca, --node-tls-cert and --node-tls-key (a client "
                              "certificate of the CA that signed the nodes' daemons)")
        if not address or not ADDRESS.fullmatch(address):
            raise Unavailable(f"node {node} advertises no mutual-TLS address for streams "
                              "(its wharfd needs -H tcp://ADDRESS:2376 --tlsverify or "
                              "--advertise-addr)")
        host, _, port = address.rpartition(":")
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(
                host.strip("[]"), int(port), ssl=self.context,
                server_hostname=host.strip("[]"), limit=CHUNK), CONNECT_TIMEOUT)
        except (OSError, TimeoutError, ssl.SSLError) as exc:
            raise Unavailable(f"node {node} ({address}) cannot be reached for the stream: "
                              f"{exc or type(exc).__name__}") from exc
        conn = h11.Connection(h11.CLIENT)
        length = ("Transfer-Encoding", "chunked") if stream is not None else \
            ("Content-Length", str(len(body)))
        headers = [("Host", host), ("User-Agent", "wharf-gateway"), length,
                   ("Content-Type", content_type)]
        if upgrade:
            headers += [("Connection", "Upgrade"), ("Upgrade", "tcp")]
        try:
            data = conn.send(h11.Request(method=method, target=target, headers=headers)) or b""
            data += (conn.send(h11.Data(data=body)) or b"") if body else b""
            if stream is not None:
                writer.write(data)
                async for chunk in stream:
                    if chunk:
                        writer.write(conn.send(h11.Data(data=chunk)) or b"")
                        await writer.drain()
                data = b""
            writer.write(data + (conn.send(h11.EndOfMessage()) or b""))
            return await asyncio.wait_for(_head(reader, writer, conn), head_timeout)
        except (OSError, TimeoutError, h11.ProtocolError, ssl.SSLError) as exc:
            writer.close()
            raise Unavailable(f"node {node} ({address}) did not answer the stream: "
                              f"{exc or type(exc).__name__}") from exc
        except BaseException:  # the streamed body's own failure, or a cancellation
            writer.close()
            raise


async def _head(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                conn: h11.Connection) -> NodeReply:
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            data = await reader.read(CHUNK)
            conn.receive_data(data)
            if not data and conn.their_state is not h11.SWITCHED_PROTOCOL:
                raise ConnectionResetError("the node closed the connection")
            continue
        if isinstance(event, h11.InformationalResponse) and event.status_code == 101:
            trailing, _ = conn.trailing_data
            return NodeReply(101, _decoded(event.headers), reader, writer, conn,
                             bytes(trailing))
        if isinstance(event, h11.Response):
            return NodeReply(event.status_code, _decoded(event.headers), reader, writer, conn)


def _decoded(headers: Any) -> list[tuple[str, str]]:
    return [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in headers]


def node_target(rest: str, query: list[tuple[str, str]]) -> str:
    """The node's request target for the gateway's ``/v1/nodes/{node}{rest}?query``."""
    encoded = urlencode(query)
    return f"{NODE_API}{quote(rest, safe='/')}" + (f"?{encoded}" if encoded else "")


class StreamRelay:
    """The hijack dispatcher (:class:`wharf.hijack.Dispatcher`) of the gateway: attach and
    exec start. Reads what the gateway knows from its app's state, set at start-up."""

    def __init__(self, state: Any) -> None:
        self.state = state

    def matches(self, request: HijackRequest) -> bool:
        return request.method == "POST" and _HIJACKED.fullmatch(request.path) is not None

    async def __call__(self, request: HijackRequest, stream: HijackStream) -> None:
        match = _HIJACKED.fullmatch(request.path)
        assert match is not None, "matches() said so"
        node, rest = match["node"], match["rest"]
        try:
            self._admit(request, node, rest)
            address = self.state.dispatcher.stream_address(node)
            query = [(k, v) for k, values in request.query.items() for v in values]
            reply = await self.state.links.open(
                address, node, "POST", node_target(rest, query), body=request.body,
                upgrade=True,
                content_type=request.headers.get("content-type", "application/json"))
        except WharfError as exc:  # the gateway's own answer: {message, code}, as its routes
            body = json.dumps({"message": exc.message, "code": exc.code}).encode()
            await stream.reply(exc.http_status, "application/json", body, _challenge(exc))
            return
        try:
            if reply.status != 101:
                body = await reply.read_all()
                await stream.reply(reply.status, reply.header("content-type",
                                                              "application/json"), body)
                return
            await stream.upgrade(reply.header("content-type",
                                              "application/vnd.docker.raw-stream"))
            if reply.trailing:
                await stream.write(reply.trailing)
            await pipe(stream, reply.reader, reply.writer)
        finally:
            reply.close()

    def _admit(self, request: HijackRequest, node: str, rest: str) -> None:
        """What the middleware does for the other routes: the token, its scope, its rate,
        and the create policy's privileged rule for an exec's start (checked at its create)."""
        from wharf.gateway.policy import check_scope  # noqa: PLC0415

        grant = self.state.tokens.authenticate(request.headers.get("authorization"))
        check_scope(grant, "POST", f"/v1/nodes/{node}{rest}")
        wait = self.state.limiter.wait(grant.name)
        if wait > 0:
            raise RateLimited(f"rate limit: token {grant.name!r} is past its rate; retry in "
                              f"{wait:.2f}s", math.ceil(wait))


def _challenge(exc: WharfError) -> tuple[tuple[str, str], ...]:
    if isinstance(exc, RateLimited):
        return (("Retry-After", str(exc.retry_after)),)
    return {401: (("WWW-Authenticate", "Bearer"),),
            403: (("WWW-Authenticate", 'Bearer error="insufficient_scope"'),)
            }.get(exc.http_status, ())


class RateLimited(WharfError):
    """429 on a hijacked route (the middleware's answer, for the routes it does not see)."""

    code = "rate_limited"
    http_status = 429

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = max(1, retry_after)


async def pipe(stream: HijackStream, reader: asyncio.StreamReader,
               writer: asyncio.StreamWriter) -> None:
    """Copy both ways until the node's side ends. The client's half-close becomes the node's
    (a TCP FIN under TLS: the output still to come keeps flowing); the client gone is a
    detach: the node's connection closes."""
    async def upstream() -> None:
        while data := await stream.read(CHUNK):
            writer.write(data)
            await writer.drain()
        if stream.closed:
            writer.close()  # the client went away: nothing more to send it
            return
        raw = writer.get_extra_info("socket")
        if raw is not None:
            with contextlib.suppress(OSError):
                raw.shutdown(socket.SHUT_WR)

    sending = asyncio.create_task(upstream())
    try:
        while data := await reader.read(CHUNK):
            await stream.write(data)
    except (ConnectionError, ssl.SSLError):
        pass
    finally:
        if not sending.done():
            sending.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionError, ssl.SSLError):
            await sending


class NodeAPI:
    """A node's Docker API as JSON calls and streams, through :class:`NodeLinks`."""

    def __init__(self, address: Callable[[str], str], links: NodeLinks) -> None:
        self.address, self.links = address, links

    async def call(self, node: str, method: str, path: str, query: dict[str, str] | None = None,
                   body: Any = None, ok: tuple[int, ...] = (200, 201, 204, 304)) -> Any:
        """The answer's JSON (None when empty); the node's error as its error kind."""
        reply = await self.links.open(
            self.address(node), node, method, node_target(path, list((query or {}).items())),
            body=b"" if body is None else json.dumps(body).encode())
        try:
            data = await reply.read_all(64 << 20)
        finally:
            reply.close()
        if reply.status not in ok:
            try:
                message = str(json.loads(data).get("message"))
            except (ValueError, AttributeError):
                message = data.decode(errors="replace")[:300]
            raise from_http_status(reply.status, f"{node}: {message}")
        return json.loads(data) if data.strip() and data.lstrip()[:1] in (b"{", b"[") else None

    async def copy(self, source: str, source_path: str, target: str, target_path: str,
                   query: dict[str, str] | None = None) -> bytes:
        """Stream ``GET source_path`` on ``source`` into ``POST target_path`` on ``target``;
        the target's answer."""
        out = await self.links.open(self.address(source), source, "GET",
                                    node_target(source_path, []), head_timeout=TRANSFER_TIMEOUT)
        try:
            if out.status != 200:
                raise from_http_status(out.status, f"{source}: {source_path}: "
                                       f"{(await out.read_all()).decode(errors='replace')}")
            into = await self.links.open(
                self.address(target), target, "POST",
                node_target(target_path, list((query or {}).items())),
                content_type="application/x-tar", stream=out.body(),
                head_timeout=TRANSFER_TIMEOUT)
        finally:
            out.close()
        try:
            answer = await into.read_all(16 << 20)
        finally:
            into.close()
        if into.status >= 300:
            raise from_http_status(into.status, f"{target}: {target_path}: "
                                   f"{answer.decode(errors='replace')[:300]}")
        return answer
