"""The cluster event stream: stored events replayed from an id, then live ones, through the
reader's filters and time window (:class:`EventQuery`).

Writers (the bus thread, the node sweeper) store an event and call :meth:`EventHub.notify` on
the loop; readers wait on the current generation's :class:`asyncio.Event`, so one notify wakes
every reader and none is missed between its replay and its wait.

The filters are ``docker events``' (``type``, ``event``, ``container``, ``image``, ``label``,
:func:`wharf.dockerapi.event_included`) and ``node``, the node an event happened on. The time
window is Docker's ``since``/``until`` in unix seconds, named ``since_time``/``until_time``
here because ``since`` is an event id on this route: an event is in it by its own ``timeNano``
(a node's clock for its containers' events, the gateway's for a node's ``up``/``down``), and a
followed stream ends once the gateway's clock passes ``until_time``.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from wharf.dockerapi import EVENT_FILTERS, check_event_filters, event_included, parse_filters
from wharf.errors import InvalidArgument
from wharf.gateway.store import ClusterStore

CLUSTER_EVENT_FILTERS = (*EVENT_FILTERS, "node")
# Docker's event types (github.com/docker/docker/api/types/events); the cluster has container
# and node events, but a filter on another type is a question with an empty answer, not an error.
EVENT_TYPES = ("builder", "config", "container", "daemon", "image", "network", "node",
               "plugin", "secret", "service", "volume")
UNIX_TIME = re.compile(r"[0-9]{1,12}(\.[0-9]{1,9})?")  # fullmatch: seconds[.fraction]


@dataclass(frozen=True)
class EventQuery:
    """What a reader asked for, checked: where the replay starts, the filters, the window."""

    after_id: int = 0
    filters: Mapping[str, list[str]] = field(default_factory=dict)
    since_nano: int | None = None
    until_nano: int | None = None
    replay: bool = True
    follow: bool = True

    def includes(self, document: Mapping[str, Any]) -> bool:
        stamp = int(document.get("timeNano") or 0)
        if self.since_nano is not None and stamp < self.since_nano:
            return False
        if self.until_nano is not None and stamp > self.until_nano:
            return False
        return event_included(document, self.filters)

    def left(self, now_nano: int) -> float | None:
        """Seconds of following left (None: no end)."""
        if self.until_nano is None:
            return None
        return max(0.0, (self.until_nano - now_nano) / 1e9)


def unix_nanos(name: str, text: str | None) -> int | None:
    """``seconds[.fraction]`` (what the docker CLI sends for ``--since``/``--until``) as
    nanoseconds, exactly."""
    if text is None or text == "":
        return None
    if not UNIX_TIME.fullmatch(text):
        raise InvalidArgument(f"{name}: {text!r} is not a unix time (seconds[.fraction])")
    whole, _, fraction = text.partition(".")
    return int(whole) * 1_000_000_000 + int(fraction.ljust(9, "0") or 0)


def event_query(since: int = 0, follow: bool = True, filters: str | None = None,
                since_time: str | None = None, until_time: str | None = None,
                replay: bool = True) -> EventQuery:
    """The query of ``GET /v1/events``; InvalidArgument (400) names what is wrong."""
    terms = parse_filters(filters)
    check_event_filters(terms, CLUSTER_EVENT_FILTERS)
    bad = [t for t in terms.get("type", []) if t not in EVENT_TYPES]
    if bad:
        raise InvalidArgument(f"invalid filter 'type={bad[0]}': the event types are "
                              f"{', '.join(EVENT_TYPES)}")
    return EventQuery(after_id=since, filters=terms, replay=replay, follow=follow,
                      since_nano=unix_nanos("since_time", since_time),
                      until_nano=unix_nanos("until_time", until_time))


def filters_schema() -> dict[str, Any]:
    """The OpenAPI ``filters`` parameter of ``GET /v1/events``: its keys and event types."""
    kind = {"type": "string", "enum": list(EVENT_TYPES)}
    anything = {"anyOf": [{"type": "object"}, {"type": "array"}, {"type": "string"}]}
    keys: dict[str, Any] = dict.fromkeys(CLUSTER_EVENT_FILTERS, anything)
    keys["type"] = {"anyOf": [{"type": "object", "propertyNames": kind},
                              {"type": "array", "items": kind}, kind]}
    return {"name": "filters", "in": "query", "required": False,
            "content": {"application/json": {"schema": {
                "type": "object", "properties": keys, "additionalProperties": False}}},
            "description": "docker events' filters, and node: "
                           '{"type": ["container"], "event": ["start"], "node": ["n1"]}'}


class EventHub:
    def __init__(self, store: ClusterStore) -> None:
        self.store = store
        self._changed = asyncio.Event()
        self._newest = 0  # an event id at or below the newest stored (read on)

    def notify(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def newest(self) -> int:
        """The id of the newest stored event (0 when there is none)."""
        while batch := self.store.events(self._newest):
            self._newest = batch[-1][0]
        return self._newest

    async def stream(self, query: EventQuery | int, follow: bool = True
                     ) -> AsyncIterator[tuple[int, dict[str, Any]]]:
        """The events the query asks for (an id: every event after it), in id order; when
        following, ends at the query's ``until`` (never without one)."""
        if isinstance(query, int):
            query = EventQuery(after_id=query, follow=follow)
        last = query.after_id if query.replay else max(query.after_id, self.newest())
        while True:
            changed = self._changed  # before reading: a write after the read wakes us
            batch = self.store.events(last)
            for event_id, document in batch:
                last = event_id
                if query.includes(document):
                    yield event_id, document
            if batch:
                continue
            left = query.left(time.time_ns())
            if not query.follow or left == 0.0:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), left)
