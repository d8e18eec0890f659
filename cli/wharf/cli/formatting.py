"""Presentation helpers shared by commands: Docker's tables, human sizes and durations.

Sizes and durations follow github.com/docker/go-units (HumanSize, BytesSize, HumanDuration);
tables follow the docker CLI's tabwriter (min width 10, padding 3).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime

from wharf.humanize import human_duration

_DECIMAL = ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB")
_BINARY = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB")


def _go_g(value: float, precision: int) -> str:
    """Go's ``%.<precision>g``: same as Python's, exponent written with at least two digits."""
    return f"{value:.{precision}g}"


def _custom_size(size: float, base: float, units: tuple[str, ...], precision: int) -> str:
    i = 0
    while size >= base and i < len(units) - 1:
        size /= base
        i += 1
    return f"{_go_g(size, precision)}{units[i]}"


def human_size(size: float, precision: int = 4) -> str:
    """Decimal size like go-units ``HumanSizeWithPrecision`` (``images`` uses precision 3)."""
    return _custom_size(float(size), 1000.0, _DECIMAL, precision)


def bytes_size(size: float) -> str:
    """Binary size like go-units ``BytesSize`` (``15.52GiB``)."""
    return _custom_size(float(size), 1024.0, _BINARY, 4)


def since(unix_seconds: float, now: float | None = None) -> str:
    """``"2 minutes ago"`` for a unix timestamp, as ``docker images`` shows CREATED."""
    current = time.time() if now is None else now
    return human_duration(current - unix_seconds) + " ago"


def go_time(unix_seconds: float) -> str:
    """Go's ``time.Time.String()`` in local time: ``2026-11-28 01:00:50 +0000 UTC``."""
    local = time.localtime(unix_seconds)
    return time.strftime("%Y-%m-%d %H:%M:%S %z %Z", local)


def go_time_text(value: datetime) -> str:
    """Go's ``time.Time.String()`` of a time decoded from JSON, in the zone it was written in:
    ``2026-01-02 03:04:05.5 +0000 UTC`` (fractional seconds only when there are any)."""
    text = value.strftime("%Y-%m-%d %H:%M:%S")
    if value.microsecond:
        text += f".{value.microsecond:06d}".rstrip("0")
    offset = value.strftime("%z") or "+0000"
    return f"{text} {offset} " + ("UTC" if offset in ("+0000", "-0000") else offset)


def rfc3339(unix_seconds: float) -> str:
    """Go's ``time.RFC3339`` in local time (``history --human=false``)."""
    local = time.localtime(unix_seconds)
    offset = time.strftime("%z", local)
    zone = "Z" if offset in ("+0000", "-0000") else f"{offset[:3]}:{offset[3:]}"
    return time.strftime("%Y-%m-%dT%H:%M:%S", local) + zone


def ellipsis(text: str, width: int) -> str:
    """Cut ``text`` to ``width`` characters, the last one being ``…`` (Docker's Ellipsis)."""
    if len(text) <= width:
        return text
    return text[: width - 1] + "…"


def short_id(image_id: str, no_trunc: bool = False) -> str:
    """``sha256:349a…`` → ``349a1b2c3d4e`` (full with ``no_trunc``)."""
    if no_trunc:
        return image_id
    return image_id.split(":", 1)[-1][:12]


def tabulate(rows: Sequence[Sequence[str]], min_width: int = 10, padding: int = 3) -> str:
    """Align cells like Go's tabwriter(minwidth, tabwidth=1, padding, ' ', 0).

    Every cell but the last of a row ends in a tab in Docker's templates, so all columns but
    the last are padded to ``max(min_width, widest + padding)``.
    """
    widths: dict[int, int] = {}
    for row in rows:
        for i, cell in enumerate(row[:-1]):
            widths[i] = max(widths.get(i, min_width), len(cell) + padding)
    lines = []
    for row in rows:
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])]
        lines.append("".join(cells) + (row[-1] if row else ""))
    return "\n".join(lines)
