"""Docker Engine API wire helpers, one copy for the daemon, the gateway and the CLI: query
booleans, integers and filters exactly as dockerd parses them, RFC 3339 times, Go durations
(the health-check flags and messages), the ``ps`` status text, the multiplexed stream
frame, and which events an ``events`` filter lets through."""

from __future__ import annotations

import json
import re
import struct
from datetime import UTC, datetime

from wharf.errors import InvalidArgument
from wharf.humanize import human_duration

TYPE_CHECKING = False  # the CLI's start-up imports this module: no `typing` at run time
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping
    from typing import Any

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


# --- Go durations ---------------------------------------------------------------------------

_GO_UNITS = {"ns": 1, "us": 10**3, "\u00b5s": 10**3, "\u03bcs": 10**3, "ms": 10**6,
             "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}
_GO_NUMBER = re.compile(r"([0-9]*)(?:\.([0-9]*))?")
_GO_UNIT = re.compile(r"[^0-9.]*")


def go_duration(text: str) -> int:
    """Go's ``time.ParseDuration`` ("1m30s", "1.5h", "300ms") in nanoseconds; InvalidArgument
    with Go's message (``time: invalid duration "x"``) for anything else."""
    rest, sign = text, 1
    if rest[:1] in ("+", "-"):
        sign, rest = (-1 if rest[0] == "-" else 1), rest[1:]
    if rest == "0":
        return 0
    if not rest:
        raise InvalidArgument(f'time: invalid duration "{text}"')
    total = 0
    while rest:
        number = _GO_NUMBER.match(rest)
        if number is None or not (number.group(1) or number.group(2)):
            raise InvalidArgument(f'time: invalid duration "{text}"')
        whole, fraction = number.group(1), number.group(2)
        rest = rest[number.end():]
        unit_match = _GO_UNIT.match(rest)
        unit = unit_match.group() if unit_match else ""
        rest = rest[len(unit):]
        if not unit:
            raise InvalidArgument(f'time: missing unit in duration "{text}"')
        if unit not in _GO_UNITS:
            raise InvalidArgument(f'time: unknown unit "{unit}" in duration "{text}"')
        scale = _GO_UNITS[unit]
        total += int(whole or "0") * scale
        if fraction:
            total += int(fraction) * scale // 10 ** len(fraction)
    return sign * total


def go_duration_text(nanoseconds: int) -> str:
    """Go's ``Duration.String()``: "0s", "500ms", "1.5µs", "30s", "1m30s", "1h0m0s"."""
    sign, value = ("-" if nanoseconds < 0 else ""), abs(nanoseconds)
    if value == 0:
        return "0s"
    if value < 10**3:
        return f"{sign}{value}ns"
    if value < 10**9:
        unit, scale = ("\u00b5s", 10**3) if value < 10**6 else ("ms", 10**6)
        return sign + _go_fraction(value, scale) + unit
    seconds = _go_fraction(value % (60 * 10**9), 10**9) + "s"
    minutes, hours = value // (60 * 10**9) % 60, value // (3600 * 10**9)
    if hours:
        return f"{sign}{hours}h{minutes}m{seconds}"
    if minutes:
        return f"{sign}{minutes}m{seconds}"
    return sign + seconds


def _go_fraction(value: int, scale: int) -> str:
    """``value / scale`` with the fraction's trailing zeros (and a bare point) left out."""
    whole, fraction = divmod(value, scale)
    digits = str(fraction).rjust(len(str(scale)) - 1, "0").rstrip("0")
    return f"{whole}.{digits}" if digits else str(whole)


# --- container status text ------------------------------------------------------------------

ZERO_TIME = "0001-01-01T00:00:00Z"  # Docker's "never" for StartedAt/FinishedAt
# The states `docker ps` lists without -a (a container that is up; paused and restarting count).
UP_STATES = frozenset({"running", "paused", "restarting"})


def status_text(state: str, exit_code: int, started_at: str, finished_at: str,
                now: datetime | None = None, health: str = "") -> str:
    """``ps`` STATUS as dockerd's ``State.String()`` words it, from the list entry's ``State``
    (created, running, paused, restarting, removing, exited, dead) and its times; a running
    container's ``health`` status (starting, healthy, unhealthy; "" without a check) follows in
    brackets."""
    now = now or datetime.now(UTC)
    if state == "running" and health:
        shown = "health: starting" if health == "starting" else health
        return f"Up {_since(started_at, now)} ({shown})"
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


# --- events ---------------------------------------------------------------------------------
EVENT_FILTERS = ("type", "event", "container", "image", "label")  # what dockerd's /events reads


def check_event_filters(filters: Mapping[str, list[str]], keys: Iterable[str]) -> None:
    """InvalidArgument for a filter key not in ``keys`` (a value that fits no event is not an
    error: it lets none through, as dockerd's)."""
    allowed = set(keys)
    for key in filters:
        if key not in allowed:
            raise InvalidArgument(f"invalid filter '{key}' (the events filters are "
                                  f"{', '.join(sorted(allowed))})")


def event_included(event: Mapping[str, Any], filters: Mapping[str, list[str]]) -> bool:
    """Whether a Docker-shaped event passes ``filters`` (checked): the values of one key are
    alternatives, except ``label`` (each must match); different keys must all match.
    ``node`` is the node the event happened on (the gateway's cluster events)."""
    kind, action = str(event.get("Type", "")), str(event.get("Action", ""))
    actor = event.get("Actor") or {}
    actor_id, attributes = str(actor.get("ID", "")), actor.get("Attributes") or {}
    checks: dict[str, Callable[[str], bool]] = {
        "type": lambda v: kind == v,
        "event": lambda v: action == v or action.startswith(v + ":"),
        "container": lambda v: kind == "container" and v in (
            actor_id, actor_id[:12], attributes.get("name")),
        "image": lambda v: v in (attributes.get("image"), actor_id),
        "label": lambda v: _has_label(attributes, v),
        "node": lambda v: event.get("node") == v,
    }
    for key, values in filters.items():
        test = checks[key]
        if values and not (all if key == "label" else any)(test(v) for v in values):
            return False
    return True


def _has_label(attributes: Mapping[str, str], term: str) -> bool:
    key, sep, value = term.partition("=")
    return key in attributes and (not sep or attributes[key] == value)
