"""Build the OCI config.json for a container from a typed ``ContainerSpec``.

``build_config`` is a pure function: everything it needs to know about the host comes in a
``HostInfo`` (probed once at daemon start) and the seccomp program comes precompiled. Defaults
are Docker 20.10's (reference data/docker-oci-config.json); the capability set is clipped to
the daemon's bounding set. The options are checked before they get here (the container's
``options`` at create: memory, swap, CPUs, ulimits above the daemon's own hard limits, which
podman's defaults break on), so this module only writes them down.
"""

from __future__ import annotations

import base64
import os
import resource
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wharf.daemon.core.runtime import capabilities
from wharf.daemon.core.runtime import mounts as fsmounts
from wharf.daemon.core.runtime.cgroups import CgroupManager, CgroupMode, cgroups_path
from wharf.daemon.core.runtime.seccomp_bpf import ANNOTATION as SECCOMP_BPF_ANNOTATION
from wharf.daemon.core.runtime.users import UserIds
from wharf.errors import InvalidArgument

OCI_VERSION = "1.0.2-dev"
CPU_PERIOD = 100_000  # the CFS period --cpus is spread over, as dockerd
# Docker's --ulimit names → Linux resource numbers (Python's resource module lacks some).
RLIMITS: Mapping[str, int] = {
    "cpu": 0, "fsize": 1, "data": 2, "stack": 3, "core": 4, "rss": 5, "nproc": 6, "nofile": 7,
    "memlock": 8, "locks": 10, "sigpending": 11, "msgqueue": 12, "nice": 13, "rtprio": 14,
    "rttime": 15,
}

# dockerd's oci.DefaultPathEnv for Linux containers: set when the image has no PATH.
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class Ulimit:
    """``--ulimit name=soft:hard`` (-1 means unlimited)."""

    name: str
    soft: int
    hard: int


@dataclass(frozen=True)
class Resources:
    """cgroup limits, None = unset; ``memory_swap`` is memory+swap as in Docker (-1 = no cap,
    unset = twice ``memory``). ``nano_cpus`` wins over ``cpu_quota``/``cpu_period``."""

    memory: int | None = None
    memory_swap: int | None = None
    memory_reservation: int | None = None
    nano_cpus: int | None = None
    cpu_shares: int | None = None
    cpu_quota: int | None = None
    cpu_period: int | None = None
    pids_limit: int | None = None


@dataclass(frozen=True)
class Device:
    """A host device node made available in the container (``--device``), with its cgroup
    access (``r``, ``w``, ``m``)."""

    path: str  # in the container
    type: str  # "c" or "b"
    major: int
    minor: int
    file_mode: int
    uid: int = 0
    gid: int = 0
    access: str = "rwm"


@dataclass(frozen=True)
class ContainerSpec:
    """What the engine decided for one container, in runtime terms (all paths absolute)."""

    container_id: str
    args: tuple[str, ...]
    rootfs: Path
    container_dir: Path
    env: tuple[str, ...] = ()
    cwd: str = "/"
    user: UserIds = field(default_factory=UserIds)
    hostname: str = ""
    terminal: bool = False
    readonly_rootfs: bool = False
    etc_files: tuple[str, ...] = fsmounts.ETC_FILES
    mounts: tuple[fsmounts.Mount, ...] = ()
    tmpfs: tuple[tuple[str, str], ...] = ()
    cap_add: tuple[str, ...] = ()
    cap_drop: tuple[str, ...] = ()
    privileged: bool = False
    no_new_privileges: bool = False
    ulimits: tuple[Ulimit, ...] = ()
    devices: tuple[Device, ...] = ()
    network: str = "private"  # "private" (new netns), "host", or a netns path
    resources: Resources = field(default_factory=Resources)
    shm_size: int = fsmounts.DEFAULT_SHM_SIZE
    sysctls: tuple[tuple[str, str], ...] = ()
    oom_score_adj: int | None = None
    annotations: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class HostInfo:
    """The host facts the config depends on (probe once with ``probe_host``)."""

    cgroup_mode: CgroupMode
    cgroup_manager: CgroupManager
    bounding: frozenset[str]
    hard_limits: Mapping[str, int]
    swap_accounting: bool
    cpus: int


def probe_host(cgroup_mode: CgroupMode, cgroup_manager: CgroupManager) -> HostInfo:
    """Read the bounding set, hard rlimits, swap accounting and CPU count of this daemon."""
    hard = {}
    for name, number in RLIMITS.items():
        value = resource.getrlimit(number)[1]
        hard[name] = -1 if value == resource.RLIM_INFINITY else value
    swap = cgroup_mode is CgroupMode.UNIFIED or Path(
        "/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes").exists()
    return HostInfo(cgroup_mode, cgroup_manager, capabilities.bounding_set(), hard, swap,
                    os.cpu_count() or 1)


def container_capabilities(spec: ContainerSpec, host: HostInfo) -> list[str]:
    """The container's capability list (needed first: the seccomp profile depends on it)."""
    return capabilities.container_capabilities(
        spec.cap_add, spec.cap_drop, privileged=spec.privileged, bounding=host.bounding)


def build_config(
    spec: ContainerSpec,
    host: HostInfo,
    *,
    seccomp: Mapping[str, Any] | None = None,
    seccomp_bpf: bytes | None = None,
) -> dict[str, Any]:
    """The OCI runtime config (config.json as a dict).

    ``seccomp_bpf`` (crun) goes into the ``run.oci.seccomp_bpf_data`` annotation and wins over
    ``seccomp`` (the OCI JSON, for runc). Neither, or ``privileged``, means unconfined.

    Raises:
        InvalidArgument: no command, an unknown capability or a relative network namespace.
    """
    if not spec.args:
        raise InvalidArgument(f"container {spec.container_id}: no command specified")
    caps = container_capabilities(spec, host)
    annotations = dict(spec.annotations)
    linux = _linux(spec, host)
    if not spec.privileged and seccomp_bpf is not None:
        annotations[SECCOMP_BPF_ANNOTATION] = base64.b64encode(seccomp_bpf).decode("ascii")
    elif not spec.privileged and seccomp is not None:
        linux["seccomp"] = dict(seccomp)
    config: dict[str, Any] = {
        "ociVersion": OCI_VERSION,
        "process": _process(spec, host, caps),
        "root": {"path": str(spec.rootfs), "readonly": spec.readonly_rootfs},
        "hostname": spec.hostname,
        "mounts": fsmounts.to_oci(_mounts(spec)),
        "linux": linux,
    }
    if annotations:
        config["annotations"] = annotations
    return config


def _env(spec: ContainerSpec) -> list[str]:
    """The container's environment with dockerd's defaults: PATH when the image sets none
    (execs inherit it from config.json), HOSTNAME, and TERM on a TTY."""
    env = list(spec.env)
    keys = {e.partition("=")[0] for e in env}
    if "PATH" not in keys:
        env.insert(0, f"PATH={DEFAULT_PATH}")
    if spec.hostname and "HOSTNAME" not in keys:
        env.append(f"HOSTNAME={spec.hostname}")
    if spec.terminal and "TERM" not in keys:
        env.append("TERM=xterm")
    return env


def _process(spec: ContainerSpec, host: HostInfo, caps: list[str]) -> dict[str, Any]:
    user: dict[str, Any] = {"uid": spec.user.uid, "gid": spec.user.gid}
    if spec.user.additional_gids:
        user["additionalGids"] = list(spec.user.additional_gids)
    process: dict[str, Any] = {
        "terminal": spec.terminal,
        "user": user,
        "args": list(spec.args),
        "env": _env(spec),
        "cwd": spec.cwd or "/",
        "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
        "noNewPrivileges": spec.no_new_privileges,
    }
    rlimits = _rlimits(spec.ulimits)
    if rlimits:
        process["rlimits"] = rlimits
    if spec.oom_score_adj is not None:
        process["oomScoreAdj"] = spec.oom_score_adj
    return process


def rlimit_value(value: int) -> int:
    """A ``--ulimit`` number as the kernel takes it: -1 (unlimited) is RLIM_INFINITY."""
    return 2**64 - 1 if value < 0 else value


def _rlimits(ulimits: tuple[Ulimit, ...]) -> list[dict[str, Any]]:
    return [{"type": f"RLIMIT_{u.name.upper()}", "hard": rlimit_value(u.hard),
             "soft": rlimit_value(u.soft)} for u in ulimits]


def _mounts(spec: ContainerSpec) -> list[fsmounts.Mount]:
    extra = [
        *fsmounts.etc_mounts(spec.container_dir, spec.etc_files),
        *(fsmounts.tmpfs_mount(dest, opts) for dest, opts in spec.tmpfs),
        *spec.mounts,
    ]
    defaults = fsmounts.default_mounts(shm_size=spec.shm_size, privileged=spec.privileged)
    return fsmounts.merge(defaults, extra)


def _namespaces(spec: ContainerSpec, host: HostInfo) -> list[dict[str, str]]:
    namespaces: list[dict[str, str]] = [{"type": "mount"}]
    if spec.network == "private":
        namespaces.append({"type": "network"})
    elif spec.network != "host":
        if not spec.network.startswith("/"):
            raise InvalidArgument(f"network namespace {spec.network!r} must be a path")
        namespaces.append({"type": "network", "path": spec.network})
    namespaces += [{"type": "uts"}, {"type": "pid"}, {"type": "ipc"}]
    if host.cgroup_mode is CgroupMode.UNIFIED:
        namespaces.append({"type": "cgroup"})
    return namespaces


def _linux(spec: ContainerSpec, host: HostInfo) -> dict[str, Any]:
    sysctl = {}
    if spec.network != "host":
        sysctl = {"net.ipv4.ip_unprivileged_port_start": "0",
                  "net.ipv4.ping_group_range": "0 2147483647"}
    sysctl.update(dict(spec.sysctls))
    resources = _resources(spec, host)
    linux: dict[str, Any] = {
        "sysctl": sysctl,
        "resources": resources,
        "cgroupsPath": cgroups_path(spec.container_id, host.cgroup_manager),
        "namespaces": _namespaces(spec, host),
        **fsmounts.masked_and_readonly(spec.privileged),
    }
    if spec.devices:
        linux["devices"] = [{"path": d.path, "type": d.type, "major": d.major,
                             "minor": d.minor, "fileMode": d.file_mode, "uid": d.uid,
                             "gid": d.gid} for d in spec.devices]
    return linux


def _resources(spec: ContainerSpec, host: HostInfo) -> dict[str, Any]:
    rules = fsmounts.PRIVILEGED_DEVICE_RULES if spec.privileged else fsmounts.DEVICE_RULES
    out: dict[str, Any] = {"devices": [
        *(dict(r) for r in rules),
        *({"allow": True, "type": d.type, "major": d.major, "minor": d.minor,
           "access": d.access} for d in spec.devices),
    ]}
    res = spec.resources
    memory = _memory(res, host)
    if memory:
        out["memory"] = memory
    cpu = _cpu(res)
    if cpu:
        out["cpu"] = cpu
    if res.pids_limit is not None and res.pids_limit > 0:
        out["pids"] = {"limit": res.pids_limit}
    return out


def _cpu(res: Resources) -> dict[str, int]:
    cpu: dict[str, int] = {}
    if res.nano_cpus:
        cpu = {"quota": res.nano_cpus * CPU_PERIOD // 10**9, "period": CPU_PERIOD}
    else:
        if res.cpu_quota:
            cpu["quota"] = res.cpu_quota
        if res.cpu_period:
            cpu["period"] = res.cpu_period
    if res.cpu_shares:
        cpu["shares"] = res.cpu_shares
    return cpu


def _memory(res: Resources, host: HostInfo) -> dict[str, int]:
    memory: dict[str, int] = {}
    if res.memory_reservation:
        memory["reservation"] = res.memory_reservation
    if not res.memory:
        return memory
    memory["limit"] = res.memory
    if host.swap_accounting:  # Docker: unset swap = as much swap as memory
        memory["swap"] = res.memory_swap or 2 * res.memory
    return memory
