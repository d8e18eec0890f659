"""Volumes in the state store (``volumes``, ``volume_refs``) and under ``<data-root>/volumes``.

Invariants:
- A volume's data is ``<root>/<name>/_data``; its row exists exactly while it may be used.
- ``volume_refs`` holds one row per (volume, container) that uses it; a ref goes with its
  container's row (ON DELETE CASCADE), so removing a container frees its volumes.
- A volume with refs is never removed, ``force`` or not (dockerd's rule).
- Nothing is deleted under ``_data`` while something is mounted there: a bind volume's data
  is the user's directory.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from wharf import ids
from wharf.daemon.core.runtime.rootfs import is_mounted
from wharf.daemon.core.state import StateStore
from wharf.daemon.core.volumes import hostmount
from wharf.daemon.core.volumes import options as vopts
from wharf.daemon.core.volumes.filters import VolumeFilter
from wharf.daemon.core.volumes.mountspec import MountPoint
from wharf.errors import Conflict, Internal, NotFound


@dataclass(frozen=True)
class Volume:
    """A volume as recorded; ``mountpoint`` is its ``_data`` dir."""

    name: str
    driver: str
    created_at: str
    mountpoint: Path
    labels: dict[str, str] = field(default_factory=dict)
    options: dict[str, str] = field(default_factory=dict)
    anonymous: bool = False


class VolumeStore:
    """Create, find, use and remove volumes under ``root``."""

    def __init__(self, state: StateStore, root: Path) -> None:
        self.state = state
        self.root = root

    def data_dir(self, name: str) -> Path:
        return self.root / name / "_data"

    # --- create and read ---------------------------------------------------------------------

    def create(self, name: str | None = None, driver: str = "",
               options: Mapping[str, str] | None = None,
               labels: Mapping[str, str] | None = None, *,
               anonymous: bool = False) -> tuple[Volume, bool]:
        """A new volume, or the existing one of that name (dockerd's idempotent create).

        Returns (volume, created). A nameless volume gets a random 64-hex name; only the
        volumes a container creates for itself are ``anonymous`` (``rm -v`` removes those).

        Raises:
            InvalidArgument: a bad name or driver option.
            NotFound: a driver other than ``local``.
            Conflict: the name exists with another driver.
        """
        name = vopts.validate_name(name) if name else ids.new_id()
        driver = vopts.check_driver(name, driver)
        opts = dict(options or {})
        vopts.local_options(name, opts)
        tags = dict(labels or {})
        if anonymous:
            tags.setdefault(vopts.ANONYMOUS_LABEL, "")
        with self.state.tx() as db:
            row = db.execute("SELECT * FROM volumes WHERE name = ?", (name,)).fetchone()
            if row is not None:
                existing = self._volume(row)
                if existing.driver != driver:
                    raise Conflict(f"create {name}: volume name must be unique")
                return existing, False
            data = self.data_dir(name)
            self.root.mkdir(mode=0o701, parents=True, exist_ok=True)
            data.mkdir(mode=0o755, parents=True, exist_ok=True)
            created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            db.execute("INSERT INTO volumes (name, driver, created_at, labels, options, anonymous)"
                       " VALUES (?,?,?,?,?,?)",
                       (name, driver, created, json.dumps(tags), json.dumps(opts),
                        int(anonymous)))
        return Volume(name, driver, created, data, tags, opts, anonymous), True

    def get(self, name: str) -> Volume:
        """Raises NotFound (``get N: no such volume``)."""
        with self.state.tx() as db:
            row = db.execute("SELECT * FROM volumes WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise NotFound(f"get {name}: no such volume")
        return self._volume(row)

    def all(self) -> list[Volume]:
        with self.state.tx() as db:
            rows = db.execute("SELECT * FROM volumes ORDER BY name").fetchall()
        return [self._volume(r) for r in rows]

    def users(self, name: str) -> list[str]:
        """IDs of the containers (running or not) that use the volume."""
        with self.state.tx() as db:
            rows = db.execute("SELECT container_id FROM volume_refs WHERE volume = ?"
                              " ORDER BY container_id", (name,)).fetchall()
        return [str(r[0]) for r in rows]

    def in_use(self) -> set[str]:
        with self.state.tx() as db:
            return {str(r[0]) for r in db.execute("SELECT DISTINCT volume FROM volume_refs")}

    def find(self, wanted: VolumeFilter | None = None) -> list[Volume]:
        volumes = self.all()
        if wanted is None:
            return volumes
        used = self.in_use()
        return [v for v in volumes if wanted.matches(v.name, v.driver, v.labels, v.name in used)]

    def _volume(self, row: sqlite3.Row) -> Volume:
        return Volume(name=row["name"], driver=row["driver"], created_at=row["created_at"],
                      mountpoint=self.data_dir(row["name"]), labels=json.loads(row["labels"]),
                      options=json.loads(row["options"]), anonymous=bool(row["anonymous"]))

    # --- use by containers -------------------------------------------------------------------

    def attach(self, container_id: str, mounts: Iterable[MountPoint]) -> list[MountPoint]:
        """Create the volumes ``mounts`` name (if new) and record that the container uses them.

        Call inside the transaction that inserts the container's row. Returns the mounts with
        each volume's ``source`` and ``driver`` filled in.
        """
        out = []
        with self.state.tx() as db:
            for mount in mounts:
                if mount.type != "volume":
                    out.append(mount)
                    continue
                volume, _ = self.create(mount.name, mount.driver, mount.driver_opts,
                                        mount.labels, anonymous=mount.anonymous)
                db.execute("INSERT OR IGNORE INTO volume_refs (volume, container_id)"
                           " VALUES (?,?)", (volume.name, container_id))
                out.append(mount.model_copy(update={"source": str(volume.mountpoint),
                                                    "driver": volume.driver}))
        return out

    def activate(self, name: str) -> Path:
        """Mount a tmpfs/bind volume's filesystem if needed; the volume's ``_data``."""
        volume = self.get(name)
        volume.mountpoint.mkdir(parents=True, exist_ok=True)
        hostmount.mount(vopts.local_options(name, volume.options), volume.mountpoint)
        return volume.mountpoint

    # --- remove ------------------------------------------------------------------------------

    def remove(self, name: str, *, force: bool = False) -> int:
        """Delete an unused volume and its data; the bytes freed.

        With ``force`` a missing volume is not an error and a volume whose filesystem cannot
        be unmounted loses its record (its directory stays).

        Raises:
            NotFound: no such volume (without ``force``).
            Conflict: a container uses it (always, as dockerd).
            Internal: its filesystem cannot be unmounted (without ``force``).
        """
        try:
            volume = self.get(name)
        except NotFound:
            if force:
                return 0
            raise
        self._refuse_if_used(name)
        try:
            hostmount.unmount(volume.mountpoint)
        except Internal:
            if not force:
                raise
        # Moved aside in the transaction that drops the row: a volume created again under this
        # name right after gets a fresh directory, never one being deleted.
        trash = self.root / f".removing-{name}-{ids.new_id()[:8]}"
        with self.state.tx() as db:
            self._refuse_if_used(name)
            db.execute("DELETE FROM volumes WHERE name = ?", (name,))
            if volume.mountpoint.parent.exists():
                os.rename(volume.mountpoint.parent, trash)
        data = trash / "_data"
        if data.exists() and is_mounted(data):
            return 0  # never delete through a mount (the dir stays, named .removing-…)
        size = dir_size(data)
        shutil.rmtree(trash, ignore_errors=True)
        return size

    def _refuse_if_used(self, name: str) -> None:
        users = self.users(name)
        if users:
            raise Conflict(f"remove {name}: volume is in use - [{', '.join(users)}]")

    def prune(self, wanted: VolumeFilter) -> tuple[list[str], int]:
        """Remove every unused volume the filter matches; (names, bytes freed)."""
        removed, space = [], 0
        used = self.in_use()
        for volume in self.all():
            if volume.name in used or not wanted.matches(volume.name, volume.driver,
                                                         volume.labels, False):
                continue
            try:
                space += self.remove(volume.name)
            except (Conflict, NotFound):
                continue  # taken or removed meanwhile
            removed.append(volume.name)
        return removed, space

    def size(self, name: str) -> int:
        return dir_size(self.get(name).mountpoint)


def dir_size(path: Path) -> int:
    """Bytes in the files under ``path`` (each hard-linked inode once; mounts not crossed)."""
    total, seen = 0, set()
    try:
        device = path.lstat().st_dev
    except OSError:
        return 0
    for top, dirs, files in os.walk(path):
        for name in [*dirs, *files]:
            try:
                st = os.lstat(os.path.join(top, name))
            except OSError:
                continue
            if st.st_dev != device:
                dirs[:] = [d for d in dirs if d != name]
                continue
            if name in files and (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_size
    return total
