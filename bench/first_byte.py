"""How long a CLI spends before its first byte reaches the daemon: a timestamping unix proxy.

:class:`FirstByteProxy` listens on its own unix socket and forwards every connection to the
daemon's socket in both directions (half-closes passed on), so a command run against it
completes as it would against the daemon, and keeps the request lines it sees (which calls a
CLI makes). It notes ``time.perf_counter()`` when the first
byte of the first connection arrives; :meth:`FirstByteProxy.time_cli` takes the same clock
just before spawning the CLI, so the difference is the CLI's start-up (interpreter, imports,
argument parsing, config) up to its first request, spawn included. The proxy adds one
copy per chunk after that first byte, which is why the bench's end-to-end rows do not go
through it.

Not a script.
"""

from __future__ import annotations

import re
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from types import TracebackType

CHUNK = 65536
REQUEST_LINE = re.compile(r"^(GET|HEAD|POST|PUT|DELETE) \S+ HTTP/1\.[01]$")


class FirstByteProxy:
    """A unix-socket proxy to ``target`` that timestamps the first byte a client sends."""

    def __init__(self, listen: Path, target: Path) -> None:
        self.listen_path = listen
        self.target = target
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._first: float | None = None
        self._lock = threading.Lock()
        self.requests: list[str] = []  # request lines seen at the start of a client's chunk

    @property
    def host(self) -> str:
        return f"unix://{self.listen_path}"

    def __enter__(self) -> FirstByteProxy:
        self._server.bind(str(self.listen_path))
        self._server.listen(64)
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        with suppress(OSError):
            self._server.shutdown(socket.SHUT_RDWR)
        self._server.close()
        self.listen_path.unlink(missing_ok=True)

    def time_cli(self, argv: list[str]) -> tuple[float, float]:
        """Run ``argv`` (pointed at this proxy) to completion: seconds from just before the
        spawn to the first byte the proxy received, and to the exit. RuntimeError when it
        fails or sends nothing."""
        self._swap_first(None)
        start = time.perf_counter()
        proc = subprocess.run(argv, capture_output=True, check=False)
        end = time.perf_counter()
        if proc.returncode != 0:
            raise RuntimeError(f"{argv} exited {proc.returncode}: {proc.stderr[-400:]!r}")
        first = self._swap_first(None)
        if first is None:
            raise RuntimeError(f"{argv} sent nothing through the proxy")
        return first - start, end - start

    def _swap_first(self, value: float | None) -> float | None:
        """Set the first-byte time; the one it replaces."""
        with self._lock:
            old, self._first = self._first, value
        return old

    def _note(self, chunk: bytes) -> None:
        """Keep the request line a chunk starts with (a CLI writes each request at once)."""
        line = chunk.split(b"\r\n", 1)[0].decode("latin-1")
        if REQUEST_LINE.match(line):
            self.requests.append(line.rsplit(" ", 1)[0])

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            data = client.recv(CHUNK)  # before the upstream connect: nothing delays the stamp
            now = time.perf_counter()
            with self._lock:
                if self._first is None and data:
                    self._first = now
            upstream.connect(str(self.target))
            if data:
                self._note(data)
                upstream.sendall(data)
            else:
                upstream.shutdown(socket.SHUT_WR)
            back = threading.Thread(target=_pump, args=(upstream, client), daemon=True)
            back.start()
            if data:
                _pump(client, upstream, self._note)
            back.join()
        except OSError:
            pass
        finally:
            client.close()
            upstream.close()


def _pump(source: socket.socket, sink: socket.socket,
          note: Callable[[bytes], None] | None = None) -> None:
    """Copy until EOF, then half-close ``sink`` for writing; ``note`` sees each chunk."""
    with suppress(OSError):
        while data := source.recv(CHUNK):
            if note is not None:
                note(data)
            sink.sendall(data)
    with suppress(OSError):
        sink.shutdown(socket.SHUT_WR)
