"""cgroup layout detection, paths, cleanup and stats over fake trees."""

from __future__ import annotations

from pathlib import Path

import pytest

from wharf.daemon.core.runtime import cgroups
from wharf.daemon.core.runtime.cgroups import (
    CGROUP2_SUPER_MAGIC,
    TMPFS_MAGIC,
    CgroupManager,
    CgroupMode,
    CgroupMount,
)
from wharf.errors import Conflict

MOUNTINFO = """\
25 22 0:23 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
26 25 0:24 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
27 25 0:25 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
28 25 0:26 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
29 25 0:27 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
30 22 0:28 / /proc rw - proc proc rw
"""


def test_detect_mode(tmp_path: Path) -> None:
    (tmp_path / "unified").mkdir()
    magic = {tmp_path: TMPFS_MAGIC, tmp_path / "unified": CGROUP2_SUPER_MAGIC}
    assert cgroups.detect_mode(tmp_path, magic.__getitem__) is CgroupMode.HYBRID
    magic[tmp_path / "unified"] = TMPFS_MAGIC
    assert cgroups.detect_mode(tmp_path, magic.__getitem__) is CgroupMode.LEGACY
    assert cgroups.detect_mode(tmp_path, lambda _: CGROUP2_SUPER_MAGIC) is CgroupMode.UNIFIED


def test_detect_mode_on_this_host() -> None:
    if not Path("/sys/fs/cgroup").is_dir():
        pytest.skip("no /sys/fs/cgroup")
    assert cgroups.detect_mode() in set(CgroupMode)


def test_manager_is_cgroupfs_unless_systemd_is_reachable(tmp_path: Path) -> None:
    comm, bus = tmp_path / "comm", tmp_path / "private"
    comm.write_text("process_api\n")
    assert cgroups.choose_manager(comm, bus) is CgroupManager.CGROUPFS
    comm.write_text("systemd\n")
    assert cgroups.choose_manager(comm, bus) is CgroupManager.CGROUPFS
    bus.touch()
    assert cgroups.choose_manager(comm, bus) is CgroupManager.SYSTEMD
    assert cgroups.cgroups_path("abc") == "/wharf/abc"
    assert cgroups.cgroups_path("abc", CgroupManager.SYSTEMD) == "wharf.slice:wharf:abc"


def test_parse_mountinfo() -> None:
    mounts = cgroups.parse_mountinfo(MOUNTINFO)
    assert [(m.path.name, m.version, sorted(m.controllers)) for m in mounts] == [
        ("cpu", 1, ["cpu"]), ("memory", 1, ["memory"]), ("systemd", 1, ["name=systemd"]),
        ("unified", 2, []),
    ]


def test_remove_container_cgroups(tmp_path: Path) -> None:
    mounts = [CgroupMount(tmp_path / n, 1, frozenset({n})) for n in ("memory", "pids")]
    for m in mounts:
        (m.path / "wharf" / "c1" / "nested").mkdir(parents=True)
        (m.path / "wharf" / "c2").mkdir(parents=True)
    cgroups.remove_container_cgroups("c1", mounts)
    assert not (tmp_path / "memory/wharf/c1").exists()
    assert (tmp_path / "memory/wharf/c2").exists()  # parent kept while others live in it
    cgroups.remove_container_cgroups("c2", mounts)
    assert not (tmp_path / "memory/wharf").exists() and not (tmp_path / "pids/wharf").exists()
    cgroups.remove_container_cgroups("c2", mounts)  # idempotent


def test_remove_busy_cgroup_is_conflict(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "memory/wharf/c1").mkdir(parents=True)

    def busy(path: str) -> None:
        raise OSError(16, "Device or resource busy", path)

    monkeypatch.setattr("wharf.daemon.core.runtime.cgroups.os.rmdir", busy)
    with pytest.raises(Conflict, match="still has processes"):
        cgroups.remove_container_cgroups("c1", [CgroupMount(tmp_path / "memory", 1, frozenset())])


def test_stats_v1_and_v2(tmp_path: Path) -> None:
    v1 = [CgroupMount(tmp_path / n, 1, frozenset({n})) for n in ("memory", "cpuacct", "pids")]
    files = {"memory/wharf/c/memory.usage_in_bytes": "1048576",
             "memory/wharf/c/memory.limit_in_bytes": "9223372036854771712",
             "cpuacct/wharf/c/cpuacct.usage": "123456", "pids/wharf/c/pids.current": "3",
             "pids/wharf/c/pids.max": "max"}
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text + "\n")
    assert cgroups.read_stats("c", v1) == cgroups.CgroupStats(1048576, None, 123456, 3, None)
    root = tmp_path / "v2"
    (root / "wharf/c").mkdir(parents=True)
    for name, text in {"memory.current": "4096", "memory.max": "33554432",
                       "cpu.stat": "usage_usec 7\nuser_usec 5", "pids.current": "1",
                       "pids.max": "10"}.items():
        (root / "wharf/c" / name).write_text(text + "\n")
    stats = cgroups.read_stats("c", [CgroupMount(root, 2, frozenset())])
    assert stats == cgroups.CgroupStats(4096, 33554432, 7000, 1, 10)
