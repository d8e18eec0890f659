"""Looking into running containers: ``top`` (host ps filtered to the container's cgroup),
``stats`` (cgroup files, in Docker's stats shape) and a process's descendants
(``process_tree``)."""

from __future__ import annotations

import os
import shlex
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from wharf.daemon.core.runtime import cgroups
from wharf.errors import Conflict, InvalidArgument


def container_pids(container_id: str) -> set[int]:
    """Every pid in the container's cgroup (pids controller on v1, the unified dir on v2)."""
    pids: set[int] = set()
    for mount in cgroups.host_mounts():
        if mount.version == 1 and "pids" not in mount.controllers:
            continue
        procs = mount.path / cgroups.PARENT / container_id / "cgroup.procs"
        try:
            pids.update(int(line) for line in procs.read_text().split())
        except (OSError, ValueError):
            continue
    return pids


def process_tree(pid: int) -> list[int]:
    """``pid`` and every process it started, parents first, from ``/proc/<pid>/task/*/children``
    (what is gone meanwhile is left out)."""
    tree, pending = [], [pid]
    while pending:
        current = pending.pop(0)
        tree.append(current)
        for children in Path(f"/proc/{current}/task").glob("*/children"):
            try:
                pending += [int(child) for child in children.read_text().split()]
            except (OSError, ValueError):
                continue
    return tree


def top(container_id: str, ps_args: str = "-ef") -> dict[str, Any]:
    """Docker's top: ``ps <ps_args>`` on the host, rows kept when PID is in the container."""
    pids = container_pids(container_id)
    if not pids:
        raise Conflict(f"Container {container_id} is not running")
    args = shlex.split(ps_args or "-ef")
    if any(not a.startswith("-") and not a.replace(",", "").isalnum() for a in args):
        raise InvalidArgument(f"invalid ps arguments: {ps_args!r}")
    result = subprocess.run(["ps", *args], capture_output=True, text=True, check=False,
                            timeout=10)
    if result.returncode != 0:
        raise InvalidArgument(f"ps {ps_args}: {result.stderr.strip()}")
    lines = result.stdout.splitlines()
    titles = lines[0].split()
    if "PID" not in titles:
        raise InvalidArgument(f"ps {ps_args}: no PID column in its output")
    column = titles.index("PID")
    processes = []
    for line in lines[1:]:
        fields = line.split(None, len(titles) - 1)
        if len(fields) > column and fields[column].isdigit() and int(fields[column]) in pids:
            processes.append(fields)
    return {"Titles": titles, "Processes": processes}


def stats(container_id: str, name: str) -> dict[str, Any]:
    """One stats document with ``precpu_stats`` from a sample 100 ms earlier (--no-stream)."""
    mounts = cgroups.host_mounts()
    before, t0 = cgroups.read_stats(container_id, mounts), _system_cpu_ns()
    time.sleep(0.1)
    after, t1 = cgroups.read_stats(container_id, mounts), _system_cpu_ns()
    ncpu = os.cpu_count() or 1
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    return {
        "read": now, "preread": now, "id": container_id, "name": "/" + name,
        "pids_stats": {"current": after.pids_current or 0,
                       **({"limit": after.pids_limit} if after.pids_limit else {})},
        "cpu_stats": _cpu(after.cpu_usage_ns, t1, ncpu),
        "precpu_stats": _cpu(before.cpu_usage_ns, t0, ncpu),
        "memory_stats": {"usage": after.memory_usage or 0,
                         "limit": after.memory_limit or _mem_total(), "stats": {}},
        "blkio_stats": {"io_service_bytes_recursive": None}, "networks": {},
        "num_procs": 0, "storage_stats": {},
    }


def _cpu(usage_ns: int | None, system_ns: int, ncpu: int) -> dict[str, Any]:
    return {"cpu_usage": {"total_usage": usage_ns or 0}, "system_cpu_usage": system_ns,
            "online_cpus": ncpu, "throttling_data": {}}


def _system_cpu_ns() -> int:
    """Host CPU time in ns from /proc/stat, as dockerd computes system_cpu_usage."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:8]
    ticks = os.sysconf("SC_CLK_TCK")
    return sum(int(f) for f in fields) * 1_000_000_000 // ticks


def _mem_total() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    return 0
