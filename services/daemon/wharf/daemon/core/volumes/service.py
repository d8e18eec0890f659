"""VolumeService: the volume half of the engine (store + events), and what containers need.

Events are emitted on the daemon's loop (the event log's live subscribers are asyncio queues),
so the slow parts (deleting data, copying an image's content) run in worker threads and the
events follow on the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from wharf.daemon.core.events import EventLog
from wharf.daemon.core.prunefilter import PruneFilter
from wharf.daemon.core.volumes import populate
from wharf.daemon.core.volumes.filters import VolumeFilter
from wharf.daemon.core.volumes.mountspec import MountPoint
from wharf.daemon.core.volumes.store import Volume, VolumeStore
from wharf.errors import Conflict, InvalidArgument, NotFound

PRUNE_KEYS = ("all",)  # volume prune's own key, besides label and label! (no until)


class VolumeService:
    """Volumes for the Docker API and for the container service."""

    def __init__(self, store: VolumeStore, events: EventLog) -> None:
        self.store = store
        self.events = events

    # --- the volume API ----------------------------------------------------------------------

    def create(self, name: str | None, driver: str = "",
               options: Mapping[str, str] | None = None,
               labels: Mapping[str, str] | None = None) -> Volume:
        """Create (or find, for the same name and driver) a volume; ``create`` event if new."""
        volume, created = self.store.create(name, driver, options, labels)
        if created:
            self._event(volume, "create")
        return volume

    def get(self, name: str) -> Volume:
        return self.store.get(name)

    def find(self, filters: Mapping[str, list[str]]) -> list[Volume]:
        wanted = VolumeFilter.parse(filters) if filters else None
        return self.store.find(wanted)

    def users(self, name: str) -> list[str]:
        return self.store.users(name)

    async def remove(self, name: str, *, force: bool = False) -> None:
        """Remove an unused volume (``force``: a missing one is fine; in use is still 409)."""
        try:
            volume = self.store.get(name)
        except NotFound:
            if force:
                return
            raise
        await asyncio.to_thread(self.store.remove, name, force=force)
        self._event(volume, "destroy")

    async def prune(self, wanted: PruneFilter) -> tuple[list[str], int]:
        """Remove every unused volume (all of them at API 1.41) whose labels ``wanted``
        matches (``prunefilter.parse(..., extra=PRUNE_KEYS, until=False)``); ``all`` (API 1.42)
        is checked and ignored."""
        for value in wanted.extra.get("all", ()):
            if value.lower() not in ("true", "1", "false", "0"):
                raise InvalidArgument(f"invalid filter 'all={value}'")
        before = {v.name: v for v in self.store.all()}
        removed, space = await asyncio.to_thread(self.store.prune, _PruneSelection(wanted))
        for name in removed:
            self._event(before[name], "destroy")
        return removed, space

    # --- containers ----------------------------------------------------------------------------

    def attach(self, container_id: str, mounts: Iterable[MountPoint]) -> list[MountPoint]:
        """Create the container's new volumes and record its use of them (caller's tx)."""
        known = {v.name for v in self.store.all()}
        attached = self.store.attach(container_id, mounts)
        for mount in attached:
            if mount.type == "volume" and mount.name not in known:
                known.add(mount.name)
                self._event(self.store.get(mount.name), "create")
        return attached

    def prepare(self, mounts: Iterable[MountPoint], rootfs: Path) -> None:
        """Before a start: mount tmpfs/bind volumes, seed new volumes from the image at their
        path (unless ``nocopy``), create missing ``-v`` bind sources as directories."""
        for mount in mounts:
            if mount.type == "volume":
                data = self.store.activate(mount.name)
                if mount.copy_data:
                    populate.seed(rootfs, mount.destination, data)
            elif mount.type == "bind" and mount.create_source and not os.path.lexists(
                    mount.source):
                os.makedirs(mount.source, mode=0o755, exist_ok=True)

    async def release(self, mounts: Iterable[MountPoint]) -> None:
        """After ``rm -v`` (or ``--rm``): remove the container's anonymous volumes that no other
        container uses. Named volumes are never removed with a container."""
        for mount in mounts:
            if mount.type == "volume" and mount.anonymous:
                with contextlib.suppress(Conflict, NotFound):
                    await self.remove(mount.name)

    def _event(self, volume: Volume, action: str) -> None:
        self.events.emit("volume", action, volume.name, driver=volume.driver)


class _PruneSelection(VolumeFilter):
    """dockerd's prune filters in the shape the store's prune loop takes (a VolumeFilter)."""

    def __init__(self, wanted: PruneFilter) -> None:
        super().__init__()
        self.wanted = wanted

    def matches(self, name: str, driver: str, labels: Mapping[str, str], in_use: bool) -> bool:
        return not in_use and self.wanted.matches_labels(labels)
