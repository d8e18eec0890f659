"""The Engine: what every adapter (Docker API, AMQP agent) calls. It owns no I/O of its own."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from wharf.daemon.core.build.service import BuildService
from wharf.daemon.core.containers.execs import ExecService
from wharf.daemon.core.containers.service import ContainerService
from wharf.daemon.core.events import EventLog
from wharf.daemon.core.images.service import ImageService
from wharf.daemon.core.network.manager import Networks
from wharf.daemon.core.system import HostFacts, host_facts
from wharf.daemon.core.volumes.service import VolumeService


@dataclass
class Engine:
    """The daemon's services, built once by the composition root (``wharf.daemon.app``)."""

    daemon_id: str
    data_root: str
    images: ImageService
    containers: ContainerService
    execs: ExecService
    volumes: VolumeService
    events: EventLog
    registry_mirrors: list[str]
    insecure_registries: list[str]
    networks: Networks | None = None
    builds: BuildService | None = None
    default_runtime: str = "crun"
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    host: HostFacts = field(default_factory=host_facts)
