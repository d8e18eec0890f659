"""Container I/O: logs, the attach socket, terminal resize, and the attachers that announce
themselves before a container starts. What the adapters use instead of reaching the runtime."""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from wharf.daemon.core.containers.context import ContainerContext
from wharf.daemon.core.containers.lifecycle import Status
from wharf.daemon.core.containers.records import ContainerRecord
from wharf.daemon.core.runtime import logs, rootfs
from wharf.daemon.core.runtime.attach import AttachConnection
from wharf.errors import NotFound

ATTACH_GRACE = 2.0  # seconds start() waits for announced attachers to connect


class ContainerIO:
    """Logs, attach and resize of the containers in ``ctx``."""

    def __init__(self, ctx: ContainerContext) -> None:
        self.ctx = ctx
        self._created: defaultdict[str, asyncio.Event] = defaultdict(asyncio.Event)
        self._attachers: defaultdict[str, list[asyncio.Event]] = defaultdict(list)

    # --- attach before start --------------------------------------------------------------------

    async def let_attachers_in(self, container_id: str) -> None:
        """Wake attachers waiting for the attach socket; give them a moment to connect."""
        self._created[container_id].set()
        waiting = list(self._attachers.pop(container_id, []))
        if waiting:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*(e.wait() for e in waiting)),
                                       ATTACH_GRACE)
        self._created.pop(container_id, None)

    def release_attachers(self, container_id: str) -> None:
        self._created.pop(container_id, asyncio.Event()).set()
        self._attachers.pop(container_id, None)

    def announce_attacher(self, container_id: str) -> tuple[asyncio.Event, asyncio.Event]:
        """For an attach before start: (socket ready, I am connected)."""
        connected = asyncio.Event()
        self._attachers[container_id].append(connected)
        return self._created[container_id], connected

    # --- logs, attach, resize -------------------------------------------------------------------

    def log_path(self, record: ContainerRecord) -> Path:
        return self.ctx.runtime.log_path(record.id)

    def container_dir(self, record: ContainerRecord) -> Path:
        return self.ctx.bundles.dir(record.id)

    def upper_dir(self, record: ContainerRecord) -> Path:
        """The container's overlay upper dir (absent until its first start)."""
        return rootfs.OverlayPaths(self.container_dir(record) / "rootfs").upper

    def read_logs(self, record: ContainerRecord, **options: Any) -> list[logs.LogEntry]:
        """The log's entries, oldest first (options: stdout, stderr, since, until, tail)."""
        return logs.read_logs(self.log_path(record), **options)

    def follow_logs(self, record: ContainerRecord, **options: Any
                    ) -> AsyncIterator[logs.LogEntry]:
        """The entries, then new ones as they come, until the container stops."""
        running = self.is_running(record.id)
        return logs.follow_logs(self.log_path(record), finished=lambda: not running(),
                                **options)

    def log_page(self, record: ContainerRecord, cursor: tuple[int, int] | None,
                 **options: Any) -> logs.LogPage:
        """The log from ``cursor`` on, for a follower that asks again and again (options:
        tail, since, flush)."""
        return logs.read_page(self.log_path(record), cursor, **options)

    def resize(self, record: ContainerRecord, height: int, width: int) -> None:
        self.ctx.runtime.resize(record.id, height, width)

    async def open_attach(self, record: ContainerRecord) -> AttachConnection:
        """A connection to the container's attach socket (conmon's)."""
        return await AttachConnection.open(self.ctx.runtime.attach_socket(record.id))

    def is_running(self, container_id: str) -> Callable[[], bool]:
        def running() -> bool:
            try:
                return self.ctx.records.get(container_id).state.status in (
                    Status.RUNNING, Status.PAUSED, Status.RESTARTING)
            except NotFound:
                return False
        return running
