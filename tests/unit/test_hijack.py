"""The Upgrade: tcp hijack on a real uvicorn server over a unix socket."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from pathlib import Path
from threading import Thread

import pytest
import uvicorn
from fastapi import FastAPI

from wharf.errors import NotFound
from wharf.hijack import HijackRequest, HijackStream, bind_protocol


class EchoDispatcher:
    """Claims POST /vN/echo/<word>: refuses word 'missing', else echoes stdin upper-cased."""

    def matches(self, request: HijackRequest) -> bool:
        return request.method == "POST" and request.path.startswith("/echo/")

    async def __call__(self, request: HijackRequest, stream: HijackStream) -> None:
        word = request.path.removeprefix("/echo/")
        if word == "missing":
            raise NotFound("No such container: missing")
        await stream.upgrade()
        await stream.write(f"body={request.body.decode()};".encode())
        while chunk := await stream.read():
            await stream.write(chunk.upper())
        await stream.write(b";after-eof")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Path]:
    app = FastAPI()

    @app.get("/plain")
    async def plain() -> dict[str, str]:
        return {"ok": "yes"}

    sock_path = tmp_path / "api.sock"
    config = uvicorn.Config(app, uds=str(sock_path), log_level="warning",
                            http=bind_protocol(EchoDispatcher(), [("Api-Version", "1.41")]))
    srv = uvicorn.Server(config)
    thread = Thread(target=lambda: asyncio.run(srv.serve()), daemon=True)
    thread.start()
    for _ in range(200):
        if srv.started:
            break
        asyncio.run(asyncio.sleep(0.01))
    yield sock_path
    srv.should_exit = True
    thread.join(5)


def _exchange(sock_path: Path, request: bytes, stdin: bytes = b"") -> bytes:
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.settimeout(5)
    client.connect(str(sock_path))
    client.sendall(request + stdin)
    client.shutdown(socket.SHUT_WR)  # what docker does when stdin ends
    data = b""
    while chunk := client.recv(65536):
        data += chunk
    client.close()
    return data


def test_upgrade_streams_both_ways_and_survives_half_close(server: Path) -> None:
    body = b'{"Tty":false}'
    request = (b"POST /v1.41/echo/hello HTTP/1.1\r\nHost: \r\nConnection: Upgrade\r\n"
               b"Upgrade: tcp\r\nContent-Type: application/json\r\n"
               b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    reply = _exchange(server, request, stdin=b"stdin-bytes")
    head, _, rest = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101 UPGRADED")
    assert b"Upgrade: tcp" in head and b"Api-Version: 1.41" in head
    assert rest == b'body={"Tty":false};STDIN-BYTES;after-eof'


def test_refusal_before_upgrade_is_an_http_error(server: Path) -> None:
    request = (b"POST /echo/missing HTTP/1.1\r\nHost: docker\r\nConnection: Upgrade\r\n"
               b"Upgrade: tcp\r\nContent-Length: 0\r\n\r\n")
    reply = _exchange(server, request)
    assert reply.startswith(b"HTTP/1.1 404 Not Found")
    assert reply.endswith(b'{"message": "No such container: missing"}')


def test_ordinary_requests_still_reach_the_app(server: Path) -> None:
    reply = _exchange(server, b"GET /plain HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 200")
    assert reply.endswith(b'{"ok":"yes"}')
