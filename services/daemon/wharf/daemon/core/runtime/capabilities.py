"""Linux capabilities for a container: Docker's defaults, --cap-add/--cap-drop, --privileged.

Docker's rules (moby ``oci/caps``): names are case-insensitive and may omit ``CAP_``; ``ALL``
in cap-add means every capability minus cap-drop, ``ALL`` in cap-drop means exactly cap-add.
Unlike Docker we intersect the result with the daemon's bounding set: a capability the daemon
lacks (CAP_SYS_RESOURCE on the project's VMs) cannot be granted, and asking the runtime for it
makes the container fail with "unable to apply caps" (runtime-facts §0.4).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from wharf.errors import InvalidArgument

# Index = capability number (linux/capability.h), up to CAP_CHECKPOINT_RESTORE (40).
CAPABILITIES: tuple[str, ...] = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
    "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW",
    "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
    "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN",
    "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON",
    "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
)
_NUMBER = {name: i for i, name in enumerate(CAPABILITIES)}

# Docker 20.10's default set, in Docker's order (as in its captured config.json).
DOCKER_DEFAULT_CAPS: tuple[str, ...] = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
)

ALL = "ALL"


def normalize(names: Iterable[str]) -> list[str]:
    """Upper-case, add the ``CAP_`` prefix, keep ``ALL``, drop duplicates (order kept).

    Raises:
        InvalidArgument: a name is not a known capability.
    """
    out: list[str] = []
    for raw in names:
        name = raw.strip().upper()
        if name != ALL and not name.startswith("CAP_"):
            name = "CAP_" + name
        if name != ALL and name not in _NUMBER:
            raise InvalidArgument(f"unknown capability: {raw!r}")
        if name not in out:
            out.append(name)
    return out


def bounding_set(status_path: Path = Path("/proc/self/status")) -> frozenset[str]:
    """The capabilities in this process's bounding set (``CapBnd`` of /proc/self/status)."""
    for line in status_path.read_text().splitlines():
        if line.startswith("CapBnd:"):
            return frozenset(from_mask(int(line.split()[1], 16)))
    raise InvalidArgument(f"no CapBnd line in {status_path}")


def from_mask(mask: int) -> list[str]:
    """The capability names whose bits are set in ``mask`` (unknown high bits ignored)."""
    return [name for i, name in enumerate(CAPABILITIES) if mask >> i & 1]


def to_mask(names: Iterable[str]) -> int:
    """The kernel bitmask (as in CapEff) for capability names."""
    mask = 0
    for name in names:
        mask |= 1 << _NUMBER[name]
    return mask


def container_capabilities(
    cap_add: Sequence[str] = (),
    cap_drop: Sequence[str] = (),
    *,
    privileged: bool = False,
    bounding: frozenset[str],
    defaults: Sequence[str] = DOCKER_DEFAULT_CAPS,
) -> list[str]:
    """The container's capability list (bounding = effective = permitted), Docker's semantics.

    ``privileged`` (or cap-add ALL) yields every capability the daemon holds. An explicitly
    added capability the daemon lacks is an error rather than a container that fails to start.

    Raises:
        InvalidArgument: an unknown name, or a cap-add the daemon's bounding set lacks.
    """
    adds, drops = normalize(cap_add), normalize(cap_drop)
    everything = [c for c in CAPABILITIES if c in bounding]
    if privileged:
        return everything
    if ALL in adds:
        return [c for c in everything if c not in drops]
    missing = [c for c in adds if c not in bounding]
    if missing:
        raise InvalidArgument(
            f"capability {', '.join(missing)} is not in the daemon's bounding set; "
            "it cannot be granted to a container"
        )
    base = [] if ALL in drops else [c for c in defaults if c not in drops and c in bounding]
    return base + [c for c in adds if c not in base]
