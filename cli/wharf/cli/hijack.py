"""The client side of Docker's connection hijack (attach, exec start), over the stdlib socket.

httpx cannot hand over its connection, so this module speaks the one request itself: it sends
``Connection: Upgrade`` / ``Upgrade: tcp``, reads the reply head (with :func:`wire.read_head
<wharf.cli.wire.read_head>`, like every reply of the socket transport), and on ``101`` returns the
socket as a :class:`RawStream` (a raw bidirectional byte pipe, see the Engine API reference §2.1).
Any other status comes back as a :class:`~wharf.cli.transport.Reply` with its body, for the API
client to turn into an error kind. A broken or silent connection is reported as by the socket
transport (:func:`~wharf.cli.wire.wire_error`).
"""

from __future__ import annotations

import contextlib
import json
import socket

from wharf.cli.transport import API_VERSION, REQUEST_TIMEOUT, USER_AGENT, Reply
from wharf.cli.wire import Body, connect, encode_query, read_head, wire_error

TYPE_CHECKING = False  # `typing` costs start-up time (docs/cli.md "Start-up")
if TYPE_CHECKING:
    from io import BufferedReader
    from typing import Protocol

    from wharf.cli.transport import Host, Params
else:
    Protocol = object  # the Protocol below is a plain class at run time (annotations only)


class RawStream:
    """A hijacked connection. ``reader``, when given, is what the reply head was read through:
    the bytes it read past the head come first, so every read goes through it."""

    def __init__(self, sock: socket.socket, reader: BufferedReader | None = None) -> None:
        self._sock = sock
        self._reader = reader

    def recv(self, size: int = 65536) -> bytes:
        """Up to ``size`` bytes; ``b""`` at end of stream (or once the socket was shut down)."""
        try:
            if self._reader is not None:
                return self._reader.read1(size)
            return self._sock.recv(size)
        except (OSError, ValueError):  # ValueError: the reader was closed
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
        _close(self._sock, self._reader)


class HijackResult:
    """The reply head (and body when refused); ``stream`` is set only on ``101``."""

    __slots__ = ("reply", "stream")

    def __init__(self, reply: Reply, stream: RawStream | None) -> None:
        self.reply = reply
        self.stream = stream

    def __repr__(self) -> str:
        return f"HijackResult(reply={self.reply!r}, stream={self.stream!r})"


class Hijacker(Protocol):
    """Sends one upgrade request; tests replace it with a socketpair-backed fake."""

    def open(self, path: str, params: Params, body: object = None) -> HijackResult: ...


class SocketHijacker:
    """Hijacks over a new connection to ``host`` (unix socket or TCP)."""

    def __init__(self, host: Host, prefix: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        """``prefix`` replaces the API version before the path (the gateway's
        ``/v1/nodes/NODE``); ``headers`` go with the request (the gateway's token)."""
        self.host = host
        self.prefix = f"/v{API_VERSION}" if prefix is None else prefix
        self.headers = headers or {}

    def open(self, path: str, params: Params, body: object = None) -> HijackResult:
        """POST ``path`` with the upgrade headers; ``body`` is JSON-encoded when given."""
        sock = self._connect()
        reader = sock.makefile("rb")
        try:
            sock.settimeout(REQUEST_TIMEOUT)
            sock.sendall(request_bytes(self.prefix + path, params, body, self.headers))
            status, headers = read_head(reader, self.host)
            if status == 101:
                sock.settimeout(None)
                return HijackResult(Reply(status, headers, b""), RawStream(sock, reader))
            reply = Reply(status, headers, Body(reader, headers).read())
        except OSError as exc:  # a timeout included: the socket transport's error kinds
            _close(sock, reader)
            raise wire_error(self.host, exc) from exc
        except BaseException:
            _close(sock, reader)
            raise
        _close(sock, reader)
        return HijackResult(reply, None)

    def _connect(self) -> socket.socket:
        return connect(self.host)


def request_bytes(path: str, params: Params, body: object,
                  headers: dict[str, str] | None = None) -> bytes:
    """The request head (and body) of an upgrade request, as the docker CLI writes it;
    ``path`` is the whole path (with the API version or the gateway's prefix)."""
    query = encode_query(params)
    target = path + (f"?{query}" if query else "")
    payload = b"" if body is None else json.dumps(body).encode()
    kind = "application/json" if body is not None else "text/plain"
    extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    head = (f"POST {target} HTTP/1.1\r\nHost: docker\r\nUser-Agent: {USER_AGENT}\r\n"
            f"Content-Length: {len(payload)}\r\nContent-Type: {kind}\r\n{extra}"
            "Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n")
    return head.encode("latin-1") + payload


def _close(sock: socket.socket, reader: BufferedReader | None) -> None:
    """Close both: the socket is only released once its reader is closed too."""
    if reader is not None:
        with contextlib.suppress(OSError):
            reader.close()
    sock.close()
