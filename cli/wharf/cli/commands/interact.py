"""What ``run``, ``start -a``, ``attach`` and ``exec`` share once a connection is hijacked.

:func:`interact` wires the user's terminal to the stream: stdin only when asked for, raw mode only
when stdin is a terminal and the container has a TTY (restored on every exit path), an initial
resize and one per SIGWINCH, and the detach keys. :func:`proxy_signals` forwards the user's
signals to a container without a TTY (``--sig-proxy``), as the docker CLI does.
"""

from __future__ import annotations

import contextlib
import signal
import sys
from collections.abc import Callable

from wharf.cli.session import Session
from wharf.cli.streams import (
    PumpOptions,
    on_signals,
    on_winch,
    parse_detach_keys,
    pump,
    raw_terminal,
    stdin_source,
)
from wharf.errors import WharfError

TYPE_CHECKING = False  # `typing` costs start-up time (docs/cli.md "Start-up")
if TYPE_CHECKING:
    from collections.abc import Iterator

    from wharf.cli.hijack import RawStream

Resize = Callable[[int, int], None]
PROXIED = ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2")


def _quietly(call: Callable[[], None]) -> None:
    # a failed resize or signal must not end the session (docker only logs it)
    with contextlib.suppress(WharfError):
        call()


def terminal_size(session: Session) -> tuple[int, int] | None:
    """The user's terminal size as (rows, cols); None when stdout is not a terminal."""
    if not session.stdout_is_tty():
        return None
    import shutil  # noqa: PLC0415 - only with a TTY: shutil imports bz2 and lzma (~2 ms)

    cols, rows = shutil.get_terminal_size()
    return rows, cols


def resize_now(session: Session, resize: Resize) -> None:
    """Send the terminal's size (rows, cols) when stdout is a terminal."""
    if (size := terminal_size(session)) is not None:
        _quietly(lambda: resize(*size))


def interact(session: Session, conn: RawStream, *, tty: bool, stdin: bool,
             detach_keys: str | None = None, resize: Resize | None = None,
             on_resize: Callable[[], None] | None = None) -> bool:
    """Pump the stream until the daemon closes it; True when the user detached.

    ``resize`` is called once at the start and on every SIGWINCH (then ``on_resize`` too: for
    ``run``/``attach`` docker also sends ``kill?signal=WINCH``). The connection is closed here.
    """
    source = stdin_source(sys.stdin.buffer) if stdin else None
    raw_fd = source if (tty and isinstance(source, int) and session.stdin_is_tty()) else None
    keys = parse_detach_keys(detach_keys) if (tty and stdin) else None

    def winch() -> None:
        if resize is not None:
            resize_now(session, resize)
        if on_resize is not None:
            _quietly(on_resize)

    try:
        with raw_terminal(raw_fd), on_winch(winch) if tty and resize else _nothing():
            if tty and resize is not None:
                resize_now(session, resize)
            return pump(conn, sys.stdout.buffer, sys.stderr.buffer,
                        PumpOptions(tty=tty, stdin=source, detach_keys=keys))
    finally:
        conn.close()


@contextlib.contextmanager
def _nothing() -> Iterator[None]:
    yield


@contextlib.contextmanager
def proxy_signals(kill: Callable[[str], None], enabled: bool = True) -> Iterator[None]:
    """Forward the user's signals to the container (``kill?signal=NAME``) for the block."""
    if not enabled:
        yield
        return

    def forward(signum: int) -> None:
        name = signal.Signals(signum).name.removeprefix("SIG")
        _quietly(lambda: kill(name))

    with on_signals([getattr(signal, name) for name in PROXIED], forward):
        yield
