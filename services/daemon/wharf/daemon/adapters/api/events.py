"""``GET /events``: replay from ``since`` and live events, in Docker's JSON shape."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from wharf.daemon.adapters.api.params import Filters
from wharf.daemon.adapters.api.streaming import StreamingReply
from wharf.daemon.core.events import Event, EventLog
from wharf.dockerapi import EVENT_FILTERS, check_event_filters, event_included, parse_time

router = APIRouter()
_LEGACY = {"container", "image"}  # these types also carry status/id/from


def docker_event(event: Event) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if event.type in _LEGACY:
        out.update(status=event.action, id=event.actor_id,
                   **({"from": event.attributes["image"]} if "image" in event.attributes else {}))
    out.update({
        "Type": event.type, "Action": event.action,
        "Actor": {"ID": event.actor_id, "Attributes": event.attributes},
        "scope": "local", "time": event.time_nano // 1_000_000_000, "timeNano": event.time_nano,
    })
    return out


def matches(event: Event, filters: dict[str, list[str]]) -> bool:
    """Whether ``event`` passes ``filters`` (:func:`wharf.dockerapi.event_included`)."""
    return event_included(docker_event(event), filters)


def _nanos(value: str | None) -> int | None:
    """Docker's since/until: unix seconds (fraction allowed), RFC 3339, or a duration ago."""
    if not value:
        return None
    try:
        return int(float(value) * 1e9)
    except ValueError:
        pass
    units = {"s": 1, "m": 60, "h": 3600}
    if value[-1] in units and value[:-1].replace(".", "", 1).isdigit():
        return time.time_ns() - int(float(value[:-1]) * units[value[-1]] * 1e9)
    return int(parse_time(value).timestamp() * 1e9)


@router.get("/events")
async def events(request: Request, filters: Filters, since: str | None = None,
                 until: str | None = None) -> Response:
    log: EventLog = request.app.state.engine.events
    check_event_filters(filters, EVENT_FILTERS)  # 400 before streaming
    stream = log.stream(_nanos(since), _nanos(until))

    async def body() -> AsyncIterator[bytes]:
        async for event in stream:
            if matches(event, filters):
                yield json.dumps(docker_event(event)).encode() + b"\n"

    return StreamingReply(body(), media_type="application/json")
