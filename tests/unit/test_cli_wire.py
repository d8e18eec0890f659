"""The CLI's stdlib HTTP/1.1 transport against a real unix socket server."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from wharf.cli.transport import DaemonUnreachable, parse_host
from wharf.cli.wire import SocketTransport

REPLIES = {
    b"/v1.41/plain": b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 11\r\n\r\n{\"ok\":true}",
    b"/v1.41/chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                       b"6\r\nline1\n\r\n7\r\nline2\nl\r\n4\r\nast\n\r\n0\r\n\r\n",
    b"/v1.41/gone": b"HTTP/1.1 404 Not Found\r\nContent-Length: 17\r\n\r\n{\"message\":\"no\"}\n",
    b"/v1.41/none": b"HTTP/1.1 204 No Content\r\n\r\n",
}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[Path, list[bytes]]]:
    path = tmp_path / "d.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(8)
    seen: list[bytes] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    data += conn.recv(4096)
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

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield path, seen
    listener.close()


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
