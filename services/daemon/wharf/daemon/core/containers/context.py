"""What the parts of ContainerService share: its stores and runtimes, the per-container locks
and the container event helper."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from wharf.daemon.core.containers.bundle import Bundles
from wharf.daemon.core.containers.records import ContainerRecord, ContainerRecords
from wharf.daemon.core.events import EventLog
from wharf.daemon.core.images.store import ImageStore
from wharf.daemon.core.network.service import NetworkService
from wharf.daemon.core.phases import Phases
from wharf.daemon.core.runtime.monitor import ConmonRuntime
from wharf.daemon.core.volumes.service import VolumeService
from wharf.errors import InvalidArgument


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


class ContainerContext:
    """The stores, runtimes and services the container parts work on. Lifecycle operations on
    one container are serialised by its lock in ``locks``."""

    def __init__(self, records: ContainerRecords, images: ImageStore, runtime: ConmonRuntime,
                 bundles: Bundles, events: EventLog,
                 others: dict[str, ConmonRuntime] | None = None,
                 volumes: VolumeService | None = None,
                 network: NetworkService | None = None) -> None:
        self.records = records
        self.volumes = volumes
        self.network = network
        self.images = images
        self.runtime = runtime  # the default; paths (logs, exit files, sockets) are shared
        self.runtimes = {runtime.oci.kind.value: runtime, **(others or {})}
        self.bundles = bundles
        self.events = events
        self.locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self.phases = Phases()  # how long the run path's steps take (GET /system/phases)

    def rt(self, record: ContainerRecord) -> ConmonRuntime:
        """The OCI runtime this container was created with (``--runtime``)."""
        return self.runtimes.get(record.runtime, self.runtime)

    def runtime_name(self, host: dict[str, Any]) -> str:
        name = str(host.get("Runtime") or self.runtime.oci.kind.value)
        if name not in self.runtimes:
            raise InvalidArgument(f"unknown or invalid runtime name: {name}")
        return name

    def volume_service(self) -> VolumeService:
        if self.volumes is None:
            raise InvalidArgument("volumes are not available on this wharfd")
        return self.volumes

    def event(self, record: ContainerRecord, action: str, **extra: str) -> None:
        labels = {str(k): str(v) for k, v in (record.config.get("Labels") or {}).items()}
        self.events.emit("container", action, record.id, image=record.image,
                         name=record.name, **labels, **extra)
