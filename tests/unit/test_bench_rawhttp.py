"""bench/rawhttp.py against a real (tiny) HTTP server: what the load generator must parse."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bench.rawhttp import RawConnection, RawHTTPError, RawPool

REPLIES = {
    b"/length": b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Id: 7\r\n\r\nhello",
    b"/chunked": (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                  b"3\r\nabc\r\n4;ext=1\r\ndefg\r\n0\r\nTrailer: x\r\n\r\n"),
    b"/empty": b"HTTP/1.1 204 No Content\r\n\r\n",
    b"/close": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
    b"/garbage": b"SMTP ready\r\n\r\n",
}


async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                seen: list[tuple[bytes, bytes]]) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            path = head.split(b" ")[1]
            length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length")), 0)
            seen.append((path, await reader.readexactly(length)))
            writer.write(REPLIES[path])
            await writer.drain()
            if path == b"/close":
                break
    except asyncio.IncompleteReadError:
        pass
    writer.close()


def test_bodies_by_length_chunks_none_and_reconnect_after_close(tmp_path: Path) -> None:
    async def main() -> None:
        seen: list[tuple[bytes, bytes]] = []
        server = await asyncio.start_unix_server(lambda r, w: serve(r, w, seen),
                                                 path=str(tmp_path / "s"))
        conn = RawConnection(uds=str(tmp_path / "s"), headers={"Authorization": "Bearer t"})
        try:
            first = await conn.request("POST", "/length", b'{"a":1}')
            assert (first.status_code, first.content, first.headers["x-id"]) == \
                (200, b"hello", "7")
            assert (await conn.request("GET", "/chunked")).content == b"abcdefg"
            assert (await conn.request("GET", "/empty")).content == b""
            assert (await conn.request("GET", "/close")).text == "ok"
            assert (await conn.request("GET", "/length")).content == b"hello"  # a new one
            with pytest.raises(RawHTTPError, match="status line"):
                await conn.request("GET", "/garbage")
        finally:
            conn.close()
            server.close()
            await server.wait_closed()
        assert seen[0] == (b"/length", b'{"a":1}')
        assert len(seen) == 6

    asyncio.run(main())


def test_a_pool_serves_concurrent_requests_over_tcp() -> None:
    async def main() -> None:
        seen: list[tuple[bytes, bytes]] = []
        server = await asyncio.start_server(lambda r, w: serve(r, w, seen), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        pool = RawPool(4, port=port)
        try:
            answers = await asyncio.gather(*(pool.request("GET", "/length")
                                             for _ in range(40)))
            assert {a.content for a in answers} == {b"hello"}
        finally:
            await pool.aclose()
            server.close()
            await server.wait_closed()
        assert len(seen) == 40

    asyncio.run(main())


def test_a_server_that_goes_away_is_an_error_not_a_hang(tmp_path: Path) -> None:
    async def main() -> None:
        async def hang_up(_r: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.close()

        server = await asyncio.start_unix_server(hang_up, path=str(tmp_path / "h"))
        conn = RawConnection(uds=str(tmp_path / "h"))
        try:
            with pytest.raises(RawHTTPError):
                await asyncio.wait_for(conn.request("GET", "/x"), 5)
        finally:
            conn.close()
            server.close()
            await server.wait_closed()

    asyncio.run(main())
