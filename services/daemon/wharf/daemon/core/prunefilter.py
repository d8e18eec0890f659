"""dockerd's prune filters (moby ``daemon/prune.go``, API 1.41), parsed and matched once for
every prune (containers, networks, images, volumes).

- ``until=<time>``: only what was created at or before it goes. The value is what moby's
  ``api/types/time.GetTimestamp`` takes: a Go duration counted back from now (``10m``), a unix
  timestamp (``seconds[.fraction]``), or an RFC 3339 date/time or one of its shorter forms
  (``2006-01-02``, ``2006-01-02T15``, ``2006-01-02T15:04``, with a zone or without one: then
  the daemon's local zone). One ``until`` at most.
- ``label=k`` / ``label=k=v``: every one must match; ``label!=k`` / ``label!=k=v``: an object
  that every one of them matches stays (dockerd's ``MatchKVList``: with one ``label!``, what it
  matches stays; with two, only what both match).
- any other key is refused, except those a prune takes itself (``dangling`` for images, ``all``
  for volumes); volumes take no ``until``.

Refusals use dockerd's words (20.10, built with Go 1.19, so Go 1.19's ``time.Parse`` errors),
with the lower-case ``invalid filter`` the rest of wharf uses.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from wharf.dockerapi import go_duration
from wharf.errors import InvalidArgument

LABEL_KEYS = ("label", "label!")
_NS = 10**9
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_RFC3339_NANO = "2006-01-02T15:04:05.999999999Z07:00"
_GO_INT = re.compile(r"[+-]?[0-9]+")
_INT64 = 2**63
_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t",
            "\v": "\\v", '"': '\\"', "\\": "\\\\"}


@dataclass(frozen=True)
class PruneFilter:
    """What one prune may remove; the empty filter matches everything."""

    until: int | None = None  # unix nanoseconds; None: no ``until``
    labels: frozenset[str] = frozenset()
    not_labels: frozenset[str] = frozenset()
    extra: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # a prune's own keys

    def matches(self, labels: Mapping[str, str] | None, created: str = "") -> bool:
        """True when an object with these labels, created at ``created`` (RFC 3339), goes."""
        return self.created_before(created) and self.matches_labels(labels or {})

    def created_before(self, created: str) -> bool:
        """``until``: created at or before it; an unknown creation time is never old enough."""
        if self.until is None:
            return True
        try:
            return _go_parse(_RFC3339_NANO, created, 0) <= self.until
        except _ParseError:
            return False

    def matches_labels(self, labels: Mapping[str, str]) -> bool:
        """Every ``label`` term matches and not every ``label!`` term does (dockerd)."""
        if not all(_label_matches(labels, term) for term in self.labels):
            return False
        return not (self.not_labels
                    and all(_label_matches(labels, term) for term in self.not_labels))


def check_keys(terms: Mapping[str, object], accepted: Iterable[str]) -> None:
    """Raise dockerd's ``invalid filter '<key>'`` for the first key not in ``accepted``."""
    allowed = set(accepted)
    for key in terms:
        if key not in allowed:
            raise InvalidArgument(f"invalid filter '{key}'")


def parse(terms: Mapping[str, Iterable[str]], *, extra: Iterable[str] = (),
          until: bool = True, now: datetime | None = None) -> PruneFilter:
    """A prune's filters: ``label``, ``label!``, ``until`` (unless ``until=False``) and the
    prune's own ``extra`` keys, whose values are kept for the caller in ``PruneFilter.extra``.

    Raises:
        InvalidArgument: another key, more than one ``until`` or a bad one (dockerd's words).
    """
    own = tuple(extra)
    check_keys(terms, (*LABEL_KEYS, *own, *(("until",) if until else ())))
    values = {key: tuple(dict.fromkeys(v)) for key, v in terms.items()}  # a set, as in Go
    stamp = None
    if values.get("until"):
        if len(values["until"]) > 1:
            raise InvalidArgument("more than one until filter specified")
        stamp = parse_until(values["until"][0], now or datetime.now().astimezone())
    return PruneFilter(until=stamp, labels=frozenset(values.get("label", ())),
                       not_labels=frozenset(values.get("label!", ())),
                       extra={key: values[key] for key in own if key in values})


def parse_until(text: str, now: datetime) -> int:
    """``until``'s value in unix nanoseconds, as moby's ``GetTimestamp`` then
    ``ParseTimestamps`` read it (``now``: the reference time, in the daemon's zone).

    Raises:
        InvalidArgument: neither a duration, nor a date/time, nor a unix timestamp.
    """
    if text != "0":
        with contextlib.suppress(InvalidArgument):
            return (_unix_ns(now) - go_duration(text)) // _NS * _NS  # Go: whole seconds
    local = not (any(c in text for c in "zZ+") or text.count("-") == 3)
    offset = now.utcoffset()
    try:
        return _go_parse(_layout(text, local), text,
                         int(offset.total_seconds()) if local and offset else 0)
    except _ParseError as exc:
        if "-" in text:  # a date that does not parse: Go's error as it is
            raise InvalidArgument(str(exc)) from None
    stamp = _unix_timestamp(text)
    if stamp is None:
        raise InvalidArgument(f"failed to parse value as time or duration: {_quote(text)}")
    return stamp


def _layout(text: str, local: bool) -> str:
    """The Go layout ``GetTimestamp`` picks for ``text`` (no zone in it when ``local``)."""
    zone = "" if local else "Z07:00"
    if "." in text:
        return "2006-01-02T15:04:05.999999999" + zone
    if "T" not in text:
        return "2006-01-02" + zone
    colons = text.count(":")
    if not local and not any(c in text for c in "zZ") and colons > 0:
        colons -= 1  # the zone's own colon
    return ("2006-01-02T15", "2006-01-02T15:04", "2006-01-02T15:04:05")[min(colons, 2)] + zone


def _label_matches(labels: Mapping[str, str], term: str) -> bool:
    key, sep, value = term.partition("=")
    return key in labels and (not sep or labels[key] == value)


def _unix_ns(moment: datetime) -> int:
    delta = moment.astimezone(UTC) - _EPOCH
    return (delta.days * 86400 + delta.seconds) * _NS + delta.microseconds * 1000


def _unix_timestamp(text: str) -> int | None:
    """moby's ``parseTimestamp``: ``seconds[.fraction]`` (Go integers) or None."""
    whole, dot, fraction = text.partition(".")
    seconds = _go_int(whole)
    if seconds is None:
        return None
    if not dot:
        return seconds * _NS
    nanos = _go_int(fraction)
    if nanos is None:
        return None
    return seconds * _NS + int(float(nanos) * 10.0 ** (9 - len(fraction)))


def _go_int(text: str) -> int | None:
    """``strconv.ParseInt(text, 10, 64)`` or None."""
    if not _GO_INT.fullmatch(text):
        return None
    value = int(text)
    return value if -_INT64 <= value < _INT64 else None


def _quote(text: str) -> str:
    """Go's ``%q`` (``strconv.Quote``)."""
    out = []
    for char in text:
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif char.isprintable():
            out.append(char)
        elif ord(char) < 0x80:
            out.append(f"\\x{ord(char):02x}")
        else:
            out.append(f"\\u{ord(char):04x}" if ord(char) < 0x10000 else f"\\U{ord(char):08x}")
    return '"' + "".join(out) + '"'


# --- Go 1.19's time.Parse, for the layouts above (on bytes, as Go) ---------------------------

class _ParseError(Exception):
    """Go's ``time.ParseError``, worded as Go 1.19 words it."""


@dataclass
class _Clock:
    """What the elements parsed so far said (Go's defaults: January 1st, 00:00:00)."""

    year: int = 0
    month: int = -1
    day: int = -1
    hour: int = 0
    minute: int = 0
    second: int = 0
    nsec: int = 0
    offset: int | None = None  # seconds east of UTC, when the text names a zone


def _time_quote(data: bytes) -> str:
    """The time package's ``quote``: a byte beyond ASCII or below a space as ``\\xNN``."""
    out = []
    for byte in data:
        if byte < 0x20 or byte >= 0x80:
            out.append(f"\\x{byte:02x}")
        else:
            out.append(("\\" if byte in b'"\\' else "") + chr(byte))
    return '"' + "".join(out) + '"'


def _cannot(layout: bytes, value: bytes, rest: bytes, element: bytes) -> _ParseError:
    return _ParseError(f"parsing time {_time_quote(value)} as {_time_quote(layout)}: cannot "
                       f"parse {_time_quote(rest)} as {_time_quote(element)}")


def _failed(value: bytes, message: str) -> _ParseError:
    return _ParseError(f"parsing time {_time_quote(value)}{message}")


_ELEMENTS = (b"2006", b"01", b"02", b"15", b"04", b"05", b".999999999", b"Z07:00")


def _next_chunk(layout: bytes) -> tuple[bytes, bytes, bytes]:
    """Go's ``nextStdChunk`` over the elements these layouts hold: (prefix, element, rest)."""
    for i in range(len(layout)):
        for element in _ELEMENTS:
            if layout.startswith(element, i):
                return layout[:i], element, layout[i + len(element):]
    return layout, b"", b""


def _go_parse(layout_text: str, text: str, default_offset: int) -> int:
    """Go 1.19's ``time.Parse`` (in a fixed zone ``default_offset`` seconds east of UTC when
    the value names none): unix nanoseconds, or ``_ParseError``."""
    layout, value = layout_text.encode(), text.encode("utf-8", "surrogatepass")
    clock, rest, todo = _Clock(), value, layout
    while True:
        prefix, element, todo = _next_chunk(todo)
        same = next((i for i in range(len(prefix)) if rest[i:i + 1] != prefix[i:i + 1]),
                    len(prefix))
        if same < len(prefix):
            raise _cannot(layout, value, rest[same:], prefix)
        rest = rest[len(prefix):]
        if not element:
            if rest:
                raise _failed(value, f": extra text: {_time_quote(rest)}")
            break
        rest, problem = _READERS[element](clock, rest, todo)
        if problem == "bad":
            raise _cannot(layout, value, rest, element)
        if problem:
            raise _failed(value, f": {problem} out of range")
    month, day = max(clock.month, 1), 1 if clock.day < 0 else clock.day
    if not 1 <= day <= _days_in(month, clock.year):
        raise _failed(value, ": day out of range")
    offset = default_offset if clock.offset is None else clock.offset
    seconds = (_days_from_civil(clock.year, month, day) * 86400 + clock.hour * 3600
               + clock.minute * 60 + clock.second - offset)
    return seconds * _NS + clock.nsec


def _digit(data: bytes, i: int) -> bool:
    return data[i:i + 1].isdigit()


def _getnum(data: bytes, fixed: bool) -> tuple[int | None, bytes]:
    """Go's ``getnum``: one or two digits (two when ``fixed``); None and ``data`` if not."""
    if not _digit(data, 0) or (fixed and not _digit(data, 1)):
        return None, data
    width = 2 if _digit(data, 1) else 1
    return int(data[:width]), data[width:]


# A reader takes (clock, rest of the value, rest of the layout) and returns the value left and
# "" (read), "bad" (cannot parse) or the name of the field out of range.
_Reader = Callable[[_Clock, bytes, bytes], tuple[bytes, str]]


def _read_year(clock: _Clock, rest: bytes, _: bytes) -> tuple[bytes, str]:
    if len(rest) < 4 or not _digit(rest, 0):
        return rest, "bad"
    if not rest[:4].isdigit():
        return rest[4:], "bad"  # Go had taken the four bytes already
    clock.year = int(rest[:4])
    return rest[4:], ""


def _number(name: str, fixed: bool, low: int, limit: int) -> _Reader:
    """A reader of one or two digits into ``_Clock.<name>``, out of range outside [low, limit)."""
    def read(clock: _Clock, rest: bytes, layout: bytes) -> tuple[bytes, str]:
        number, rest = _getnum(rest, fixed)
        if number is None:
            return rest, "bad"
        setattr(clock, name, number)
        if not low <= number < limit:
            return rest, name
        return (_second_fraction(clock, rest, layout) if name == "second" else rest), ""
    return read


def _second_fraction(clock: _Clock, rest: bytes, layout: bytes) -> bytes:
    """A fraction after the seconds that the layout does not hold: taken all the same."""
    if (len(rest) < 2 or rest[:1] not in (b".", b",") or not _digit(rest, 1)
            or _next_chunk(layout)[1] == b".999999999"):
        return rest
    end = 2
    while _digit(rest, end):
        end += 1
    clock.nsec = _nanoseconds(rest, end)
    return rest[end:]


def _read_fraction(clock: _Clock, rest: bytes, _: bytes) -> tuple[bytes, str]:
    if len(rest) < 2 or rest[:1] not in (b".", b",") or not _digit(rest, 1):
        return rest, ""  # no fraction: fine
    digits = 0
    while digits < 9 and _digit(rest, digits + 1):
        digits += 1
    clock.nsec = _nanoseconds(rest, 1 + digits)
    return rest[1 + digits:], ""


def _nanoseconds(data: bytes, end: int) -> int:
    """Go's ``parseNanoseconds``: the digits after the separator, at most nine, scaled."""
    return int(data[1:min(end, 10)].ljust(9, b"0"))


def _read_zone(clock: _Clock, rest: bytes, _: bytes) -> tuple[bytes, str]:
    if rest[:1] == b"Z":
        clock.offset = 0
        return rest[1:], ""
    if len(rest) < 6 or rest[3:4] != b":":
        return rest, "bad"
    sign, hours, minutes = rest[:1], _getnum(rest[1:3], True)[0], _getnum(rest[4:6], True)[0]
    if hours is None or minutes is None or sign not in (b"+", b"-"):
        return rest[6:], "bad"  # Go had taken the six bytes already
    offset = (hours * 60 + minutes) * 60
    clock.offset = -offset if sign == b"-" else offset
    return rest[6:], ""


_READERS: dict[bytes, _Reader] = {
    b"2006": _read_year, b"01": _number("month", True, 1, 13),
    b"02": _number("day", True, 0, 100), b"15": _number("hour", False, 0, 24),
    b"04": _number("minute", True, 0, 60), b"05": _number("second", True, 0, 60),
    b".999999999": _read_fraction, b"Z07:00": _read_zone,
}


def _days_in(month: int, year: int) -> int:
    if month == 2 and year % 4 == 0 and (year % 100 != 0 or year % 400 == 0):
        return 29
    return (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)[month - 1]


def _days_from_civil(year: int, month: int, day: int) -> int:
    """Days from 1970-01-01 to a proleptic Gregorian date (any year, 0 too, as Go takes)."""
    year -= month <= 2
    era, year_of_era = divmod(year, 400)
    day_of_year = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    return era * 146097 + day_of_era - 719468
