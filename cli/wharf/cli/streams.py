"""Moving a container's stdio over a hijacked connection, like the docker CLI's hijack streamer.

* :class:`FrameDemuxer` splits Docker's 8-byte multiplexed frames (``Tty:false``) into stdout and
  stderr; with a TTY the bytes pass through untouched.
* :class:`EscapeProxy` watches stdin for the detach keys (default ctrl-p ctrl-q).
* :func:`raw_terminal` puts the user's terminal in raw mode and always restores it.
* :func:`pump` copies stdin → connection on a thread and connection → stdout/stderr on the
  caller's thread until the daemon closes the stream (or the user detaches).
* :func:`on_winch` calls back on SIGWINCH so the caller can resize the container's TTY.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import sys
import threading

from wharf.dockerapi import FRAME_HEADER, STDERR

TYPE_CHECKING = False  # `typing` costs start-up time (docs/cli.md "Start-up")
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator
    from typing import IO, Protocol
else:
    Protocol = object  # the Protocol below is a plain class at run time (annotations only)

DEFAULT_DETACH_KEYS = b"\x10\x11"  # ctrl-p ctrl-q
_CTRL_EXTRA = {"@": 0, "[": 27, "\\": 28, "]": 29, "^": 30, "_": 31}


class Connection(Protocol):
    """What the pump needs from a hijacked connection (:class:`wharf.cli.hijack.RawStream`)."""

    def recv(self, size: int = 65536) -> bytes: ...

    def sendall(self, data: bytes) -> None: ...

    def close_write(self) -> None: ...

    def shutdown(self) -> None: ...


class FrameDemuxer:
    """Incremental parser of ``[stream][0 0 0][size BE32]`` frames; frames may span chunks."""

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        """The complete frames ``data`` finishes, as ``(stream, payload)``."""
        self._buffer += data
        frames = []
        while len(self._buffer) >= FRAME_HEADER.size:
            stream, size = FRAME_HEADER.unpack_from(self._buffer)
            end = FRAME_HEADER.size + size
            if len(self._buffer) < end:
                break
            frames.append((stream, self._buffer[FRAME_HEADER.size:end]))
            self._buffer = self._buffer[end:]
        return frames


def parse_detach_keys(spec: str | None) -> bytes:
    """Docker's ``--detach-keys`` (``ctrl-p,ctrl-q``, ``a``…); invalid or empty → the default."""
    if not spec:
        return DEFAULT_DETACH_KEYS
    out = bytearray()
    for key in spec.split(","):
        if key.startswith("ctrl-") and len(key) == 6:
            char = key[5].lower()
            if "a" <= char <= "z":
                out.append(ord(char) - ord("a") + 1)
            elif char in _CTRL_EXTRA:
                out.append(_CTRL_EXTRA[char])
            else:
                return DEFAULT_DETACH_KEYS
        elif len(key) == 1:
            out.append(ord(key))
        else:
            return DEFAULT_DETACH_KEYS
    return bytes(out)


class EscapeProxy:
    """Holds back bytes that could start the detach sequence; reports when it is complete."""

    def __init__(self, keys: bytes) -> None:
        self.keys = keys
        self._held = b""

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        """Bytes to forward now, and whether the user typed the whole sequence."""
        out = bytearray()
        for byte in data:
            if byte == self.keys[len(self._held)]:
                self._held += bytes([byte])
                if len(self._held) == len(self.keys):
                    self._held = b""
                    return bytes(out), True
                continue
            out += self._held
            self._held = b""
            if byte == self.keys[0]:
                self._held = bytes([byte])
            else:
                out.append(byte)
        return bytes(out), False


@contextlib.contextmanager
def raw_terminal(fd: int | None) -> Iterator[None]:
    """Raw mode on terminal ``fd`` for the block; the old settings come back in ``finally``."""
    if fd is None or not os.isatty(fd):
        yield
        return
    import termios  # noqa: PLC0415 - only interactive sessions need it
    import tty  # noqa: PLC0415

    saved = termios.tcgetattr(fd)
    try:
        tty.setraw(fd, termios.TCSANOW)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def terminal_size(fd: int | None) -> tuple[int, int] | None:
    """``(rows, cols)`` of the terminal on ``fd``; None when it is not a terminal."""
    if fd is None:
        return None
    try:
        size = os.get_terminal_size(fd)
    except OSError:
        return None
    return size.lines, size.columns


@contextlib.contextmanager
def on_winch(callback: Callable[[], None]) -> Iterator[None]:
    """Run ``callback`` on a thread at every SIGWINCH (only installable on the main thread)."""
    with on_signals((signal.SIGWINCH,), lambda _signum: callback()):
        yield


@contextlib.contextmanager
def on_signals(signums: Iterable[int], callback: Callable[[int], None]) -> Iterator[None]:
    """Run ``callback(signum)`` on a thread of its own at each of ``signums`` for the block
    (only installable on the main thread; elsewhere the block runs without it).

    The signals restart what they interrupt (``SA_RESTART``) and reach the thread through the
    wakeup fd: a TLS read that a signal interrupts can come back as "would block" (the Python
    handler's own calls change errno), which the buffered reader reports as the end of the
    stream, so a session over TLS would end at the first resize or proxied signal.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    wanted = set(signums)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    previous = {n: signal.signal(n, lambda _signum, _frame: None) for n in wanted}
    for number in wanted:
        signal.siginterrupt(number, False)
    old_wakeup = signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)

    def watch() -> None:
        with os.fdopen(wake_r, "rb", buffering=0) as wakeups:
            while numbers := wakeups.read(512):  # every signal's number, ours among them
                for number in numbers:
                    if number in wanted:
                        callback(number)

    threading.Thread(target=watch, daemon=True, name="signals").start()
    try:
        yield
    finally:
        signal.set_wakeup_fd(old_wakeup)
        for number, handler in previous.items():
            signal.signal(number, handler)
        os.close(wake_w)  # the watcher reads the end and stops


class PumpOptions:
    """``stdin`` is a file descriptor, a binary file, or None (half-close at once)."""

    __slots__ = ("detach_keys", "stdin", "tty")

    def __init__(self, tty: bool, stdin: int | IO[bytes] | None = None,
                 detach_keys: bytes | None = None) -> None:
        self.tty = tty
        self.stdin = stdin
        self.detach_keys = detach_keys

    def __repr__(self) -> str:
        return (f"PumpOptions(tty={self.tty!r}, stdin={self.stdin!r}, "
                f"detach_keys={self.detach_keys!r})")


def stdin_source(stream: IO[bytes]) -> int | IO[bytes]:
    """The descriptor behind ``stream`` when it has one (select-able), else the stream."""
    try:
        return stream.fileno()
    except (OSError, ValueError, AttributeError):
        return stream


def pump(conn: Connection, out: IO[bytes], err: IO[bytes], opts: PumpOptions) -> bool:
    """Copy both ways until the daemon ends the output; True when the user detached."""
    detached = threading.Event()
    stop_r, stop_w = os.pipe()
    feeder = None
    if opts.stdin is None:
        conn.close_write()
    else:
        feeder = threading.Thread(target=_feed_input, daemon=True,
                                  args=(conn, opts, detached, stop_r))
        feeder.start()
    try:
        _copy_output(conn, out, err, opts.tty)
    finally:
        os.write(stop_w, b"x")
        if feeder is not None:
            feeder.join(timeout=2)
        os.close(stop_w)
        if feeder is None or not feeder.is_alive():
            os.close(stop_r)
    return detached.is_set()


def write_output(demux: FrameDemuxer, data: bytes, out: IO[bytes], err: IO[bytes],
                 tty: bool) -> None:
    """Container output to our stdout/stderr: raw with a TTY, demultiplexed frames without."""
    if tty:
        out.write(data)
        out.flush()
        return
    for stream, payload in demux.feed(data):
        target = err if stream == STDERR else out
        target.write(payload)
        target.flush()


def _copy_output(conn: Connection, out: IO[bytes], err: IO[bytes], tty: bool) -> None:
    demux = FrameDemuxer()
    with contextlib.suppress(ValueError):
        sys.stdout.flush()
    while data := conn.recv(65536):
        write_output(demux, data, out, err, tty)


def _feed_input(conn: Connection, opts: PumpOptions, detached: threading.Event,
                stop_r: int) -> None:
    """stdin → connection; half-closes at EOF, shuts the connection down on detach."""
    proxy = EscapeProxy(opts.detach_keys) if opts.detach_keys else None
    try:
        for chunk in _read_input(opts.stdin, stop_r):
            data, hit = proxy.feed(chunk) if proxy is not None else (chunk, False)
            if data:
                conn.sendall(data)
            if hit:
                detached.set()
                conn.shutdown()
                return
        conn.close_write()
    except OSError:
        conn.close_write()


def _read_input(source: int | IO[bytes] | None, stop_r: int) -> Iterator[bytes]:
    """Chunks of stdin until EOF; stops early when ``stop_r`` becomes readable."""
    if source is None:
        return
    if not isinstance(source, int):
        while data := source.read1(65536) if hasattr(source, "read1") else source.read(65536):
            yield data
        return
    while True:
        ready, _, _ = select.select([source, stop_r], [], [])
        if stop_r in ready:
            return
        try:
            data = os.read(source, 65536)
        except OSError:  # EIO: the terminal went away
            return
        if not data:
            return
        yield data
