"""A container's cgroup limits and rlimits as typed options, checked at create in dockerd's
words (``verifyPlatformContainerResources`` in daemon/daemon_unix.go; go-units for ulimits).

Two checks need the host (``check_cpus``, ``check_ulimits``); the rest is pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from wharf.daemon.core.runtime import spec as oci_spec
from wharf.errors import InvalidArgument

MIN_MEMORY = 6 * 1024 * 1024  # dockerd's linuxMinMemory, for the limit and the reservation


class ResourceOptions(BaseModel):
    """cgroup limits as Docker counts them, 0 = unset. ``memory_swap`` is memory+swap (0: as
    much swap as memory, -1: no cap); ``pids_limit`` <= 0 is no limit."""

    memory: int = 0
    memory_swap: int = 0
    memory_reservation: int = 0
    nano_cpus: int = 0
    cpu_shares: int = 0
    cpu_quota: int = 0
    cpu_period: int = 0
    pids_limit: int = 0

    def runtime(self) -> oci_spec.Resources:
        return oci_spec.Resources(
            memory=self.memory or None,
            memory_swap=self.memory_swap or None,
            memory_reservation=self.memory_reservation or None,
            nano_cpus=self.nano_cpus or None,
            cpu_shares=self.cpu_shares or None,
            cpu_quota=self.cpu_quota if self.cpu_quota > 0 else None,
            cpu_period=self.cpu_period or None,
            pids_limit=self.pids_limit if self.pids_limit > 0 else None,
        )


class UlimitOption(BaseModel):
    """``--ulimit name=soft:hard`` (-1 = unlimited)."""

    name: str
    soft: int
    hard: int

    def runtime(self) -> oci_spec.Ulimit:
        return oci_spec.Ulimit(self.name, self.soft, self.hard)


def resources(host: Mapping[str, Any]) -> ResourceOptions:
    """The limits of a HostConfig, checked as dockerd does at create (the CPU count aside:
    ``check_cpus``).

    Raises:
        InvalidArgument: a value dockerd refuses, in its words.
    """
    res = ResourceOptions(**{field: number(host, key) for field, key in (
        ("memory", "Memory"), ("memory_swap", "MemorySwap"),
        ("memory_reservation", "MemoryReservation"), ("nano_cpus", "NanoCpus"),
        ("cpu_shares", "CpuShares"), ("cpu_quota", "CpuQuota"), ("cpu_period", "CpuPeriod"),
        ("pids_limit", "PidsLimit"))})
    _check_memory(res)
    _check_cpu(res)
    return res


def _check_memory(res: ResourceOptions) -> None:
    if res.memory != 0 and res.memory < MIN_MEMORY:
        raise InvalidArgument("Minimum memory limit allowed is 6MB")
    if res.memory > 0 and res.memory_swap not in (0, -1) and res.memory_swap < res.memory:
        raise InvalidArgument("Minimum memoryswap limit should be larger than memory limit, "
                              "see usage")
    if res.memory == 0 and res.memory_swap > 0:
        raise InvalidArgument("You should always set the Memory limit when using Memoryswap "
                              "limit, see usage")
    if 0 < res.memory_reservation < MIN_MEMORY:
        raise InvalidArgument("Minimum memory reservation allowed is 6MB")
    if res.memory > 0 and res.memory_reservation > 0 and res.memory < res.memory_reservation:
        raise InvalidArgument("Minimum memory limit can not be less than memory reservation "
                              "limit, see usage")


def _check_cpu(res: ResourceOptions) -> None:
    if res.nano_cpus > 0 and res.cpu_period > 0:
        raise InvalidArgument("Conflicting options: Nano CPUs and CPU Period cannot both be set")
    if res.nano_cpus > 0 and res.cpu_quota > 0:
        raise InvalidArgument("Conflicting options: Nano CPUs and CPU Quota cannot both be set")
    if res.cpu_period != 0 and not 1000 <= res.cpu_period <= 1_000_000:
        raise InvalidArgument("CPU cfs period can not be less than 1ms (i.e. 1000) or larger "
                              "than 1s (i.e. 1000000)")
    if 0 < res.cpu_quota < 1000:
        raise InvalidArgument("CPU cfs quota can not be less than 1ms (i.e. 1000)")
    if res.cpu_shares < 0:  # dockerd fails at start ("shares: invalid argument")
        raise InvalidArgument("CPU shares can not be less than 0")


def check_cpus(res: ResourceOptions, cpus: int) -> None:
    """``--cpus`` against this host's CPU count, in dockerd's words."""
    if res.nano_cpus < 0 or res.nano_cpus > cpus * 10**9:
        raise InvalidArgument(f"Range of CPUs is from 0.01 to {cpus}.00, as there are only "
                              f"{cpus} CPUs available")


def ulimits(value: Any) -> list[UlimitOption]:
    """``HostConfig.Ulimits`` (``[{"Name", "Soft", "Hard"}]``), in go-units' words."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(u, dict) for u in value):
        raise InvalidArgument("HostConfig.Ulimits must be a list of objects")
    out = []
    for entry in value:
        name = str(entry.get("Name") or "")
        if name not in oci_spec.RLIMITS:
            raise InvalidArgument(f"invalid ulimit type: {name}")
        soft, hard = number(entry, "Soft", "Ulimits"), number(entry, "Hard", "Ulimits")
        if oci_spec.rlimit_value(soft) > oci_spec.rlimit_value(hard):
            raise InvalidArgument("ulimit soft limit must be less than or equal to hard limit: "
                                  f"{soft} > {hard}")
        out.append(UlimitOption(name=name, soft=soft, hard=hard))
    return out


def check_ulimits(limits: list[UlimitOption], hard_limits: Mapping[str, int]) -> None:
    """No rlimit above the daemon's own hard limit: the runtime could not set it (podman's
    defaults fail this way where CAP_SYS_RESOURCE is missing)."""
    for u in limits:
        daemon = hard_limits.get(u.name, -1)
        if daemon >= 0 and oci_spec.rlimit_value(u.hard) > daemon:
            raise InvalidArgument(f"ulimit {u.name}: hard limit {u.hard} exceeds the daemon's "
                                  f"own hard limit {daemon}")


def number(fields: Mapping[str, Any], key: str, parent: str = "") -> int:
    """An integer field of HostConfig (or of its ``parent`` part); absent or null is 0."""
    value = fields.get(key)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidArgument(f"HostConfig.{parent + '.' if parent else ''}{key} must be a "
                              "number")
    return int(value)
