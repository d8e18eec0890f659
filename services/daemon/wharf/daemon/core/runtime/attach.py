"""Async client of conmon's attach socket (``SOCK_SEQPACKET``, ``Runtime.attach_socket``).

Verified against conmon 2.1.6 + crun 1.8.1 here (tests/integration/test_runtime_io.py):

* Each packet from conmon is one stream byte then up to 8 KiB of output: ``2`` = stdout,
  ``3`` = stderr (``1`` would be stdin and is never sent). A TTY container's output (the pty,
  stderr included) arrives with byte ``2``.
* Only live output is sent; connect between ``create`` and ``start`` to miss nothing.
* Packets we send are written raw to the container's stdin (conmon ``-i``; for a TTY, to the
  pty master), also before ``start``. When ANY client's input ends — our ``shutdown(SHUT_WR)``
  or a plain close, even of a client that never sent anything — conmon closes the container's
  stdin (``cat`` ends), unless it runs with ``--leave-stdin-open``
  (``CreateRequest.leave_stdin_open``, Docker's ``StdinOnce=false``): then stdin is never
  closed by clients.
* When the container's process exits, conmon sends the remaining output and closes every
  attach connection: ``recv`` then returns ``None``. An engine need not watch the exit file to
  end an attach stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from pathlib import Path

from wharf.errors import NotFound

_STREAMS = {1: "stdin", 2: "stdout", 3: "stderr"}
_PACKET = 64 * 1024  # conmon sends at most 8 KiB + 1; a short buffer would truncate a packet
_SEND = 8192  # conmon reads stdin packets into a buffer at least this big


class AttachConnection:
    """One attach session: output from ``recv``, stdin through ``send``/``close_stdin``."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    @classmethod
    async def open(cls, path: Path) -> AttachConnection:
        """Connect to the attach socket at ``path``. The socket's directory is reached through
        an O_PATH fd (``/proc/self/fd/N/attach``), so long paths work (sun_path is 108 bytes).

        Raises:
            NotFound: no conmon is listening there (container not created, or gone).
        """
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        dirfd = -1
        try:
            dirfd = os.open(path.parent, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
            await loop.sock_connect(sock, f"/proc/self/fd/{dirfd}/{path.name}")
        except (FileNotFoundError, NotADirectoryError, ConnectionRefusedError) as exc:
            sock.close()
            raise NotFound(f"attach socket {path} is not available: {exc}") from exc
        except BaseException:
            sock.close()
            raise
        finally:
            if dirfd >= 0:
                os.close(dirfd)
        return cls(sock)

    async def recv(self) -> tuple[str, bytes] | None:
        """The next ``("stdout"|"stderr", bytes)`` of output, or None once conmon closed the
        connection (the container exited and its output was sent) or we closed it."""
        loop = asyncio.get_running_loop()
        while True:
            try:
                packet = await loop.sock_recv(self._sock, _PACKET)
            except (ConnectionResetError, BrokenPipeError):
                return None
            except OSError:
                if self._sock.fileno() < 0:  # closed under us by close()
                    return None
                raise
            if not packet:
                return None
            stream = _STREAMS.get(packet[0])
            if stream in ("stdout", "stderr") and len(packet) > 1:
                return stream, packet[1:]

    async def send(self, data: bytes) -> None:
        """Write ``data`` to the container's stdin (ignored by conmon without ``-i``).

        Raises:
            ConnectionError: conmon closed the connection (the container exited).
        """
        loop = asyncio.get_running_loop()
        for start in range(0, len(data), _SEND):
            await loop.sock_sendall(self._sock, data[start:start + _SEND])

    async def close_stdin(self) -> None:
        """Half-close: conmon closes the container's stdin; output keeps flowing."""
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        """Drop the connection (idempotent); the container keeps running."""
        self._sock.close()
