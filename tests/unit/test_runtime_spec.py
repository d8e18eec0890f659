"""config.json generation, checked against the config Docker 20.10 handed to runc."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from wharf.daemon.core.runtime import capabilities
from wharf.daemon.core.runtime.cgroups import CgroupManager, CgroupMode
from wharf.daemon.core.runtime.mounts import Mount
from wharf.daemon.core.runtime.seccomp_bpf import ANNOTATION
from wharf.daemon.core.runtime.spec import (
    ContainerSpec,
    Device,
    HostInfo,
    Resources,
    Ulimit,
    build_config,
)
from wharf.daemon.core.runtime.users import UserIds

DOCKER = Path("/work/shared/reference/data/docker-oci-config.json")
CID = "3b8d6926f640864b2e77429f18ce29e7a998723b7c335dc63c2ec7028ad9b824"
# This host: CapBnd 0x1fffeffffff (no CAP_SYS_RESOURCE), nofile hard 20000.
HOST = HostInfo(
    cgroup_mode=CgroupMode.HYBRID,
    cgroup_manager=CgroupManager.CGROUPFS,
    bounding=frozenset(capabilities.from_mask(0x1FFFEFFFFFF)),
    hard_limits={"nofile": 20000, "nproc": 96364, "core": -1},
    swap_accounting=True,
    cpus=2,
)


def _spec(**kw: Any) -> ContainerSpec:
    base: dict[str, Any] = {
        "container_id": CID, "args": ("busybox", "sleep", "60"),
        "rootfs": Path("/var/lib/wharf/containers") / CID / "rootfs/merged",
        "container_dir": Path("/var/lib/wharf/containers") / CID,
        "env": ("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",),
        "hostname": CID[:12], "user": UserIds(0, 0, (0,)),
    }
    base.update(kw)
    return ContainerSpec(**base)


@pytest.fixture(scope="module")
def docker() -> dict[str, Any]:
    if not DOCKER.exists():
        pytest.skip("captured Docker config not available")
    data: dict[str, Any] = json.loads(DOCKER.read_text())
    return data


def _mount_key(m: dict[str, Any]) -> tuple[str, str, tuple[str, ...]]:
    return (m["destination"], m["type"], tuple(m["options"]))


def test_matches_docker_security_defaults(docker: dict[str, Any]) -> None:
    ours = build_config(_spec(), HOST)
    assert ours["process"]["capabilities"] == docker["process"]["capabilities"]
    for key in ("maskedPaths", "readonlyPaths", "namespaces", "sysctl"):
        assert ours["linux"][key] == docker["linux"][key], key
    assert ours["linux"]["resources"]["devices"] == docker["linux"]["resources"]["devices"]
    assert ours["process"]["user"] == docker["process"]["user"]
    assert ours["process"]["env"] == docker["process"]["env"]
    assert ours["hostname"] == docker["hostname"]
    assert ours["linux"]["cgroupsPath"] == f"/wharf/{CID}"
    assert "rlimits" not in ours["process"]  # Docker sets none


def test_matches_docker_mounts(docker: dict[str, Any]) -> None:
    ours = build_config(_spec(), HOST)["mounts"]
    assert [_mount_key(m) for m in ours] == [_mount_key(m) for m in docker["mounts"]]
    binds = {m["destination"]: m["source"] for m in ours if m["type"] == "bind"}
    assert binds["/etc/hosts"] == f"/var/lib/wharf/containers/{CID}/hosts"


def test_seccomp_bpf_goes_to_annotation_and_wins_over_json() -> None:
    config = build_config(_spec(), HOST, seccomp={"defaultAction": "SCMP_ACT_ERRNO"},
                          seccomp_bpf=b"\x06\x00\x00\x00\x00\x00\xff\x7f")
    assert base64.b64decode(config["annotations"][ANNOTATION]) == b"\x06\0\0\0\0\0\xff\x7f"
    assert "seccomp" not in config["linux"]
    runc = build_config(_spec(), HOST, seccomp={"defaultAction": "SCMP_ACT_ERRNO"})
    assert runc["linux"]["seccomp"] == {"defaultAction": "SCMP_ACT_ERRNO"}
    assert "annotations" not in runc


def test_privileged_is_unconfined_with_all_host_caps() -> None:
    config = build_config(_spec(privileged=True), HOST, seccomp={"defaultAction": "X"},
                          seccomp_bpf=b"x" * 8)
    caps = config["process"]["capabilities"]["bounding"]
    assert "CAP_SYS_ADMIN" in caps and "CAP_SYS_RESOURCE" not in caps and len(caps) == 40
    assert config["linux"]["maskedPaths"] == [] and config["linux"]["readonlyPaths"] == []
    assert config["linux"]["resources"]["devices"] == [{"allow": True, "access": "rwm"}]
    assert "seccomp" not in config["linux"] and "annotations" not in config
    sys_mount = next(m for m in config["mounts"] if m["destination"] == "/sys")
    assert "ro" not in sys_mount["options"]


def test_resources() -> None:
    # checked at create (test_container_options); here they are only written down
    res = Resources(memory=64 << 20, nano_cpus=1_500_000_000, pids_limit=10)
    linux = build_config(_spec(resources=res), HOST)["linux"]["resources"]
    assert linux["memory"] == {"limit": 64 << 20, "swap": 128 << 20}
    assert linux["cpu"] == {"quota": 150_000, "period": 100_000}
    assert linux["pids"] == {"limit": 10}
    res = Resources(memory=64 << 20, memory_swap=-1, memory_reservation=32 << 20,
                    cpu_quota=50_000, cpu_period=200_000, cpu_shares=512)
    linux = build_config(_spec(resources=res), HOST)["linux"]["resources"]
    assert linux["memory"] == {"limit": 64 << 20, "swap": -1, "reservation": 32 << 20}
    assert linux["cpu"] == {"quota": 50_000, "period": 200_000, "shares": 512}
    no_swap_accounting = HostInfo(HOST.cgroup_mode, HOST.cgroup_manager, HOST.bounding,
                                  HOST.hard_limits, False, 2)
    linux = build_config(_spec(resources=Resources(memory=64 << 20)), no_swap_accounting)
    assert linux["linux"]["resources"]["memory"] == {"limit": 64 << 20}


def test_rlimits_unlimited_is_rlim_infinity() -> None:
    ok = build_config(_spec(ulimits=(Ulimit("nofile", 1024, 20000), Ulimit("core", -1, -1))),
                      HOST)
    assert ok["process"]["rlimits"] == [
        {"type": "RLIMIT_NOFILE", "hard": 20000, "soft": 1024},
        {"type": "RLIMIT_CORE", "hard": 2**64 - 1, "soft": 2**64 - 1}]


def test_devices_are_created_and_allowed() -> None:
    null = Device("/dev/mynull", "c", 1, 3, 0o666, 0, 0, "rw")
    config = build_config(_spec(devices=(null,)), HOST)
    assert config["linux"]["devices"] == [{"path": "/dev/mynull", "type": "c", "major": 1,
                                           "minor": 3, "fileMode": 0o666, "uid": 0, "gid": 0}]
    rules = config["linux"]["resources"]["devices"]
    assert rules[0] == {"allow": False, "access": "rwm"}  # Docker's deny-all first
    assert rules[-1] == {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rw"}
    assert "devices" not in build_config(_spec(), HOST)["linux"]


def test_namespaces_network_modes_and_cgroupns_on_v2() -> None:
    host_net = build_config(_spec(network="host"), HOST)["linux"]
    assert {"type": "network"} not in host_net["namespaces"] and host_net["sysctl"] == {}
    path = build_config(_spec(network="/run/netns/x"), HOST)["linux"]["namespaces"]
    assert {"type": "network", "path": "/run/netns/x"} in path
    v2 = HostInfo(CgroupMode.UNIFIED, CgroupManager.CGROUPFS, HOST.bounding, {}, True, 2)
    assert {"type": "cgroup"} in build_config(_spec(), v2)["linux"]["namespaces"]


def test_tmpfs_and_user_mounts_replace_defaults() -> None:
    config = build_config(_spec(
        tmpfs=(("/run", "size=1m,exec"),),
        mounts=(Mount("/dev/shm", "/host/shm"), Mount("/data", "/srv/data")),
        readonly_rootfs=True, terminal=True, cap_drop=("all",), cap_add=("net_admin",)), HOST)
    by_dest = {m["destination"]: m for m in config["mounts"]}
    assert by_dest["/run"]["options"] == ["nosuid", "nodev", "size=1m", "exec"]
    assert by_dest["/dev/shm"]["source"] == "/host/shm"
    assert config["root"]["readonly"] is True
    assert "TERM=xterm" in config["process"]["env"] and config["process"]["terminal"] is True
    assert config["process"]["capabilities"]["effective"] == ["CAP_NET_ADMIN"]


def test_an_image_without_path_gets_dockers_default_path() -> None:
    env = build_config(_spec(env=("FOO=1",)), HOST)["process"]["env"]
    assert env == ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "FOO=1",
                   f"HOSTNAME={CID[:12]}"]


def test_a_path_of_the_image_or_the_user_is_kept() -> None:
    env = build_config(_spec(env=("PATH=/opt/bin", "FOO=1")), HOST)["process"]["env"]
    assert [e for e in env if e.startswith("PATH=")] == ["PATH=/opt/bin"]
