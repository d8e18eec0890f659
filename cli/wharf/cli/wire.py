"""HTTP/1.1 to wharfd on a plain socket (unix or TCP), standard library only.

Why not httpx here: importing httpx costs ~110 ms, more than everything else the CLI does for
`wharf run --rm busybox true` (bench/run_latency.py, bench/pull.py §3); the Docker API needs
no more of HTTP than this: one request per connection (``Connection: close``), bodies by
Content-Length or chunked, streamed replies read as they arrive, a body that stops short of its
end an error. :func:`read_head`, :class:`Body` and :func:`wire_error` (one error kind for each
way a connection fails, a timeout included) serve the hijack of attach and exec too
(``hijack``). httpx stays the transport for injected test daemons (``HttpTransport``).
"""

from __future__ import annotations

import json as jsonlib
import re
import socket

from wharf.cli.tls import describe_tls_error, is_tls_error
from wharf.cli.transport import (
    API_VERSION,
    CONNECT_TIMEOUT,
    REQUEST_TIMEOUT,
    USER_AGENT,
    DaemonUnreachable,
    Reply,
    StreamReply,
    TLSRefused,
    closed_without_reply,
    incomplete_reply,
    unreachable_message,
)
from wharf.errors import DeadlineExceeded, Unavailable

TYPE_CHECKING = False  # `typing` costs start-up time (docs/cli.md "Start-up")
if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping
    from io import BufferedReader

    from wharf.cli.transport import Host, Params

MAX_HEAD = 64 * 1024
_CHUNK = 65536
_HEX = re.compile(rb"[0-9A-Fa-f]+")
_STATUS = re.compile(r"[0-9]{3}")


class Body:
    """A reply body read from ``reader``: by Content-Length, chunked, or until EOF.

    A body that stops short of its end (EOF before the last chunk or before Content-Length
    bytes, a short chunk, a malformed chunk size) raises :class:`IncompleteReply` instead of
    ending: a daemon that fails after a streamed reply started can only say so by hanging up.
    """

    def __init__(self, reader: BufferedReader, headers: Mapping[str, str], *,
                 empty: bool = False, sock: socket.socket | None = None) -> None:
        self._reader = reader
        self._sock = sock
        self._chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        length = headers.get("content-length")
        if empty:
            self._left = 0
        elif length is None or self._chunked:
            self._left = -1
        elif length.strip().isdigit():
            self._left = int(length)
        else:
            raise Unavailable(f"the wharf daemon sent a malformed Content-Length: {length!r}")

    def iter_bytes(self) -> Iterator[bytes]:
        if self._chunked:
            yield from self._chunks()
            return
        expected = self._left
        while self._left != 0:
            data = self._reader.read1(_CHUNK if self._left < 0 else min(_CHUNK, self._left))
            if not data:
                if self._left > 0:
                    got = expected - self._left
                    raise incomplete_reply(f"{got} of the {expected} bytes announced arrived")
                return
            if self._left > 0:
                self._left -= len(data)
            yield data

    def _chunks(self) -> Iterator[bytes]:
        while True:
            size = _chunk_size(self._reader.readline())
            if size == 0:
                while self._reader.readline().strip():  # trailers, up to the blank line
                    pass
                return
            data = self._reader.read(size)
            if len(data) < size or self._reader.readline() not in (b"\r\n", b"\n"):
                raise incomplete_reply(f"a chunk of {size} bytes was cut short")
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

    def read(self) -> bytes:
        """The whole body."""
        return b"".join(self.iter_bytes())

    def close(self) -> None:
        self._reader.close()
        if self._sock is not None:
            self._sock.close()


def _chunk_size(line: bytes) -> int:
    """The size on a chunk-size line (extensions after ``;`` ignored)."""
    if not line.endswith(b"\n"):
        raise incomplete_reply("the connection closed before the last chunk" if not line
                               else "the connection closed in a chunk size line")
    digits = line.split(b";")[0].strip()
    if not _HEX.fullmatch(digits):
        raise incomplete_reply(f"a malformed chunk size line {line[:40]!r}")
    return int(digits, 16)


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
            raise wire_error(self.host, exc) from exc
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
            target += "?" + encode_query(params)
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
        reader = sock.makefile("rb")
        try:
            sock.settimeout(timeout)
            lines = [f"{method} {target} HTTP/1.1", *(f"{k}: {v}" for k, v in head.items())]
            request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
            if isinstance(content, bytes):  # one write: a head and body apart wait on Nagle
                sock.sendall(request + content)
            else:
                sock.sendall(request)
            if chunked and content is not None and not isinstance(content, bytes):
                for piece in content:
                    if piece:
                        sock.sendall(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                sock.sendall(b"0\r\n\r\n")
            status, reply_headers = read_head(reader, self.host)
            empty = method == "HEAD" or status in (204, 304) or 100 <= status < 200
            body = Body(reader, reply_headers, empty=empty, sock=sock)
        except OSError as exc:  # a timeout included
            reader.close()
            sock.close()
            raise wire_error(self.host, exc) from exc
        except Unavailable:  # a malformed reply head
            reader.close()
            sock.close()
            raise
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
        # small writes (a keystroke, a request's last bytes) go at once, not after the peer's
        # delayed ACK (~40 ms)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
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
    """The error kind for a connection that broke (or was refused by TLS) mid-request, or that
    stayed silent past its read timeout (DeadlineExceeded, as httpx's timeouts in
    :class:`~wharf.cli.transport.HttpTransport`)."""
    if is_tls_error(exc):
        return TLSRefused(describe_tls_error(host.url, exc))
    if isinstance(exc, TimeoutError):
        return DeadlineExceeded(f"the wharf daemon at {host.url} timed out")
    if host.tls is not None and isinstance(exc, ConnectionResetError | BrokenPipeError):
        return TLSRefused(describe_tls_error(host.url, exc))
    return Unavailable(f"talking to the wharf daemon at {host.url}: {exc}")


def read_head(reader: BufferedReader, host: Host) -> tuple[int, dict[str, str]]:
    """The status and lower-cased headers of an HTTP/1.1 reply head read from ``reader``; what
    follows the head stays in ``reader`` (the body, or a hijacked stream's first bytes).

    Raises:
        DaemonUnreachable: the daemon hung up before a whole status line
            (``closed_without_reply``: TLSRefused when that means a refused certificate).
        IncompleteReply: the connection closed in the middle of the head.
        Unavailable: a malformed status line, or a head over MAX_HEAD bytes.
    """
    left = MAX_HEAD

    def line() -> bytes:
        nonlocal left
        data = reader.readline(left + 1)
        left -= len(data)
        if left < 0:
            raise Unavailable(f"the wharf daemon at {host.url} sent a reply head over "
                              f"{MAX_HEAD} bytes")
        if not data.endswith(b"\n"):
            if first:  # not even a status line: not an HTTP answer
                raise closed_without_reply(host)
            raise incomplete_reply("the connection closed in the reply head")
        return data

    first = True
    status_line = line()
    first = False
    parts = status_line.decode("latin-1").rstrip("\r\n").split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not _STATUS.fullmatch(parts[1]):
        raise Unavailable(f"the wharf daemon at {host.url} sent a malformed reply: "
                          f"{status_line[:80]!r}")
    headers: dict[str, str] = {}
    while (text := line().decode("latin-1").rstrip("\r\n")):
        name, _, value = text.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(parts[1]), headers


# The bytes ``quote_plus`` leaves as they are; a space becomes "+", any other byte %XX.
_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-~")
_QUOTED = tuple(chr(byte) if byte in _UNRESERVED else "+" if byte == 0x20 else f"%{byte:02X}"
                for byte in range(256))


def encode_query(params: Params) -> str:
    """``urlencode(params, doseq=True)``: a list value gives its key once per item.

    Not ``urllib.parse`` itself: it imports ``ipaddress``, which every ``wharf`` would pay for.
    """
    return "&".join(f"{_quote(key)}={_quote(item)}" for key, value in params.items()
                    for item in (value if isinstance(value, list | tuple) else [value]))


def _quote(value: object) -> str:
    return "".join(_QUOTED[byte] for byte in str(value).encode())
