"""The cluster event stream: stored events replayed from an id, then live ones.

Writers (the bus thread, the node sweeper) store an event and call :meth:`EventHub.notify` on
the loop; readers wait on the current generation's :class:`asyncio.Event`, so one notify wakes
every reader and none is missed between its replay and its wait.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from wharf.gateway.store import ClusterStore


class EventHub:
    def __init__(self, store: ClusterStore) -> None:
        self.store = store
        self._changed = asyncio.Event()

    def notify(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def stream(self, after_id: int, follow: bool = True
                     ) -> AsyncIterator[tuple[int, dict[str, Any]]]:
        last = after_id
        while True:
            changed = self._changed  # before reading: a write after the read wakes us
            batch = self.store.events(last)
            for event_id, document in batch:
                last = event_id
                yield event_id, document
            if batch:
                continue
            if not follow:
                return
            await changed.wait()
