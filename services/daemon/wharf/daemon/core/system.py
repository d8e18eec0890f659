"""Facts about this host and daemon, for ``version`` and ``info``."""

from __future__ import annotations

import os
import platform
import shutil
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class HostFacts:
    hostname: str
    kernel: str
    operating_system: str
    architecture: str
    ncpu: int
    mem_total: int
    cgroup_version: str


def host_facts() -> HostFacts:
    return HostFacts(
        hostname=platform.node(),
        kernel=platform.release(),
        operating_system=_os_release(),
        architecture=platform.machine(),
        ncpu=os.cpu_count() or 1,
        mem_total=_mem_total(),
        cgroup_version=_cgroup_version(),
    )


def runtime_paths() -> dict[str, str]:
    """OCI runtimes found on PATH (name -> path)."""
    found = {}
    for name in ("crun", "runc"):
        path = shutil.which(name)
        if path:
            found[name] = path
    return found


def _os_release() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.partition("=")[2].strip('"')
    except OSError:
        pass
    return platform.system()


def _mem_total() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


def _cgroup_version() -> str:
    return "2" if Path("/sys/fs/cgroup/cgroup.controllers").exists() else "1"
