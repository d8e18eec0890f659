"""conmon's k8s-file log: ``<RFC3339Nano> <stdout|stderr> <F|P> <text>`` per line.

An entry is one line the container wrote: a ``P`` (partial) line's text is joined with the
following lines of the same stream up to an ``F`` line, whose text ends the entry with the
newline the container wrote (a TTY's ``\\r`` stays in the text). A chain still open at the end
of the log (the container wrote no final newline) becomes an entry without ``\\n`` once the
reader knows no more is coming. Malformed lines are skipped. The entry's timestamp is that of
its first line. ``frame`` is Docker's 8-byte multiplexed header. The older files ``max-file``
keeps (``logfiles``) come first when the log is read from its start or by ``tail``; a follower
reads on in the live file (started over, it is read from its start again).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from wharf.daemon.core.runtime import logfiles

_STREAMS = {"stdout": 1, "stderr": 2}
_BLOCK = 64 * 1024  # first backwards read for ``tail``; doubles until enough entries


@dataclass(frozen=True)
class LogEntry:
    timestamp: str  # RFC 3339 with nanoseconds, UTC, ending in Z
    unix_nanos: int
    stream: str  # "stdout" | "stderr"
    data: bytes


def parse_time(text: str) -> tuple[str, int] | None:
    """(RFC 3339 in UTC with 9 fraction digits and Z, unix nanoseconds) of a timestamp like
    ``2026-11-28T01:19:12.512506259+00:00``; None if it is not one."""
    head, dot, rest = text.partition(".")
    count = len(rest) - len(rest.lstrip("0123456789")) if dot else 0
    digits, zone = rest[:count][:9], rest[count:]
    if not dot:
        head, zone = text[:19], text[19:]
    if not zone:
        return None
    try:
        base = datetime.fromisoformat(head + ("+00:00" if zone == "Z" else zone))
    except ValueError:
        return None
    if base.tzinfo is None or len(head) != 19:
        return None
    seconds = int(base.timestamp())
    fraction = digits.ljust(9, "0")
    stamp = datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{fraction}Z", seconds * 1_000_000_000 + int(fraction)


class _Joiner:
    """Turns k8s-file lines into entries, joining partial lines per stream."""

    def __init__(self) -> None:
        self._partial: dict[str, tuple[str, int, bytes]] = {}
        self._opened_at: dict[str, int] = {}  # file offset of each open chain's first line

    def feed(self, line: bytes, offset: int = 0) -> LogEntry | None:
        parts = line.rstrip(b"\n").split(b" ", 3)
        if len(parts) < 3:
            return None
        stamp, stream, tag = (p.decode("ascii", "replace") for p in parts[:3])
        parsed = parse_time(stamp)
        if parsed is None or stream not in _STREAMS or tag not in ("F", "P"):
            return None
        text = parts[3] if len(parts) == 4 else b""
        timestamp, nanos, data = self._partial.pop(stream, (*parsed, b""))
        data += text
        if tag == "P":
            self._opened_at.setdefault(stream, offset)
            self._partial[stream] = (timestamp, nanos, data)
            return None
        self._opened_at.pop(stream, None)
        return LogEntry(timestamp, nanos, stream, data + b"\n")

    def earliest_open(self) -> int | None:
        """Where the oldest unfinished chain starts in the file (None: no chain is open)."""
        return min(self._opened_at.values(), default=None)

    def pending(self, stream: str) -> bool:
        return stream in self._partial

    def flush(self) -> list[LogEntry]:
        """The open chains as entries without a newline (oldest first); forgets them."""
        out = [LogEntry(t, n, s, d) for s, (t, n, d) in self._partial.items()]
        self._partial.clear()
        self._opened_at.clear()
        return sorted(out, key=lambda e: e.unix_nanos)


@dataclass(frozen=True)
class _Filter:
    stdout: bool
    stderr: bool
    since: float | None
    until: float | None

    def stream_wanted(self, stream: str) -> bool:
        return self.stdout if stream == "stdout" else self.stderr

    def __call__(self, entry: LogEntry) -> bool:
        seconds = entry.unix_nanos / 1e9
        return (self.stream_wanted(entry.stream)
                and (self.since is None or seconds >= self.since)
                and (self.until is None or seconds <= self.until))


def _complete(data: bytes) -> bytes:
    """``data`` up to and including its last newline."""
    return data[: data.rfind(b"\n") + 1]


def _forward(handle: _Reader, start: int, end: int, joiner: _Joiner, wanted: _Filter
             ) -> list[LogEntry]:
    """Entries of the complete lines in [start, end), read in blocks."""
    out: list[LogEntry] = []
    rest = b""
    pos = line_at = start
    while pos < end:
        block = handle.pread(min(1 << 20, end - pos), pos)
        if not block:
            break
        pos += len(block)
        lines = (rest + block).split(b"\n")
        rest = lines.pop()
        for line in lines:
            entry = joiner.feed(line, line_at)
            line_at += len(line) + 1
            if entry is not None and wanted(entry):
                out.append(entry)
    return out


def _tail(handle: _Reader, end: int, count: int, wanted: _Filter) -> tuple[list[LogEntry], _Joiner]:
    """The last ``count`` wanted entries of [0, end), reading a growing window from the end.

    A window that does not start at the beginning may cut a P…F chain: each stream's first
    entry in the window is then dropped, and the window is only good if ``count`` entries
    follow the last dropped one.
    """
    size = _BLOCK
    while True:
        start = max(0, end - size)
        if start > 0:  # begin at a line boundary
            head = handle.pread(min(size, end - start), start)
            cut = head.find(b"\n")
            start = end if cut < 0 else start + cut + 1
        joiner = _Joiner()
        entries = _forward(handle, start, end, joiner, _Filter(True, True, None, None))
        if count == 0:
            return [], joiner  # only the joiner's state at ``end`` is wanted
        if start == 0:
            return [e for e in entries if wanted(e)][-count:], joiner
        first_seen: set[str] = set()
        kept: list[LogEntry] = []
        for entry in entries:
            if entry.stream not in first_seen:
                first_seen.add(entry.stream)
                if wanted.stream_wanted(entry.stream):
                    kept.clear()  # what came before a possibly cut entry cannot be trusted
                continue
            if wanted(entry):
                kept.append(entry)
        if len(kept) >= count:
            return kept[-count:], joiner
        size *= 2


class _Reader:
    """A file opened once, read by offset."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def pread(self, length: int, offset: int) -> bytes:
        return os.pread(self.fd, length, offset)


def _read(path: Path, wanted: _Filter, tail: int | None) -> tuple[list[LogEntry], int, _Joiner]:
    """(entries, offset after the last complete line read, joiner state at that offset)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return [], 0, _Joiner()
    try:
        handle = _Reader(fd)
        size = os.fstat(fd).st_size
        tail_bytes = handle.pread(min(size, 1 << 20), max(0, size - (1 << 20)))
        end = size - (len(tail_bytes) - len(_complete(tail_bytes)))
        if tail is not None:
            entries, joiner = _tail(handle, end, max(tail, 0), wanted)
            return entries, end, joiner
        joiner = _Joiner()
        return _forward(handle, 0, end, joiner, wanted), end, joiner
    finally:
        os.close(fd)


def _read_all(path: Path, wanted: _Filter, tail: int | None
              ) -> tuple[list[LogEntry], int, _Joiner]:
    """:func:`_read` of the live log, the entries of its kept older files first (oldest
    first; ``logfiles``): as many as ``tail`` still wants, or all."""
    entries, end, joiner = _read(path, wanted, tail)
    if tail is not None and len(entries) >= tail:
        return entries, end, joiner
    older: list[LogEntry] = []
    for kept in logfiles.older_files(path):
        found, _, rest = _read(kept, wanted, None)
        older += found + [e for e in rest.flush() if wanted(e)]
    if tail is not None:
        older = older[max(0, len(older) - (tail - len(entries))):]
    return older + entries, end, joiner


def read_logs(path: Path, *, stdout: bool = True, stderr: bool = True,
              since: float | None = None, until: float | None = None,
              tail: int | None = None) -> list[LogEntry]:
    """The entries of the log at ``path``, oldest first; a missing file has none.

    ``since``/``until`` are epoch seconds (inclusive) compared with an entry's first line;
    ``tail`` keeps the last N entries after filtering (0 = none, None = all) and reads the
    file backwards, so it is cheap on a large log. An unterminated chain at the end of the
    log is returned as a final entry without a newline.
    """
    if tail is not None and tail <= 0:
        return []
    wanted = _Filter(stdout, stderr, since, until)
    entries, _, joiner = _read_all(path, wanted, tail)
    last = [e for e in joiner.flush() if wanted(e)]
    if tail is not None:
        return (entries + last)[-tail:]
    return entries + last


async def follow_logs(path: Path, *, stdout: bool = True, stderr: bool = True,
                      since: float | None = None, until: float | None = None,
                      tail: int | None = None, finished: Callable[[], bool],
                      poll: float = 0.05) -> AsyncIterator[LogEntry]:
    """The existing entries (``tail`` applies), then new ones as the log grows.

    Stops once ``finished()`` was true before a read that found nothing new (so nothing the
    container wrote before it finished is lost), or when the clock passes ``until``. Only
    complete lines are parsed; an unterminated chain is yielded (without newline) at the end.
    A log that shrank (rotated) is read again from its start.
    """
    wanted = _Filter(stdout, stderr, since, until)
    if tail is not None and tail <= 0:
        entries, offset, joiner = _read(path, wanted, 0)
    else:
        entries, offset, joiner = await asyncio.to_thread(_read_all, path, wanted, tail)
    for entry in entries:
        yield entry
    while True:
        done = finished()  # checked before the read: a final read always follows the exit
        chunk, offset, joiner = _read_new(path, offset, joiner)
        for entry in _feed_all(joiner, chunk):
            if wanted(entry):
                yield entry
        if done and not chunk:
            for entry in joiner.flush():
                if wanted(entry):
                    yield entry
            return
        if until is not None and time.time() > until:
            return
        if not chunk:
            await asyncio.sleep(poll)


def _read_new(path: Path, offset: int, joiner: _Joiner) -> tuple[bytes, int, _Joiner]:
    """Complete lines appended since ``offset`` (from 0 again if the file shrank)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return b"", offset, joiner
    try:
        size = os.fstat(fd).st_size
        if size < offset:
            offset, joiner = 0, _Joiner()
        data = _complete(os.pread(fd, min(size - offset, 4 << 20), offset))
    finally:
        os.close(fd)
    return data, offset + len(data), joiner


def _feed_all(joiner: _Joiner, data: bytes) -> Iterable[LogEntry]:
    for line in data.split(b"\n")[:-1]:
        entry = joiner.feed(line)
        if entry is not None:
            yield entry


# --- reading by cursor (a follower that asks again and again, e.g. through the gateway) ------


@dataclass(frozen=True)
class LogPage:
    """Entries and the cursor to ask with next: ``(start, seen)`` — the next read begins at
    ``start`` (the first line of a chain still open, so a P…F chain is never cut) and skips
    entries that were complete by ``seen`` (already handed out). ``more``: a read stopped at
    its size limit, ask again at once."""

    entries: list[LogEntry]
    cursor: tuple[int, int]
    more: bool


PAGE_BYTES = 1 << 20


def read_page(path: Path, cursor: tuple[int, int] | None, *, tail: int | None = None,
              since: float | None = None, flush: bool = False,
              limit: int = PAGE_BYTES) -> LogPage:
    """The log from ``cursor`` on (None: from the start, or its last ``tail`` entries), both
    streams, at most about ``limit`` bytes of it. ``flush``: the writer is gone, so chains
    left open at the end are entries too (without a newline)."""
    wanted = _Filter(True, True, since, None)
    if cursor is None:
        if tail is not None and tail <= 0:
            entries, end, joiner = _read(path, wanted, 0)
            entries = []
        else:
            entries, end, joiner = _read_all(path, wanted, tail)
        start = joiner.earliest_open()
        flushed = [e for e in joiner.flush() if wanted(e)] if flush else []
        return LogPage(entries + flushed, (end if start is None else start, end), False)
    return _page_after(path, cursor, wanted, flush, limit)


def _page_after(path: Path, cursor: tuple[int, int], wanted: _Filter, flush: bool,
                limit: int) -> LogPage:
    start, seen = cursor
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return LogPage([], cursor, False)
    try:
        size = os.fstat(fd).st_size
        if size < seen:  # the log was cut (rotated): from its start again
            start = seen = 0
        asked = min(size - start, max(limit, seen - start + limit))
        data = _complete(os.pread(fd, asked, start))
        while not data and start + asked < size:  # no whole line in the window: widen it
            asked = min(size - start, asked * 2)
            data = _complete(os.pread(fd, asked, start))
    finally:
        os.close(fd)
    joiner, out, offset = _Joiner(), [], start
    for line in data.split(b"\n")[:-1]:
        entry = joiner.feed(line, offset)
        offset += len(line) + 1
        if entry is not None and offset > seen and wanted(entry):
            out.append(entry)
    end = start + len(data)
    more = start + asked < size  # stopped at the limit, not at the end of the log
    if flush and not more:
        out += [e for e in joiner.flush() if wanted(e)]
    opened = joiner.earliest_open()
    return LogPage(out, (end if opened is None else opened, max(end, seen)), more)
