"""Query-string and header parsing exactly as dockerd does it."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Request

from wharf.errors import InvalidArgument

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


def filters_dep(request: Request) -> dict[str, list[str]]:
    return parse_filters(request.query_params.get("filters"))


Filters = Annotated[dict[str, list[str]], Depends(filters_dep)]


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
