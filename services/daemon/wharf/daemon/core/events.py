"""Events: recorded in the state store for replay and fanned out to live subscribers.

Docker's shape (``Type``, ``Action``, ``Actor{ID, Attributes}``, ``time``, ``timeNano``, and
for containers and images the legacy ``status``/``id``/``from``) is built by the API adapter;
this module keeps the facts. At most ``keep`` events are kept (oldest dropped), as dockerd keeps
a bounded log.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field

from wharf.daemon.core.state import StateStore


@dataclass(frozen=True)
class Event:
    seq: int
    time_nano: int
    type: str
    action: str
    actor_id: str
    attributes: dict[str, str] = field(default_factory=dict)


class EventLog:
    """Append-only event log with live subscribers (asyncio queues, one per subscriber)."""

    def __init__(self, state: StateStore, keep: int = 10_000) -> None:
        self.state = state
        self.keep = keep
        self._subscribers: set[asyncio.Queue[Event]] = set()
        self._listeners: list[Callable[[Event], None]] = []

    def add_listener(self, listener: Callable[[Event], None]) -> None:
        """Call ``listener`` with every new event, on the emitting thread, after it is stored
        (the control-plane agent forwards events this way); it must not block."""
        self._listeners.append(listener)

    def last_seq(self) -> int:
        """The sequence number of the newest stored event (0 when there is none)."""
        with self.state.tx() as db:
            row = db.execute("SELECT MAX(seq) FROM events").fetchone()
        return int(row[0] or 0)

    def emit(self, type_: str, action: str, actor_id: str, **attributes: str) -> Event:
        now = time.time_ns()
        with self.state.tx() as db:
            cursor = db.execute(
                "INSERT INTO events (time_nano, type, action, actor_id, attributes)"
                " VALUES (?,?,?,?,?)",
                (now, type_, action, actor_id, json.dumps(attributes)),
            )
            seq = int(cursor.lastrowid or 0)
            if seq % 1000 == 0:
                db.execute("DELETE FROM events WHERE seq <= ?", (seq - self.keep,))
        event = Event(seq, now, type_, action, actor_id, dict(attributes))
        for queue in list(self._subscribers):
            queue.put_nowait(event)
        for listener in self._listeners:
            listener(event)
        return event

    def history(self, since_nano: int | None, until_nano: int | None) -> Iterator[Event]:
        with self.state.tx() as db:
            rows = db.execute(
                "SELECT * FROM events WHERE time_nano >= ? AND time_nano <= ? ORDER BY seq",
                (since_nano or 0, until_nano if until_nano is not None else 2**63 - 1),
            ).fetchall()
        for row in rows:
            yield Event(int(row["seq"]), int(row["time_nano"]), str(row["type"]),
                        str(row["action"]), str(row["actor_id"]), json.loads(row["attributes"]))

    async def stream(self, since_nano: int | None, until_nano: int | None
                     ) -> AsyncIterator[Event]:
        """Past events (when ``since`` is given), then live ones until ``until`` passes."""
        queue: asyncio.Queue[Event] = asyncio.Queue()
        self._subscribers.add(queue)  # subscribe first: nothing falls between replay and live
        try:
            last = 0
            if since_nano is not None:
                for event in self.history(since_nano, until_nano):
                    last = event.seq
                    yield event
            while True:
                timeout = None
                if until_nano is not None:
                    timeout = max(0.0, (until_nano - time.time_ns()) / 1e9)
                try:
                    event = await asyncio.wait_for(queue.get(), timeout)
                except TimeoutError:
                    return
                if event.seq > last:
                    yield event
        finally:
            self._subscribers.discard(queue)
