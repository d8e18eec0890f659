"""ContainerService: create, start, stop, kill, remove, wait and restart containers.

Each container runs under its own conmon (so it outlives wharfd); the service watches conmon's
exit file with one asyncio task per running container, records the exit, applies ``--rm`` and
restart policies, and wakes waiters. Lifecycle operations on one container are serialised by a
per-container lock; the state machine (``lifecycle``) decides what is allowed.

The service is the face of parts that share one ``ContainerContext`` (``context``):
``operations`` (create, start, stop, kill, restart, pause, remove, rename, prune, wait),
``exits`` (exit watching, restart policies, waiters, live-restore), ``probes`` (the health
checks; their state machine is ``health``), ``networking`` (network set-up and teardown,
``network connect``/``disconnect``) and ``containerio`` (logs, attach, resize).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from wharf.daemon.core.containers.bundle import Bundles
from wharf.daemon.core.containers.containerio import ATTACH_GRACE, ContainerIO
from wharf.daemon.core.containers.context import ContainerContext, now
from wharf.daemon.core.containers.networking import ContainerNetworking
from wharf.daemon.core.containers.operations import Operations, parse_signal
from wharf.daemon.core.containers.probes import ProbeRunner
from wharf.daemon.core.containers.records import ContainerRecord, ContainerRecords
from wharf.daemon.core.events import EventLog
from wharf.daemon.core.images.store import ImageStore
from wharf.daemon.core.network.service import NetworkService
from wharf.daemon.core.phases import Phases
from wharf.daemon.core.prunefilter import PruneFilter
from wharf.daemon.core.runtime import logs
from wharf.daemon.core.runtime.attach import AttachConnection
from wharf.daemon.core.runtime.monitor import ConmonRuntime
from wharf.daemon.core.volumes.service import VolumeService

__all__ = ["ATTACH_GRACE", "ContainerService", "now", "parse_signal"]


class ContainerService:
    """The container half of the engine."""

    def __init__(self, records: ContainerRecords, images: ImageStore, runtime: ConmonRuntime,
                 bundles: Bundles, events: EventLog,
                 others: dict[str, ConmonRuntime] | None = None,
                 volumes: VolumeService | None = None,
                 network: NetworkService | None = None) -> None:
        ctx = ContainerContext(records, images, runtime, bundles, events, others, volumes,
                               network)
        # the same objects the parts work on
        self.records = ctx.records
        self.volumes = ctx.volumes
        self.network = ctx.network
        self.images = ctx.images
        self.runtime = ctx.runtime  # the default; paths (logs, exit files, sockets) are shared
        self.runtimes = ctx.runtimes
        self.bundles = ctx.bundles
        self.events = ctx.events
        self._ctx = ctx
        self._networking = ContainerNetworking(ctx)
        self._io = ContainerIO(ctx)
        self._ops = Operations(ctx, self._networking, self._io)
        self._exits = self._ops.exits
        images.users = records.using_image

    @property
    def phases(self) -> Phases:
        """How long the run path's steps took (``GET /system/phases``)."""
        return self._ctx.phases

    def _rt(self, record: ContainerRecord) -> ConmonRuntime:
        """The OCI runtime this container was created with (``--runtime``)."""
        return self._ctx.rt(record)

    def _event(self, record: ContainerRecord, action: str, **extra: str) -> None:
        self._ctx.event(record, action, **extra)

    # --- queries ------------------------------------------------------------------------------

    def get(self, text: str) -> ContainerRecord:
        return self.records.resolve(text)

    def list_containers(self) -> list[ContainerRecord]:
        return self.records.all()

    # --- lifecycle (operations) ---------------------------------------------------------------

    def create(self, body: dict[str, Any], name: str | None) -> ContainerRecord:
        """Record a new container from a Docker create body; nothing runs yet."""
        return self._ops.create(body, name)

    async def start(self, text: str) -> None:
        await self._ops.start(text)

    async def stop(self, text: str, timeout: int | None = None,
                   signal: str | None = None) -> None:
        await self._ops.stop(text, timeout, signal)

    async def kill(self, text: str, signal: str | None = None) -> None:
        await self._ops.kill(text, signal)

    async def restart(self, text: str, timeout: int | None = None) -> None:
        await self._ops.restart(text, timeout)

    async def wait(self, text: str, condition: str = "not-running") -> int:
        """Docker's wait: not-running (default), next-exit or removed; returns the exit code."""
        return await self._ops.wait(text, condition)

    async def remove(self, text: str, *, force: bool = False, volumes: bool = False) -> None:
        """Remove a container (``force``: kill it first); ``volumes``: its anonymous volumes
        too (``rm -v``). Its use of volumes ends with its record."""
        await self._ops.remove(text, force=force, volumes=volumes)

    async def pause(self, text: str, *, resume: bool = False) -> None:
        """Freeze (or thaw) every process of the container through the runtime's cgroup."""
        await self._ops.pause(text, resume=resume)

    def rename(self, text: str, new_name: str) -> None:
        self._ops.rename(text, new_name)

    async def prune(self, wanted: PruneFilter) -> tuple[list[str], int]:
        """Remove the stopped containers ``wanted`` matches: (their ids, bytes reclaimed)."""
        return await self._ops.prune(wanted)

    # --- networking ---------------------------------------------------------------------------

    async def connect(self, network_ref: str, text: str, ip: str | None,
                      aliases: list[str]) -> None:
        """``network connect``: now when the container runs, else at its next start."""
        await self._networking.connect(network_ref, text, ip, aliases)

    async def disconnect(self, network_ref: str, text: str, force: bool = False) -> None:
        """``network disconnect``: detach now (running) and forget it for the next start."""
        await self._networking.disconnect(network_ref, text, force)

    # --- health checks ------------------------------------------------------------------------

    def use_prober(self, runner: ProbeRunner) -> None:
        """Run the HEALTHCHECKs with ``runner`` (the exec service; until then none runs)."""
        self._ops.health.runner = runner

    # --- daemon start-up: live-restore ---------------------------------------------------------

    async def restore(self) -> None:
        """Reconcile records with conmon and the exit files after a daemon (re)start."""
        await self._exits.restore()

    async def close(self) -> None:
        """Stop watching (containers keep running: live-restore)."""
        await self._exits.close()

    # --- container I/O: what the adapters use instead of reaching the runtime ---------------

    def announce_attacher(self, container_id: str) -> tuple[asyncio.Event, asyncio.Event]:
        """For an attach before start: (socket ready, I am connected)."""
        return self._io.announce_attacher(container_id)

    def log_path(self, record: ContainerRecord) -> Path:
        return self._io.log_path(record)

    def container_dir(self, record: ContainerRecord) -> Path:
        return self._io.container_dir(record)

    def upper_dir(self, record: ContainerRecord) -> Path:
        return self._io.upper_dir(record)

    def read_logs(self, record: ContainerRecord, **options: Any) -> list[logs.LogEntry]:
        """The log's entries, oldest first (options: stdout, stderr, since, until, tail)."""
        return self._io.read_logs(record, **options)

    def follow_logs(self, record: ContainerRecord, **options: Any
                    ) -> AsyncIterator[logs.LogEntry]:
        """The entries, then new ones as they come, until the container stops."""
        return self._io.follow_logs(record, **options)

    def log_page(self, record: ContainerRecord, cursor: tuple[int, int] | None,
                 **options: Any) -> logs.LogPage:
        """The log from ``cursor`` on (options: tail, since, flush)."""
        return self._io.log_page(record, cursor, **options)

    def resize(self, record: ContainerRecord, height: int, width: int) -> None:
        self._io.resize(record, height, width)

    async def open_attach(self, record: ContainerRecord) -> AttachConnection:
        """A connection to the container's attach socket (conmon's)."""
        return await self._io.open_attach(record)

    def is_running(self, container_id: str) -> Callable[[], bool]:
        return self._io.is_running(container_id)
