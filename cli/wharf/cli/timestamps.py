"""Docker's ``--since``/``--until`` values and the event time format.

:func:`api_timestamp` is a port of ``github.com/docker/docker/api/types/time.GetTimestamp``: a unix
timestamp passes through, a Go duration (``10m``, ``1h30m``) counts back from now, RFC 3339 and
its shorter forms are converted to ``seconds.nanoseconds``.
"""

from __future__ import annotations

import re
import time
from datetime import datetime

from wharf import dockerapi
from wharf.errors import InvalidArgument

_UNIX = re.compile(r"-?\d+(\.\d{1,9})?")
_LOCAL_FORMATS = ("%Y-%m-%dT%H:%M:%S.%f", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M",
                  "%Y-%m-%dT%H", "%Y-%m-%d")


class TimestampError(ValueError):
    """Not a timestamp, duration or date (the message is docker's)."""


def go_duration(text: str) -> float | None:
    """Seconds in a Go duration string (``1h30m``, ``500ms``); None when it is not one."""
    try:
        return dockerapi.go_duration(text) / 1e9
    except InvalidArgument:
        return None


def _parse_date(text: str) -> float:
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        parsed = None
    if parsed is not None and parsed.tzinfo is not None:
        return parsed.timestamp()
    for fmt in _LOCAL_FORMATS:
        try:
            return datetime.strptime(text, fmt).timestamp()  # naive → local time, like docker
        except ValueError:
            continue
    raise TimestampError(f'failed to parse time "{text}"')


def api_timestamp(value: str, now: float | None = None) -> str:
    """The ``since``/``until`` query value for ``value``."""
    if _UNIX.fullmatch(value):
        return value
    current = time.time() if now is None else now
    seconds = go_duration(value)
    stamp = current - seconds if seconds is not None else _parse_date(value)
    whole = int(stamp // 1)
    return f"{whole}.{round((stamp - whole) * 1e9) % 1_000_000_000:09d}"


def event_time(time_nano: int) -> str:
    """Go's ``2006-01-02T15:04:05.000000000Z07:00`` in local time."""
    seconds, nanos = divmod(time_nano, 1_000_000_000)
    local = time.localtime(seconds)
    offset = time.strftime("%z", local)
    zone = "Z" if offset in ("+0000", "-0000") else f"{offset[:3]}:{offset[3:]}"
    return time.strftime("%Y-%m-%dT%H:%M:%S", local) + f".{nanos:09d}" + zone


def add_time_range(params: dict[str, str | list[str]], since: str, until: str) -> None:
    """Set the ``since``/``until`` query values the user gave (TimestampError if malformed)."""
    for key, value in (("since", since), ("until", until)):
        if value:
            params[key] = api_timestamp(value)
