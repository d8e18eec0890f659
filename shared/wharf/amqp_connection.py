"""The pika ``AsyncioConnection`` :class:`~wharf.amqp_async.AsyncBroker` opens, with two changes
to how it uses the socket, both measured on the gateway (bench/dispatch.py):

- **Writes coalesced**: pika writes each frame on its own (a publish is three: method, header,
  body) and each write costs a send(2) plus two epoll changes. Frames emitted in one loop
  iteration are joined and written once: a publish or a burst of acks is one system call.
- **Reads paced while nobody waits** (``read_pause``): a gateway hears 1,000 nodes' heartbeats
  a second, each its own message, and reading each as it comes wakes the loop a thousand
  times a second (most of an idle gateway's CPU was the kernel's epoll and recv, not Python).
  After a read that brought a trickle (under :data:`TRICKLE_BYTES`), the connection may stop
  watching its socket for ``read_pause()`` seconds, so the messages of that time are read in
  one go; a read that brought more (a round of snapshots, a backlog) is followed at once. The
  owner says when to pause (0: read at once; :class:`~wharf.amqp_async.AsyncBroker` never
  rests within a second of a publish or while an RPC waits, and the gateway not while a
  request waits for a result) and calls :meth:`read_now` when that changes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from pika.adapters.asyncio_connection import AsyncioConnection

TRICKLE_BYTES = 32 * 1024  # a read under this may rest; pika reads up to 100 KiB per event


def never() -> float:
    return 0.0


class PacedConnection(AsyncioConnection):  # type: ignore[misc]
    """See the module's text. ``read_pause``: seconds to leave the socket unread after a read
    (asked after each one)."""

    def __init__(self, *args: Any, read_pause: Callable[[], float] = never,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._wharf_out: list[bytes] | None = None
        self.read_pause = read_pause
        self._wharf_reader: tuple[int, Callable[[], None]] | None = None  # fd, pika's callback
        self._wharf_resume: asyncio.TimerHandle | None = None
        self._wharf_read = 0  # bytes the current read brought
        nbio = self._nbio  # pika's loop adapter: its reader calls come through here
        self._wharf_set_reader, self._wharf_remove_reader = nbio.set_reader, nbio.remove_reader
        nbio.set_reader, nbio.remove_reader = self._set_reader, self._remove_reader

    # --- writes --------------------------------------------------------------------------

    def _adapter_emit_data(self, data: bytes) -> None:
        if self._wharf_out is None:
            self._wharf_out = []
            asyncio.get_running_loop().call_soon(self._wharf_flush)
        self._wharf_out.append(data)

    def _wharf_flush(self) -> None:
        out, self._wharf_out = self._wharf_out, None
        if out and self._transport is not None:
            super()._adapter_emit_data(b"".join(out))

    # --- reads ---------------------------------------------------------------------------

    def read_now(self) -> None:
        """Watch the socket again at once if a pause is under way."""
        if self._wharf_resume is not None:
            self._wharf_resume.cancel()
            self._resume()

    def _set_reader(self, fd: int, on_readable: Callable[[], None]) -> None:
        self._cancel_resume()
        self._wharf_reader = (fd, on_readable)
        self._wharf_set_reader(fd, self._readable)

    def _remove_reader(self, fd: int) -> bool:
        self._cancel_resume()
        self._wharf_reader = None
        return bool(self._wharf_remove_reader(fd))

    def _proto_data_received(self, data: bytes) -> None:
        self._wharf_read += len(data)
        super()._proto_data_received(data)

    def _readable(self) -> None:
        reader = self._wharf_reader
        if reader is None:
            return
        self._wharf_read = 0
        reader[1]()
        trickle = self._wharf_read < TRICKLE_BYTES
        pause = self.read_pause() if self.is_open and trickle else 0.0
        if pause > 0 and self._wharf_reader is reader and self._wharf_resume is None:
            self._wharf_remove_reader(reader[0])
            self._wharf_resume = asyncio.get_running_loop().call_later(pause, self._resume)

    def _resume(self) -> None:
        self._wharf_resume = None
        if self._wharf_reader is not None:
            self._wharf_set_reader(self._wharf_reader[0], self._readable)

    def _cancel_resume(self) -> None:
        if self._wharf_resume is not None:
            self._wharf_resume.cancel()
            self._wharf_resume = None
