"""Docker's default filesystem view of a container: mounts, masked and read-only paths, devices.

Values are those of Docker 20.10's captured config.json (reference data), so a workload sees
the same /proc, /sys and /dev under wharf as under dockerd.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wharf.errors import InvalidArgument

DEFAULT_SHM_SIZE = 64 * 1024 * 1024

MASKED_PATHS: tuple[str, ...] = (
    "/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
    "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware",
)
READONLY_PATHS: tuple[str, ...] = (
    "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
)

# Deny everything, allow null, zero, full, urandom, random, tty, console; deny fuse explicitly.
DEVICE_RULES: tuple[dict[str, Any], ...] = (
    {"allow": False, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 9, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 8, "access": "rwm"},
    {"allow": True, "type": "c", "major": 5, "minor": 0, "access": "rwm"},
    {"allow": True, "type": "c", "major": 5, "minor": 1, "access": "rwm"},
    {"allow": False, "type": "c", "major": 10, "minor": 229, "access": "rwm"},
)
PRIVILEGED_DEVICE_RULES: tuple[dict[str, Any], ...] = ({"allow": True, "access": "rwm"},)

# The container-dir files bind-mounted over the image's (Docker: resolv.conf, hostname, hosts).
ETC_FILES: tuple[str, ...] = ("resolv.conf", "hostname", "hosts")


@dataclass(frozen=True)
class Mount:
    """An OCI mount entry; ``options`` as the runtime takes them."""

    destination: str
    source: str
    type: str = "bind"
    options: tuple[str, ...] = ("rbind", "rprivate")

    def to_oci(self) -> dict[str, Any]:
        return {
            "destination": self.destination,
            "type": self.type,
            "source": self.source,
            "options": list(self.options),
        }


def default_mounts(*, shm_size: int = DEFAULT_SHM_SIZE, privileged: bool = False) -> list[Mount]:
    """/proc, /dev, /dev/pts, /sys, /sys/fs/cgroup, /dev/mqueue, /dev/shm, in Docker's order."""
    ro = () if privileged else ("ro",)
    return [
        Mount("/proc", "proc", "proc", ("nosuid", "noexec", "nodev")),
        Mount("/dev", "tmpfs", "tmpfs", ("nosuid", "strictatime", "mode=755", "size=65536k")),
        Mount("/dev/pts", "devpts", "devpts",
              ("nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5")),
        Mount("/sys", "sysfs", "sysfs", ("nosuid", "noexec", "nodev", *ro)),
        Mount("/sys/fs/cgroup", "cgroup", "cgroup", (*ro, "nosuid", "noexec", "nodev")),
        Mount("/dev/mqueue", "mqueue", "mqueue", ("nosuid", "noexec", "nodev")),
        Mount("/dev/shm", "shm", "tmpfs",
              ("nosuid", "noexec", "nodev", "mode=1777", f"size={shm_size}")),
    ]


def etc_mounts(container_dir: Path, names: Iterable[str] = ETC_FILES) -> list[Mount]:
    """Binds of the container's own resolv.conf, hostname and hosts over /etc."""
    return [Mount(f"/etc/{name}", str(container_dir / name)) for name in names]


def tmpfs_mount(destination: str, options: str = "") -> Mount:
    """A ``--tmpfs dest[:opts]`` mount: Docker's noexec,nosuid,nodev unless overridden.

    Raises:
        InvalidArgument: the destination is not absolute.
    """
    if not destination.startswith("/"):
        raise InvalidArgument(f"invalid tmpfs mount {destination!r}: destination must be absolute")
    user = [o for o in options.split(",") if o]
    opposites = {"exec": "noexec", "suid": "nosuid", "dev": "nodev"}
    base = [d for d in ("noexec", "nosuid", "nodev")
            if not any(opposites.get(u) == d or u == d for u in user)]
    return Mount(destination, "tmpfs", "tmpfs", (*base, *user))


def _depth(mount: Mount) -> int:
    return len(Path(mount.destination).parts)


def merge(defaults: Sequence[Mount], extra: Sequence[Mount]) -> list[Mount]:
    """Defaults not replaced by an extra mount at the same destination, then the extras
    ordered so that parents are mounted before what lies under them.

    Raises:
        InvalidArgument: two extra mounts share a destination.
    """
    seen: set[str] = set()
    for m in extra:
        if m.destination in seen:
            raise InvalidArgument(f"duplicate mount point: {m.destination}")
        seen.add(m.destination)
    kept = [m for m in defaults if m.destination not in seen]
    return kept + sorted(extra, key=_depth)


def to_oci(mounts: Iterable[Mount]) -> list[dict[str, Any]]:
    """The OCI ``mounts`` array."""
    return [m.to_oci() for m in mounts]


def masked_and_readonly(privileged: bool) -> Mapping[str, list[str]]:
    """``maskedPaths`` and ``readonlyPaths`` (both empty for a privileged container)."""
    if privileged:
        return {"maskedPaths": [], "readonlyPaths": []}
    return {"maskedPaths": list(MASKED_PATHS), "readonlyPaths": list(READONLY_PATHS)}
