"""HTTP/1.1 to wharfd on a plain socket (unix or TCP), standard library only.

Why not httpx here: importing httpx costs ~110 ms, more than everything else the CLI does for
`wharf run --rm busybox true` (bench/run_latency.py, bench/pull.py §3); the Docker API needs
no more of HTTP than this: one request per connection (``Connection: close``), bodies by
Content-Length or chunked, streamed replies read as they arrive. httpx stays the transport for
injected test daemons (``HttpTransport``).
"""

from __future__ import annotations

import json as jsonlib
import socket
from collections.abc import Iterable, Iterator, Mapping
from io import BufferedReader
from urllib.parse import urlencode

from wharf.cli.tls import describe_tls_error, is_tls_error
from wharf.cli.transport import (
    API_VERSION,
    CONNECT_TIMEOUT,
    REQUEST_TIMEOUT,
    USER_AGENT,
    DaemonUnreachable,
    Host,
    Params,
    Reply,
    StreamReply,
    TLSRefused,
    closed_without_reply,
    unreachable_message,
)
from wharf.errors import DeadlineExceeded, Unavailable

_CHUNK = 65536


class _Body:
    """A reply body read from the socket: by Content-Length, chunked, or until EOF."""

    def __init__(self, sock: socket.socket, reader: BufferedReader, headers: dict[str, str],
                 empty: bool) -> None:
        self._sock = sock
        self._reader = reader
        self._chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        length = headers.get("content-length")
        self._left = 0 if empty else (int(length) if length is not None else -1)

    def iter_bytes(self) -> Iterator[bytes]:
        if self._chunked:
            yield from self._chunks()
            return
        while self._left != 0:
            data = self._reader.read1(_CHUNK if self._left < 0 else min(_CHUNK, self._left))
            if not data:
                return
            if self._left > 0:
                self._left -= len(data)
            yield data

    def _chunks(self) -> Iterator[bytes]:
        while True:
            size_line = self._reader.readline()
            if not size_line:
                return
            size = int(size_line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                self._reader.readline()
                return
            data = self._reader.read(size)
            self._reader.readline()  # the CRLF after each chunk
            yield data

    def iter_lines(self) -> Iterator[str]:
        pending = b""
        for chunk in self.iter_bytes():
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                yield line.rstrip(b"\r").decode()
        if pending:
            yield pending.decode()

    def close(self) -> None:
        self._reader.close()
        self._sock.close()


class SocketTransport:
    """The Docker API over a unix socket or TCP, one connection per request."""

    def __init__(self, host: Host, *, debug: bool = False, prefix: str | None = None) -> None:
        self.host = host
        self.debug = debug
        # every path is the Docker API's under /v1.41 (a gateway's own paths carry theirs)
        self.prefix = f"/v{API_VERSION}" if prefix is None else prefix

    def request(self, method: str, path: str, *, params: Params | None = None,
                json: object = None, content: bytes | Iterable[bytes] | None = None,
                headers: Mapping[str, str] | None = None) -> Reply:
        reply = self._send(method, path, params, json, content, headers, REQUEST_TIMEOUT)
        try:
            body = reply.read()
        except TimeoutError as exc:
            raise DeadlineExceeded(f"the wharf daemon at {self.host.url} timed out") from exc
        finally:
            reply.close()
        return Reply(reply.status, reply.headers, body)

    def stream(self, method: str, path: str, *, params: Params | None = None,
               json: object = None, content: bytes | Iterable[bytes] | None = None,
               headers: Mapping[str, str] | None = None) -> StreamReply:
        return self._send(method, path, params, json, content, headers, None)

    def close(self) -> None:
        return None

    def _send(self, method: str, path: str, params: Params | None, json: object,
              content: bytes | Iterable[bytes] | None, headers: Mapping[str, str] | None,
              timeout: float | None) -> StreamReply:
        target = f"{self.prefix}{path}"
        if params:
            target += "?" + urlencode(dict(params), doseq=True)
        head = {"Host": "d", "User-Agent": USER_AGENT, "Connection": "close"}
        head.update(headers or {})
        if json is not None:
            content = jsonlib.dumps(json).encode()
            head["Content-Type"] = "application/json"
        chunked = content is not None and not isinstance(content, bytes)
        if isinstance(content, bytes) or content is None:
            head["Content-Length"] = str(len(content or b""))
        else:
            head["Transfer-Encoding"] = "chunked"
        sock = connect(self.host)
        try:
            sock.settimeout(timeout)
            lines = [f"{method} {target} HTTP/1.1", *(f"{k}: {v}" for k, v in head.items())]
            sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
            if chunked:
                assert content is not None and not isinstance(content, bytes)
                for piece in content:
                    if piece:
                        sock.sendall(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                sock.sendall(b"0\r\n\r\n")
            elif content:
                sock.sendall(content)  # type: ignore[arg-type]
            reader = sock.makefile("rb")
            status, reply_headers = _read_head(reader, self.host)
        except TimeoutError as exc:
            sock.close()
            raise DeadlineExceeded(f"the wharf daemon at {self.host.url} timed out") from exc
        except OSError as exc:
            sock.close()
            raise wire_error(self.host, exc) from exc
        empty = method == "HEAD" or status in (204, 304) or 100 <= status < 200
        body = _Body(sock, reader, reply_headers, empty)
        return StreamReply(status, reply_headers, body, body)


def connect(host: Host) -> socket.socket:
    """A connected socket to the daemon: unix, TCP, or TCP with TLS (handshake done).

    Nothing listening is :class:`DaemonUnreachable`; a failed TLS handshake is
    :class:`TLSRefused` with a message that says which side refused what.
    """
    try:
        if host.scheme == "unix":
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.settimeout(CONNECT_TIMEOUT)
                sock.connect(host.socket_path)
            except BaseException:
                sock.close()
                raise
            return sock
        raw = socket.create_connection(host.address, CONNECT_TIMEOUT)
    except (FileNotFoundError, ConnectionRefusedError, socket.gaierror, TimeoutError) as exc:
        raise DaemonUnreachable(unreachable_message(host)) from exc
    except OSError as exc:
        raise Unavailable(f"talking to the wharf daemon at {host.url}: {exc}") from exc
    if host.tls is None:
        return raw
    try:
        return host.tls.context().wrap_socket(raw, server_hostname=host.address[0])
    except BaseException as exc:
        raw.close()
        if isinstance(exc, OSError):
            raise wire_error(host, exc) from exc
        raise


def wire_error(host: Host, exc: OSError) -> Unavailable | DeadlineExceeded:
    """The error kind for a connection that broke (or was refused by TLS) mid-request."""
    if is_tls_error(exc):
        return TLSRefused(describe_tls_error(host.url, exc))
    if isinstance(exc, TimeoutError):
        return DeadlineExceeded(f"the wharf daemon at {host.url} timed out")
    if host.tls is not None and isinstance(exc, ConnectionResetError | BrokenPipeError):
        return TLSRefused(describe_tls_error(host.url, exc))
    return Unavailable(f"talking to the wharf daemon at {host.url}: {exc}")


def _read_head(reader: BufferedReader, host: Host) -> tuple[int, dict[str, str]]:
    status_line = reader.readline().decode("latin-1")
    if not status_line:
        raise closed_without_reply(host)
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[1].isdigit():
        raise Unavailable(f"the wharf daemon sent a malformed reply: {status_line!r}")
    headers: dict[str, str] = {}
    while True:
        line = reader.readline().decode("latin-1").rstrip("\r\n")
        if not line:
            break
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(parts[1]), headers
