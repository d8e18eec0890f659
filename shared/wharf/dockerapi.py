"""Docker Engine API wire helpers, one copy for the daemon, the gateway and the CLI: query
booleans, integers and filters exactly as dockerd parses them, RFC 3339 times, the ``ps`` status
text and the multiplexed stream frame."""

from __future__ import annotations

import json
import struct
from datetime import UTC, datetime

from wharf.errors import InvalidArgument
from wharf.humanize import human_duration

_FALSE = {"", "0", "no", "false", "none"}


def qbool(value: str | None) -> bool:
    """dockerd's boolValue: trimmed, lowercased; '', 0, no, false, none are false."""
    return value is not None and value.strip().lower() not in _FALSE


def qint(value: str | None, name: str, default: int) -> int:
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise InvalidArgument(f"invalid value for {name}: {value!r} is not an integer") from None


def parse_filters(raw: str | None) -> dict[str, list[str]]:
    """Docker's ``filters`` JSON: map form ``{"k":{"v":true}}`` or list form ``{"k":["v"]}``."""
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except ValueError:
        raise InvalidArgument(f"invalid filters: {raw!r} is not JSON") from None
    if not isinstance(data, dict):
        raise InvalidArgument("invalid filters: expected a JSON object")
    out: dict[str, list[str]] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out[str(key)] = [str(k) for k, on in value.items() if on]
        elif isinstance(value, list):
            out[str(key)] = [str(v) for v in value]
        elif isinstance(value, str):
            out[str(key)] = [value]
        else:
            raise InvalidArgument(f"invalid filters: bad value for {key!r}")
    return out


def unix_seconds(rfc3339: str) -> int:
    """Seconds since the epoch of an RFC 3339 timestamp (nanoseconds tolerated)."""
    return int(parse_time(rfc3339).timestamp())


def parse_time(text: str) -> datetime:
    value = text.strip().replace("Z", "+00:00")
    if "." in value:  # Python parses at most 6 fractional digits
        head, _, rest = value.partition(".")
        digits = "".join(c for c in rest if c.isdigit())
        zone = rest[len(digits):]
        value = f"{head}.{digits[:6]}{zone}"
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidArgument(f"invalid timestamp {text!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


# --- container status text ------------------------------------------------------------------

ZERO_TIME = "0001-01-01T00:00:00Z"  # Docker's "never" for StartedAt/FinishedAt
# The states `docker ps` lists without -a (a container that is up; paused and restarting count).
UP_STATES = frozenset({"running", "paused", "restarting"})


def status_text(state: str, exit_code: int, started_at: str, finished_at: str,
                now: datetime | None = None) -> str:
    """``ps`` STATUS as dockerd's ``State.String()`` words it, from the list entry's ``State``
    (created, running, paused, restarting, removing, exited, dead) and its times."""
    now = now or datetime.now(UTC)
    if state == "running":
        return f"Up {_since(started_at, now)}"
    if state == "paused":
        return f"Up {_since(started_at, now)} (Paused)"
    if state == "restarting":
        return f"Restarting ({exit_code}) {_since(finished_at, now)} ago"
    if state == "removing":
        return "Removal In Progress"
    if state == "dead":
        return "Dead"
    if not started_at or started_at == ZERO_TIME:
        return "Created"
    if not finished_at or finished_at == ZERO_TIME:
        return ""
    return f"Exited ({exit_code}) {_since(finished_at, now)} ago"


def _since(stamp: str, now: datetime) -> str:
    try:
        then = parse_time(stamp)
    except InvalidArgument:
        return "Less than a second"
    return human_duration(max(0.0, (now - then).total_seconds()))


# --- stream framing -------------------------------------------------------------------------

STDIN, STDOUT, STDERR = 0, 1, 2
STREAMS = {"stdin": STDIN, "stdout": STDOUT, "stderr": STDERR}
FRAME_HEADER = struct.Struct(">BxxxL")


def frame(stream: int, data: bytes) -> bytes:
    """Docker's multiplexed frame (attach, logs, exec without a TTY):
    ``[stream, 0, 0, 0, size:u32 big-endian]`` + data; stream 1 is stdout, 2 stderr."""
    return FRAME_HEADER.pack(stream, len(data)) + data


_STRICT = {"1": True, "true": True, "yes": True, "on": True,
           "0": False, "false": False, "no": False, "off": False}


def strict_bool(name: str, value: str) -> bool:
    """A boolean an API of ours defines (not Docker's lenient one): anything but the usual
    spellings of true and false is an InvalidArgument naming the parameter."""
    try:
        return _STRICT[value.strip().lower()]
    except KeyError:
        raise InvalidArgument(f"{name}: {value!r} is not a boolean (true or false)") from None
