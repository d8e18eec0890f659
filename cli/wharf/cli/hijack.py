"""The client side of Docker's connection hijack (attach, exec start), over the stdlib socket.

httpx cannot hand over its connection, so this module speaks the one request itself: it sends
``Connection: Upgrade`` / ``Upgrade: tcp``, reads the reply head, and on ``101`` returns the
socket as a :class:`RawStream` (a raw bidirectional byte pipe, see the Engine API reference §2.1).
Any other status comes back as a :class:`~wharf.cli.transport.Reply` with its body, for the API
client to turn into an error kind.
"""

from __future__ import annotations

import contextlib
import functools
import io
import itertools
import json
import socket
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlencode

from wharf.cli.transport import (
    API_VERSION,
    REQUEST_TIMEOUT,
    USER_AGENT,
    Host,
    Params,
    Reply,
)
from wharf.cli.wire import Body, ChunkReader, connect, wire_error
from wharf.errors import Unavailable

MAX_HEAD = 64 * 1024


class RawStream:
    """A hijacked connection: bytes the reply head over-read are returned first by ``recv``."""

    def __init__(self, sock: socket.socket, buffered: bytes = b"") -> None:
        self._sock = sock
        self._buffered = buffered

    def recv(self, size: int = 65536) -> bytes:
        """Up to ``size`` bytes; ``b""`` at end of stream (or once the socket was shut down)."""
        if self._buffered:
            data, self._buffered = self._buffered[:size], self._buffered[size:]
            return data
        try:
            return self._sock.recv(size)
        except (ConnectionResetError, OSError):
            return b""

    def sendall(self, data: bytes) -> None:
        self._sock.sendall(data)

    def close_write(self) -> None:
        """Half-close: tells the daemon stdin ended, output keeps coming (SHUT_WR).

        On TLS this is a TCP FIN under the TLS layer (``SSLSocket.shutdown`` would drop the
        TLS state and with it the output still to come); wharfd reads it as the end of input.
        """
        with contextlib.suppress(OSError):
            socket.socket.shutdown(self._sock, socket.SHUT_WR)

    def shutdown(self) -> None:
        """Stop both directions (detach): a blocked ``recv`` returns ``b""``."""
        with contextlib.suppress(OSError):
            socket.socket.shutdown(self._sock, socket.SHUT_RDWR)

    def close(self) -> None:
        self._sock.close()


@dataclass
class HijackResult:
    """The reply head (and body when refused); ``stream`` is set only on ``101``."""

    reply: Reply
    stream: RawStream | None


class Hijacker(Protocol):
    """Sends one upgrade request; tests replace it with a socketpair-backed fake."""

    def open(self, path: str, params: Params, body: object = None) -> HijackResult: ...


class SocketHijacker:
    """Hijacks over a new connection to ``host`` (unix socket or TCP)."""

    def __init__(self, host: Host) -> None:
        self.host = host

    def open(self, path: str, params: Params, body: object = None) -> HijackResult:
        """POST ``path`` with the upgrade headers; ``body`` is JSON-encoded when given."""
        sock = self._connect()
        try:
            sock.settimeout(REQUEST_TIMEOUT)
            sock.sendall(request_bytes(path, params, body))
            status, headers, rest = read_head(sock)
            if status == 101:
                sock.settimeout(None)
                return HijackResult(Reply(status, headers, b""), RawStream(sock, rest))
            reply = Reply(status, headers, read_body(sock, headers, rest))
        except TimeoutError as exc:
            sock.close()
            raise Unavailable(f"the wharf daemon at {self.host.url} did not answer") from exc
        except OSError as exc:
            sock.close()
            raise wire_error(self.host, exc) from exc
        except BaseException:
            sock.close()
            raise
        sock.close()
        return HijackResult(reply, None)

    def _connect(self) -> socket.socket:
        return connect(self.host)


def request_bytes(path: str, params: Params, body: object) -> bytes:
    """The request head (and body) of an upgrade request, as the docker CLI writes it."""
    query = urlencode(list(params.items()), doseq=True)
    target = f"/v{API_VERSION}{path}" + (f"?{query}" if query else "")
    payload = b"" if body is None else json.dumps(body).encode()
    kind = "application/json" if body is not None else "text/plain"
    head = (f"POST {target} HTTP/1.1\r\nHost: docker\r\nUser-Agent: {USER_AGENT}\r\n"
            f"Content-Length: {len(payload)}\r\nContent-Type: {kind}\r\n"
            "Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n")
    return head.encode("latin-1") + payload


def read_head(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Status, lower-cased headers and the bytes read past the head."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            raise Unavailable("the wharf daemon closed the connection before answering")
        data += chunk
        if len(data) > MAX_HEAD:
            raise Unavailable("the wharf daemon sent an oversized reply head")
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[1].isdigit():
        raise Unavailable(f"the wharf daemon sent a malformed status line: {lines[0]!r}")
    headers = {}
    for line in lines[1:]:
        key, _, value = line.partition(":")
        headers[key.strip().lower()] = value.strip()
    return int(parts[1]), headers, rest


def read_body(sock: socket.socket, headers: dict[str, str], rest: bytes) -> bytes:
    """The body of a refused upgrade (``rest``: what :func:`read_head` read past the head),
    read like every reply body: IncompleteReply when it stops short."""
    received = itertools.chain([rest], iter(functools.partial(sock.recv, 65536), b""))
    return Body(io.BufferedReader(ChunkReader(received)), headers).read()
