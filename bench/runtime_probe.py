"""Time wharf's runtime path for `/bin/true` in a busybox rootfs, phase by phase.

overlay mount → config.json → conmon + runtime create → start → exit file, then cleanup
(delete, cgroups, umount). Needs root, crun/runc, conmon and busybox-static.

    .venv/bin/python bench/runtime_probe.py --runs 20 [--runtime runc] [--seccomp json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from wharf.daemon.core.runtime import cgroups, oci, rootfs, seccomp, seccomp_bpf
from wharf.daemon.core.runtime import spec as oci_spec
from wharf.daemon.core.runtime.monitor import ConmonRuntime, CreateRequest

APPLETS = ("sh", "true", "ls", "cat", "echo", "id", "hostname")


def busybox_layer(path: Path) -> Path:
    """A one-layer busybox rootfs (static busybox plus a few applet links)."""
    (path / "bin").mkdir(parents=True)
    (path / "etc").mkdir()
    shutil.copy("/bin/busybox", path / "bin" / "busybox")
    for applet in APPLETS:
        (path / "bin" / applet).symlink_to("busybox")
    (path / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (path / "etc" / "group").write_text("root:x:0:root\n")
    return path


class Probe:
    """The pieces a daemon would hold, built once."""

    def __init__(self, base: Path, kind: oci.RuntimeKind, seccomp_mode: str) -> None:
        mode = cgroups.detect_mode()
        self.host = oci_spec.probe_host(mode, cgroups.choose_manager())
        self.layer = busybox_layer(base / "layer")
        self.containers = base / "containers"
        runtime = oci.make_runtime(kind, base / "run", mode)
        self.runtime = ConmonRuntime(runtime, base / "run", self.containers)
        self.profile = seccomp.load_profile()
        self.cache = seccomp_bpf.BpfCache(base / "seccomp")
        self.seccomp_mode = seccomp_mode

    def run_once(self) -> dict[str, float]:
        cid = os.urandom(32).hex()
        cdir = self.containers / cid
        marks = [("begin", time.perf_counter())]

        def mark(name: str) -> None:
            marks.append((name, time.perf_counter()))

        cdir.mkdir(parents=True)
        for name in ("hosts", "hostname", "resolv.conf"):
            (cdir / name).write_text("")
        paths = rootfs.mount_overlay([self.layer], cdir / "rootfs")
        mark("overlay")
        self._write_config(cid, cdir, paths.merged)
        mark("config")
        self.runtime.create(CreateRequest(cid, f"probe-{cid[:8]}"))
        mark("conmon+create")
        self.runtime.start(cid)
        mark("start")
        status = self.runtime.wait(cid, timeout=10)
        mark("exit file")
        assert status.code == 0, status
        self.runtime.delete(cid, force=True)
        rootfs.unmount_overlay(cdir / "rootfs")
        shutil.rmtree(cdir)
        mark("cleanup")
        out = {name: (t - marks[i][1]) * 1e3 for i, (name, t) in enumerate(marks[1:])}
        out["run→exit"] = (marks[5][1] - marks[0][1]) * 1e3
        return out

    def _write_config(self, cid: str, cdir: Path, merged: Path) -> None:
        spec = oci_spec.ContainerSpec(
            cid, ("/bin/true",), merged, cdir, hostname=cid[:12], readonly_rootfs=True,
            env=("PATH=/bin",), resources=oci_spec.Resources(pids_limit=64))
        caps = oci_spec.container_capabilities(spec, self.host)
        sec = seccomp.to_oci(self.profile, caps) if self.seccomp_mode != "none" else None
        bpf = None
        if sec is not None and self.seccomp_mode == "bpf" and self.runtime.oci.takes_seccomp_bpf:
            bpf = self.cache.get(sec)
        config = oci_spec.build_config(spec, self.host, seccomp=sec, seccomp_bpf=bpf)
        (cdir / "config.json").write_text(json.dumps(config))


def timed(fn: Callable[[], object], runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1e3)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--runtime", choices=["crun", "runc"], default="crun")
    parser.add_argument("--seccomp", choices=["bpf", "json", "none"], default="bpf")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir="/var/tmp", prefix="wharf-probe-") as tmp:
        probe = Probe(Path(tmp), oci.RuntimeKind(args.runtime), args.seccomp)
        sec = seccomp.to_oci(probe.profile, oci_spec.container_capabilities(
            oci_spec.ContainerSpec("x", ("x",), Path("/"), Path("/")), probe.host))
        compile_ms = timed(lambda: seccomp_bpf.compile_bpf(sec), 10)
        print(f"seccomp compile (ctypes libseccomp, {len(seccomp_bpf.compile_bpf(sec)) // 8} "
              f"insns): median {statistics.median(compile_ms):.1f} ms")
        probe.run_once()  # warm-up: page cache, seccomp cache
        results = [probe.run_once() for _ in range(args.runs)]
    print(f"{args.runtime}, seccomp={args.seccomp}, {args.runs} runs (ms: median, min-max)")
    for phase in results[0]:
        values = [r[phase] for r in results]
        median = statistics.median(values)
        print(f"  {phase:14s} {median:6.1f}  {min(values):6.1f}-{max(values):.1f}")


if __name__ == "__main__":
    main()
