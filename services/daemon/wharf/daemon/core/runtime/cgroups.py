"""cgroups on the host: layout detection, the container's cgroupsPath, cleanup and stats.

Three layouts exist: legacy v1 (a tmpfs of v1 hierarchies), hybrid (v1 plus cgroup2 at
``/sys/fs/cgroup/unified``; crun refuses it, see ``wrapper``) and unified v2. The engine uses
the cgroupfs manager unless PID 1 is systemd *and* its bus is reachable; the runtimes create
and limit the cgroups themselves, wharf only removes what they leave behind (the ``wharf``
parent) and reads the plain-text statistics files.
"""

from __future__ import annotations

import ctypes
import errno
import os
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from wharf.daemon.core.runtime.libc import libc
from wharf.errors import Conflict, Internal

CGROUP2_SUPER_MAGIC = 0x63677270
CGROUP_SUPER_MAGIC = 0x27E0EB
TMPFS_MAGIC = 0x01021994

CGROUP_ROOT = Path("/sys/fs/cgroup")
PARENT = "wharf"  # the cgroup parent of this daemon's containers; see use_parent()


def use_parent(name: str) -> None:
    """Put this daemon's containers under cgroup ``name`` (set once, at start-up, by the
    composition root: daemons sharing a host each get their own parent)."""
    global PARENT  # noqa: PLW0603 - one process-wide setting, read at every use
    PARENT = name
# v1 reports "no limit" as the largest page-aligned long; anything this big means unlimited.
_V1_UNLIMITED = 1 << 62


_GENERIC_OPTIONS = frozenset({
    "rw", "ro", "relatime", "noatime", "nosuid", "nodev", "noexec", "clone_children", "xattr",
})


class CgroupMode(StrEnum):
    LEGACY = "v1"
    HYBRID = "hybrid"
    UNIFIED = "v2"


class CgroupManager(StrEnum):
    CGROUPFS = "cgroupfs"
    SYSTEMD = "systemd"


def fs_magic(path: Path) -> int:
    """The filesystem type (``f_type`` of statfs(2)) of ``path``.

    Raises:
        Internal: statfs failed (the path is missing or not accessible).
    """
    buf = ctypes.create_string_buffer(256)  # struct statfs is 120 bytes on 64-bit Linux
    if libc().statfs(os.fsencode(path), buf) != 0:
        err = ctypes.get_errno()
        raise Internal(f"statfs {path}: {os.strerror(err)}")
    return ctypes.c_long.from_buffer(buf).value & 0xFFFFFFFF


def detect_mode(
    root: Path = CGROUP_ROOT, magic: Callable[[Path], int] = fs_magic
) -> CgroupMode:
    """v2 if ``root`` is cgroup2; hybrid if ``root/unified`` is; otherwise legacy v1."""
    if magic(root) == CGROUP2_SUPER_MAGIC:
        return CgroupMode.UNIFIED
    unified = root / "unified"
    if unified.is_dir() and magic(unified) == CGROUP2_SUPER_MAGIC:
        return CgroupMode.HYBRID
    return CgroupMode.LEGACY


def choose_manager(
    proc1_comm: Path = Path("/proc/1/comm"),
    systemd_bus: Path = Path("/run/systemd/private"),
) -> CgroupManager:
    """systemd only when PID 1 is systemd and its private bus socket exists; else cgroupfs."""
    try:
        pid1 = proc1_comm.read_text().strip()
    except OSError:
        return CgroupManager.CGROUPFS
    if pid1 == "systemd" and systemd_bus.exists():
        return CgroupManager.SYSTEMD
    return CgroupManager.CGROUPFS


def cgroups_path(container_id: str, manager: CgroupManager = CgroupManager.CGROUPFS) -> str:
    """The OCI ``linux.cgroupsPath`` for a container (``/wharf/<id>`` for cgroupfs)."""
    if manager is CgroupManager.SYSTEMD:
        return f"{PARENT}.slice:{PARENT}:{container_id}"
    return f"/{PARENT}/{container_id}"


@dataclass(frozen=True)
class CgroupMount:
    """One mounted hierarchy: its mount point, version and (v1) controllers."""

    path: Path
    version: int
    controllers: frozenset[str]


def parse_mountinfo(text: str) -> list[CgroupMount]:
    """The cgroup hierarchies listed in a /proc/self/mountinfo text (pure)."""
    mounts: list[CgroupMount] = []
    for line in text.splitlines():
        head, sep, tail = line.partition(" - ")
        if not sep:
            continue
        fstype, _source, options = [*tail.split(), "", ""][:3]
        mount_point = Path(head.split()[4].replace("\\040", " "))
        if fstype == "cgroup2":
            mounts.append(CgroupMount(mount_point, 2, frozenset()))
        elif fstype == "cgroup":
            ctrl = frozenset(o for o in options.split(",") if o not in _GENERIC_OPTIONS)
            mounts.append(CgroupMount(mount_point, 1, ctrl))
    return mounts


def host_mounts(mountinfo: Path = Path("/proc/self/mountinfo")) -> list[CgroupMount]:
    """The cgroup hierarchies mounted in this process's mount namespace."""
    return parse_mountinfo(mountinfo.read_text())


def container_dirs(container_id: str, mounts: list[CgroupMount]) -> list[Path]:
    """Every directory a cgroupfs runtime may have made for the container (one per hierarchy)."""
    return [m.path / PARENT / container_id for m in mounts]


def remove_container_cgroups(container_id: str, mounts: list[CgroupMount]) -> None:
    """Remove the container's cgroup dirs in every hierarchy, then the ``wharf`` parent if empty.

    Idempotent. Nested child cgroups (made by the container itself on v2) go first.

    Raises:
        Conflict: a cgroup still holds processes (the container is not deleted yet).
    """
    for leaf in container_dirs(container_id, mounts):
        _rmdir_tree(leaf)
        try:
            leaf.parent.rmdir()
        except OSError as exc:  # other containers still live under the parent, or it is gone
            if exc.errno not in (errno.ENOENT, errno.ENOTEMPTY, errno.EBUSY):
                raise Internal(f"cannot remove cgroup {leaf.parent}: {exc}") from exc


def _rmdir_tree(top: Path) -> None:
    """rmdir a cgroup and its sub-cgroups bottom-up (cgroup dirs only hold virtual files)."""
    if not top.is_dir():
        return
    for dirpath, _dirs, _files in sorted(os.walk(top), key=lambda t: -len(t[0])):
        try:
            os.rmdir(dirpath)
        except FileNotFoundError:
            continue
        except OSError as exc:
            if exc.errno == errno.EBUSY:
                raise Conflict(f"cgroup {dirpath} still has processes") from exc
            raise Internal(f"cannot remove cgroup {dirpath}: {exc}") from exc


@dataclass(frozen=True)
class CgroupStats:
    """A container's resource usage; limits are None when unlimited, fields None if unknown."""

    memory_usage: int | None = None
    memory_limit: int | None = None
    cpu_usage_ns: int | None = None
    pids_current: int | None = None
    pids_limit: int | None = None


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    if text == "max":
        return None
    value = int(text)
    return None if value >= _V1_UNLIMITED else value


def _read_keyed(path: Path, key: str) -> int | None:
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        name, _, value = line.partition(" ")
        if name == key:
            return int(value)
    return None


def read_stats(container_id: str, mounts: list[CgroupMount]) -> CgroupStats:
    """Read usage and limits from the container's cgroup files.

    v2 files when cgroup2 is the only hierarchy; otherwise (v1, hybrid) the v1 controllers.
    """
    if mounts and all(m.version == 2 for m in mounts):
        base = mounts[0].path / PARENT / container_id
        usage_us = _read_keyed(base / "cpu.stat", "usage_usec")
        return CgroupStats(
            memory_usage=_read_int(base / "memory.current"),
            memory_limit=_read_int(base / "memory.max"),
            cpu_usage_ns=None if usage_us is None else usage_us * 1000,
            pids_current=_read_int(base / "pids.current"),
            pids_limit=_read_int(base / "pids.max"),
        )

    def v1(controller: str, name: str) -> Path:
        for m in mounts:
            if m.version == 1 and controller in m.controllers:
                return m.path / PARENT / container_id / name
        return Path("/nonexistent") / name

    return CgroupStats(
        memory_usage=_read_int(v1("memory", "memory.usage_in_bytes")),
        memory_limit=_read_int(v1("memory", "memory.limit_in_bytes")),
        cpu_usage_ns=_read_int(v1("cpuacct", "cpuacct.usage")),
        pids_current=_read_int(v1("pids", "pids.current")),
        pids_limit=_read_int(v1("pids", "pids.max")),
    )
