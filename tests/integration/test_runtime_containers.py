"""Real containers: overlay rootfs, config.json, conmon + crun (and runc), limits, cleanup.

Needs root, crun, runc, conmon and busybox-static. Every test removes what it made: the
runtime's container, the overlay mount, the dirs, the cgroups (checked) and conmon (checked).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from wharf.daemon.core.runtime import cgroups, oci, rootfs, seccomp, seccomp_bpf
from wharf.daemon.core.runtime import spec as oci_spec
from wharf.daemon.core.runtime.capabilities import to_mask
from wharf.daemon.core.runtime.monitor import ConmonRuntime, CreateRequest, ExitStatus, alive
from wharf.daemon.core.runtime.users import resolve_user

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
    pytest.mark.skipif(not all(Path(p).exists() for p in (
        "/usr/bin/crun", "/usr/bin/conmon", "/bin/busybox")), reason="needs crun, conmon, busybox"),
]

APPLETS = ("sh", "true", "ls", "cat", "echo", "id", "hostname", "grep", "head", "tail", "wc",
           "sleep", "seq")


@pytest.fixture(scope="module")
def layer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("busybox-layer")
    for d in ("bin", "etc", "tmp"):
        (path / d).mkdir()
    shutil.copy("/bin/busybox", path / "bin/busybox")
    for applet in APPLETS:
        (path / "bin" / applet).symlink_to("busybox")
    (path / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\n"
                                     "www-data:x:33:33:www-data:/var/www:/bin/sh\n")
    (path / "etc/group").write_text("root:x:0:root\nwww-data:x:33:\n")
    return path


@dataclass
class Env:
    """What a daemon would hold: host facts, runtime, seccomp cache, dirs."""

    base: Path
    layer: Path
    runtime: ConmonRuntime
    host: oci_spec.HostInfo
    cache: seccomp_bpf.BpfCache
    made: list[str] = field(default_factory=list)

    def prepare(self, args: tuple[str, ...], user: str = "", **kw: Any) -> str:
        """Mount the rootfs and write config.json; returns the container id."""
        cid = os.urandom(32).hex()
        self.made.append(cid)
        cdir = self.runtime.paths(cid).container_dir
        cdir.mkdir(parents=True)
        (cdir / "hostname").write_text(kw.get("hostname", cid[:12]) + "\n")
        (cdir / "hosts").write_text("127.0.0.1 localhost\n")
        (cdir / "resolv.conf").write_text("")
        merged = rootfs.mount_overlay([self.layer], cdir / "rootfs").merged
        spec = oci_spec.ContainerSpec(cid, args, merged, cdir, env=("PATH=/bin",),
                                      user=resolve_user(merged, user), **kw)
        caps = oci_spec.container_capabilities(spec, self.host)
        sec = seccomp.to_oci(seccomp.load_profile(), caps)
        bpf = self.cache.get(sec) if self.runtime.oci.takes_seccomp_bpf else None
        config = oci_spec.build_config(spec, self.host, seccomp=sec, seccomp_bpf=bpf)
        self.runtime.paths(cid).config.write_text(json.dumps(config))
        return cid

    def run(self, args: tuple[str, ...], **kw: Any) -> tuple[ExitStatus, str]:
        """Create, start and wait; returns the exit status and the log's text lines."""
        cid = self.prepare(args, **kw)
        self.runtime.create(CreateRequest(cid, "t"))
        self.runtime.start(cid)
        status = self.runtime.wait(cid, timeout=30)
        return status, self.output(cid)

    def output(self, cid: str) -> str:
        lines = self.runtime.log_path(cid).read_text().splitlines()
        return "\n".join(line.split(" ", 3)[3] for line in lines if line.count(" ") >= 3)

    def cleanup(self, cid: str) -> None:
        conmon_pid = self.runtime.conmon_pid(cid)
        self.runtime.delete(cid, force=True)
        cdir = self.runtime.paths(cid).container_dir
        rootfs.unmount_overlay(cdir / "rootfs")
        shutil.rmtree(cdir)
        leftovers = [p for p in cgroups.container_dirs(cid, cgroups.host_mounts()) if p.exists()]
        assert leftovers == [], leftovers
        assert conmon_pid is None or not alive(conmon_pid), f"conmon {conmon_pid} still alive"
        assert not Path(f"/sys/fs/cgroup/memory/wharf/{cid}").exists()


def _env(base: Path, layer: Path, kind: oci.RuntimeKind) -> Iterator[Env]:
    mode = cgroups.detect_mode()
    runtime = oci.make_runtime(kind, base / "run", mode)
    env = Env(base, layer, ConmonRuntime(runtime, base / "run", base / "containers"),
              oci_spec.probe_host(mode, cgroups.choose_manager()),
              seccomp_bpf.BpfCache(base / "seccomp"))
    yield env
    for cid in env.made:
        env.cleanup(cid)


@pytest.fixture
def env(tmp_path: Path, layer: Path) -> Iterator[Env]:
    yield from _env(tmp_path, layer, oci.RuntimeKind.CRUN)


@pytest.fixture
def runc_env(tmp_path: Path, layer: Path) -> Iterator[Env]:
    if not Path("/usr/sbin/runc").exists():
        pytest.skip("runc not installed")
    yield from _env(tmp_path, layer, oci.RuntimeKind.RUNC)


def test_echo_goes_to_the_k8s_log(env: Env) -> None:
    status, out = env.run(("/bin/echo", "hi"))
    assert (status.code, status.oom_killed, out) == (0, False, "hi")
    assert " stdout F hi" in env.runtime.log_path(env.made[0]).read_text()


def test_exit_code(env: Env) -> None:
    status, _ = env.run(("/bin/sh", "-c", "exit 3"))
    assert status.code == 3


def test_hostname_and_user(env: Env) -> None:
    _, out = env.run(("/bin/sh", "-c", "hostname; id"), hostname="box-1", user="www-data")
    # the primary group is among the supplementary ones, as dockerd sets them
    assert out.splitlines() == ["box-1", "uid=33(www-data) gid=33(www-data) groups=33(www-data)"]


def test_hardening_inside(env: Env) -> None:
    script = textwrap.dedent("""\
        echo pid=$$
        echo kcore=$(cat /proc/kcore 2>/dev/null | wc -c) timer_list=$(cat /proc/timer_list | wc -c)
        ls /sys/firmware | wc -l
        (echo 1 > /proc/sys/kernel/domainname) 2>/dev/null && echo sys=rw || echo sys=ro
        grep -E '^(Seccomp|CapEff):' /proc/self/status
    """)
    status, out = env.run(("/bin/sh", "-c", script))
    caps = oci_spec.container_capabilities(
        oci_spec.ContainerSpec("x", ("x",), Path("/"), Path("/")), env.host)
    assert status.code == 0, out
    # /proc/kcore is absent on this VM's kernel; /proc/timer_list is masked with /dev/null,
    # /sys/firmware with an empty read-only tmpfs.
    assert out.splitlines() == ["pid=1", "kcore=0 timer_list=0", "0", "sys=ro",
                                f"CapEff:\t{to_mask(caps):016x}", "Seccomp:\t2"]


def test_memory_limit_ooms(env: Env) -> None:
    limits = oci_spec.Resources(memory=32 << 20, memory_swap=32 << 20)
    status, _ = env.run(("/bin/tail", "/dev/zero"), resources=limits)
    assert (status.code, status.oom_killed) == (137, True)
    assert not (Path.cwd() / "oom").exists()  # conmon's cwd is the bundle, not ours


def test_pids_limit(env: Env) -> None:
    script = "for i in $(seq 20); do sleep 5 & done 2>&1; echo spawned"
    _, out = env.run(("/bin/sh", "-c", script), resources=oci_spec.Resources(pids_limit=10))
    assert "can't fork" in out


def test_stats_and_kill_while_running(env: Env) -> None:
    cid = env.prepare(("/bin/sleep", "60"), resources=oci_spec.Resources(memory=32 << 20,
                                                                        pids_limit=10))
    pid = env.runtime.create(CreateRequest(cid, "sleeper"))
    assert env.runtime.state(cid).status == "created"
    env.runtime.start(cid)
    assert env.runtime.state(cid).pid == pid
    assert env.runtime.state(cid).status == "running"
    stats = cgroups.read_stats(cid, cgroups.host_mounts())
    assert stats.memory_limit == 32 << 20 and stats.pids_limit == 10
    assert stats.pids_current == 1 and (stats.memory_usage or 0) > 0
    assert env.runtime.exit_status(cid) is None
    env.runtime.kill(cid, signal.SIGKILL)
    assert env.runtime.wait(cid, timeout=10).code == 137


def test_container_outlives_the_process_that_started_it(env: Env, tmp_path: Path) -> None:
    cid = env.prepare(("/bin/sh", "-c", "echo started; sleep 60"))
    run, containers = str(tmp_path / "run"), str(tmp_path / "containers")
    launcher = textwrap.dedent(f"""\
        from pathlib import Path
        from wharf.daemon.core.runtime import oci
        from wharf.daemon.core.runtime.cgroups import detect_mode
        from wharf.daemon.core.runtime.monitor import ConmonRuntime, CreateRequest
        rt = oci.make_runtime(oci.RuntimeKind.CRUN, Path({run!r}), detect_mode())
        r = ConmonRuntime(rt, Path({run!r}), Path({containers!r}))
        r.create(CreateRequest({cid!r}, "survivor"))
        r.start({cid!r})
    """)
    subprocess.run([sys.executable, "-c", launcher], check=True, timeout=60)
    assert env.runtime.state(cid).status == "running"
    conmon_pid = env.runtime.conmon_pid(cid)
    assert conmon_pid is not None and alive(conmon_pid)
    env.runtime.kill(cid, signal.SIGKILL)  # sh as PID 1 ignores SIGTERM (no handler)
    status = env.runtime.wait(cid, timeout=10)
    assert status.code == 137 and "started" in env.output(cid)


def test_runc_runs_the_same_config(runc_env: Env) -> None:
    status, out = runc_env.run(("/bin/sh", "-c", "grep Seccomp: /proc/self/status; exit 4"))
    assert (status.code, out) == (4, "Seccomp:\t2")


def test_overlay_with_many_long_layers(tmp_path: Path, layer: Path) -> None:
    layers = []
    for i in range(60):
        d = tmp_path / f"{'layer-with-a-deliberately-long-directory-name-' * 2}{i:03d}"
        d.mkdir()
        (d / "f").write_text(str(i))
        (d / f"only{i}").touch()
        layers.append(d)
    paths = rootfs.mount_overlay([*layers, layer], tmp_path / "ctr" / "rootfs")
    try:
        assert (paths.merged / "f").read_text() == "0"  # the first layer is the top
        assert (paths.merged / "only59").exists() and (paths.merged / "bin/busybox").exists()
        assert (paths.links / "0").is_symlink()  # the option string needed the short links
        (paths.merged / "new").write_text("x")
        assert (paths.upper / "new").exists()
    finally:
        rootfs.unmount_overlay(tmp_path / "ctr" / "rootfs")
    assert not rootfs.is_mounted(paths.merged) and not paths.base.exists()

