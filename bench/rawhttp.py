"""A minimal HTTP/1.1 keep-alive client, for load generation in the benches only.

httpx spends about 2-3 ms of CPU per request on this 2-core machine: more than the gateway it
measures, on the same cores, so a throughput figure taken with it says more about the client
than about the server. This client does what wrk-style tools do: requests are formatted bytes
on persistent connections (TCP or a unix socket), replies are parsed just enough (status line,
headers, a Content-Length or chunked body). Nothing else uses it; the product's clients are
httpx.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any


class RawHTTPError(Exception):
    """The connection failed or the server's reply was not HTTP/1.1 as expected."""


@dataclass(frozen=True)
class RawResponse:
    status_code: int
    headers: dict[str, str]  # names in lower case
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode(errors="replace")

    def json(self) -> Any:
        return json.loads(self.content)


class RawConnection:
    """One keep-alive connection, used by one request at a time (reopened when closed)."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, uds: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        self.host, self.port, self.uds = host, port, uds
        self._fixed = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, body: bytes = b"",
                      headers: dict[str, str] | None = None) -> RawResponse:
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        head = (f"{method} {path} HTTP/1.1\r\nHost: bench\r\n{self._fixed}{extra}"
                f"Content-Length: {len(body)}\r\n\r\n").encode()
        for attempt in (1, 2):
            reused = self._writer is not None
            if self._writer is None:
                await self._open()
            assert self._reader is not None and self._writer is not None
            try:
                self._writer.write(head + body)
                return await self._read(self._reader, method)
            except (ConnectionError, asyncio.IncompleteReadError) as exc:
                self.close()
                # Only a kept-alive connection the server had closed before this request is
                # worth one more try; anything else is the answer.
                if not reused or attempt == 2:
                    raise RawHTTPError(f"{method} {path}: {exc!r}") from exc
        raise AssertionError("unreachable")

    async def _open(self) -> None:
        if self.uds is not None:
            self._reader, self._writer = await asyncio.open_unix_connection(self.uds)
        else:
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)

    async def _read(self, reader: asyncio.StreamReader, method: str) -> RawResponse:
        head = await reader.readuntil(b"\r\n\r\n")
        status_line, *lines = head[:-4].decode("latin-1").split("\r\n")
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
            raise RawHTTPError(f"not an HTTP/1.x status line: {status_line!r}")
        status = int(parts[1])
        headers = {}
        for line in lines:
            name, sep, value = line.partition(":")
            if not sep:
                raise RawHTTPError(f"malformed header line: {line!r}")
            headers[name.strip().lower()] = value.strip()
        if status in (204, 304) or 100 <= status < 200 or method == "HEAD":
            body = b""
        elif "content-length" in headers:
            body = await reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            body = await _chunked(reader)
        else:  # delimited by the end of the connection
            body = await reader.read()
            headers["connection"] = "close"
        if headers.get("connection", "").lower() == "close":
            self.close()
        return RawResponse(status, headers, body)

    def close(self) -> None:
        writer, self._reader, self._writer = self._writer, None, None
        if writer is not None:
            writer.close()


async def _chunked(reader: asyncio.StreamReader) -> bytes:
    chunks = []
    while True:
        size_line = (await reader.readuntil(b"\r\n")).split(b";", 1)[0].strip()
        try:
            size = int(size_line, 16)
        except ValueError as exc:
            raise RawHTTPError(f"malformed chunk size {size_line!r}") from exc
        if size == 0:
            while (await reader.readuntil(b"\r\n")) != b"\r\n":
                pass  # trailers
            return b"".join(chunks)
        chunk = await reader.readexactly(size + 2)
        if chunk[-2:] != b"\r\n":
            raise RawHTTPError("a chunk does not end with CRLF")
        chunks.append(chunk[:-2])


class RawPool:
    """``size`` connections shared by concurrent callers (each request takes one)."""

    def __init__(self, size: int, **connection: Any) -> None:
        self._idle: asyncio.Queue[RawConnection] = asyncio.Queue()
        self._all = [RawConnection(**connection) for _ in range(size)]
        for conn in self._all:
            self._idle.put_nowait(conn)

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[RawConnection]:
        conn = await self._idle.get()
        try:
            yield conn
        finally:
            self._idle.put_nowait(conn)

    async def request(self, method: str, path: str, body: bytes = b"",
                      headers: dict[str, str] | None = None) -> RawResponse:
        async with self.connection() as conn:
            return await conn.request(method, path, body, headers)

    async def aclose(self) -> None:
        for conn in self._all:
            conn.close()
