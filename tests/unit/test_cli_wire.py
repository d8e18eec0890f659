"""The CLI's stdlib HTTP/1.1 transport against a real unix socket server."""

from __future__ import annotations

import contextlib
import io
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from wharf.cli import hijack, wire
from wharf.cli.hijack import SocketHijacker
from wharf.cli.transport import DaemonUnreachable, IncompleteReply, parse_host
from wharf.cli.wire import MAX_HEAD, SocketTransport, read_head
from wharf.errors import DeadlineExceeded, Unavailable

REPLIES = {
    b"/v1.41/plain": b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 11\r\n\r\n{\"ok\":true}",
    b"/v1.41/chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                       b"6\r\nline1\n\r\n7\r\nline2\nl\r\n4\r\nast\n\r\n0\r\n\r\n",
    b"/v1.41/gone": b"HTTP/1.1 404 Not Found\r\nContent-Length: 17\r\n\r\n{\"message\":\"no\"}\n",
    b"/v1.41/none": b"HTTP/1.1 204 No Content\r\n\r\n",
}


@contextlib.contextmanager
def _daemon(path: Path, answer: Callable[[socket.socket, bytes], None]) -> Iterator[str]:
    """A one-thread daemon on ``path``: reads each request head, then ``answer(conn, data)``
    (``data``: all read so far, the head and maybe some body) replies."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(8)

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                data = b""
                while b"\r\n\r\n" not in data and (chunk := conn.recv(4096)):
                    data += chunk
                answer(conn, data)

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield f"unix://{path}"
    finally:
        listener.close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[Path, list[bytes]]]:
    path = tmp_path / "d.sock"
    seen: list[bytes] = []

    def answer(conn: socket.socket, data: bytes) -> None:
        head, _, body = data.partition(b"\r\n\r\n")
        if b"Transfer-Encoding: chunked" in head:
            while not body.endswith(b"0\r\n\r\n"):
                body += conn.recv(4096)
        else:  # read the whole body: closing on unread bytes breaks the client's send
            length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
            while len(body) < length:
                body += conn.recv(4096)
        seen.append(head + b"\r\n\r\n" + body)
        target = head.split(b" ")[1].split(b"?")[0]
        conn.sendall(REPLIES.get(target, REPLIES[b"/v1.41/gone"]))

    with _daemon(path, answer):
        yield path, seen


def test_content_length_chunked_and_empty_replies(server: tuple[Path, list[bytes]]) -> None:
    path, seen = server
    wire = SocketTransport(parse_host(f"unix://{path}"))
    reply = wire.request("GET", "/plain", params={"all": "1", "f": ["a", "b"]})
    assert (reply.status, reply.body, reply.content_type) == (200, b'{"ok":true}',
                                                              "application/json")
    assert seen[-1].startswith(b"GET /v1.41/plain?all=1&f=a&f=b HTTP/1.1\r\n")
    stream = wire.stream("POST", "/chunked", json={"x": 1})
    assert list(stream.iter_lines()) == ["line1", "line2", "last"]
    stream.close()
    assert b"Content-Type: application/json" in seen[-1] and seen[-1].endswith(b'{"x": 1}')
    assert wire.request("DELETE", "/gone").status == 404
    assert wire.request("POST", "/none").body == b""


def test_streamed_upload_is_chunked(server: tuple[Path, list[bytes]]) -> None:
    path, seen = server
    wire = SocketTransport(parse_host(f"unix://{path}"))
    wire.request("POST", "/plain", content=iter([b"abc", b"", b"defg"]))
    assert seen[-1].endswith(b"3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n")


def test_a_missing_daemon_is_reported_as_unreachable(tmp_path: Path) -> None:
    wire = SocketTransport(parse_host(f"unix://{tmp_path}/nobody.sock"))
    with pytest.raises(DaemonUnreachable, match="Is wharfd running"):
        wire.request("GET", "/_ping")


# -- the one reply-head parser (the socket transport's and the hijack's) --------------------------
HOST = parse_host("unix:///run/wharf/test.sock")


def _head(data: bytes) -> tuple[int, dict[str, str], bytes]:
    reader = io.BufferedReader(io.BytesIO(data))
    status, headers = read_head(reader, HOST)
    return status, headers, reader.read()


def test_the_head_is_parsed_and_what_follows_stays_in_the_reader() -> None:
    assert _head(b"HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream"
                 b"\r\nUpgrade: tcp\r\nX-Odd:  a:b \r\n\r\nfirst bytes") == (
        101, {"content-type": "application/vnd.docker.raw-stream", "upgrade": "tcp",
              "x-odd": "a:b"}, b"first bytes")
    assert _head(b"HTTP/1.0 404\nContent-Length: 2\n\n{}") == (404, {"content-length": "2"},
                                                                  b"{}")


@pytest.mark.parametrize(("data", "kind", "message"), [
    (b"", DaemonUnreachable, "closed the connection without answering"),
    (b"HTTP/1.1 200 O", DaemonUnreachable, "closed the connection without answering"),
    (b"HTTP/1.1 200 OK\r\nContent-Le", IncompleteReply, "closed in the reply head"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n", IncompleteReply, "in the reply head"),
    (b"SSH-2.0-OpenSSH_9.6\r\n\r\n", Unavailable, "malformed reply"),
    (b"HTTP/1.1 2\xb200 OK\r\n\r\n", Unavailable, "malformed reply"),  # not int()-able
    (b"HTTP/1.1 20 OK\r\n\r\n", Unavailable, "malformed reply"),
    (b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * (MAX_HEAD // 6) + b"\r\n", Unavailable,
     "reply head over 65536 bytes"),
    (b"HTTP/1.1 200 OK\r\nX: " + b"y" * MAX_HEAD + b"\r\n\r\n", Unavailable, "over 65536"),
])
def test_a_broken_head_is_an_error_kind(data: bytes, kind: type[Exception], message: str) -> None:
    with pytest.raises(kind, match=message):
        _head(data)


@pytest.fixture
def silent(tmp_path: Path) -> Iterator[str]:
    """Accepts, reads the request and never answers (until the client gives up)."""
    with _daemon(tmp_path / "d.sock", lambda conn, _: conn.recv(1)) as host:
        yield host


def test_a_silent_daemon_is_the_same_error_for_requests_and_hijacks(
        silent: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wire, "REQUEST_TIMEOUT", 0.2)
    monkeypatch.setattr(hijack, "REQUEST_TIMEOUT", 0.2)
    host = parse_host(silent)
    with pytest.raises(DeadlineExceeded) as request_error:
        SocketTransport(host).request("GET", "/_ping")
    with pytest.raises(DeadlineExceeded) as hijack_error:
        SocketHijacker(host).open("/containers/c1/attach", {"stream": "1"})
    assert str(request_error.value) == str(hijack_error.value) == (
        f"the wharf daemon at {silent} timed out")


def _upgrade(conn: socket.socket, _: bytes) -> None:
    conn.sendall(b"HTTP/1.1 101 UPGRADED\r\nUpgrade: tcp\r\n\r\nearly ")
    while chunk := conn.recv(4096):
        conn.sendall(chunk.upper())


def test_a_hijack_returns_the_bytes_read_past_the_head_first(tmp_path: Path) -> None:
    with _daemon(tmp_path / "d.sock", _upgrade) as host:
        result = SocketHijacker(parse_host(host)).open("/exec/e1/start", {}, {"Tty": False})
        assert result.reply.status == 101 and result.stream is not None
        stream = result.stream
        got = b""
        while len(got) < len(b"early "):
            got += stream.recv(4)
        stream.sendall(b"stdin")
        stream.close_write()
        while chunk := stream.recv():
            got += chunk
        stream.close()
        assert got == b"early STDIN"
        assert stream.recv() == b""


def test_a_refused_hijack_comes_back_with_its_body(tmp_path: Path) -> None:
    reply = b"HTTP/1.1 404 Not Found\r\nContent-Length: 16\r\n\r\n{\"message\":\"no\"}"
    with _daemon(tmp_path / "d.sock", lambda conn, _: conn.sendall(reply)) as host:
        result = SocketHijacker(parse_host(host)).open("/containers/nope/attach", {})
    assert result.stream is None
    assert (result.reply.status, result.reply.body) == (404, b'{"message":"no"}')
