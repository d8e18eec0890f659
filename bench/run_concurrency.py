"""Sections 5 and 6 of ``bench/run_latency.py``: many containers at once, and memory.

Per engine, over its Docker API on its bridge (one thread and one pre-connected
connection per container, released together): ``--starts`` containers running
``busybox sleep 30`` created one after another, then started concurrently and force-removed
concurrently; then ``--lifecycles`` whole ``run --rm true`` lifecycles (create, wait, start,
exit code, remove) concurrently. Every exit code must be 0, and afterwards no container of the
bench may be left (and, for wharf, no conmon of this run nor a new mount under its directory).
wharfd's and conmon's memory is taken while the started containers run. Each row also gives
the machine's busy CPU time (all processes, from /proc/stat) per container, and the rate that
CPU cost allows on this machine's cores (cores / CPU per container): a ceiling no scheduling in
the daemon can lift. Not a script.
"""

from __future__ import annotations

import argparse
import os
from collections import Counter
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

from bench.api_runs import concurrently, create, run_to_completion
from bench.common import ms, print_table
from bench.contenders import LABEL, Contender, bench_labels, labelled, remove_labelled
from bench.engines import call, conmon_pids, mounts_under
from tests.daemon_fixture import UnixConnection

GOAL_STARTS = 150.0     # issue #14: 30 concurrent starts >= 150/s
GOAL_LIFECYCLES = 60.0  # issue #14: 100 concurrent run --rm true >= 60/s


@dataclass
class Memory:
    idle_cold: int
    idle_warm: int = 0
    loaded: int = 0
    conmon_total: int = 0
    conmon_count: int = 0
    conmon_pss: int = 0


def concurrency_section(engines: list[Contender], image: str, args: argparse.Namespace,
                        base: Path, memory: Memory, wharfd_pid: int) -> None:
    rows: list[list[str]] = []
    checks: list[str] = []
    rates: dict[str, tuple[float, float]] = {}
    mounts_before = set(mounts_under(base))
    for engine in engines:
        sample = None
        if engine.name == "wharf":
            memory.idle_warm = vm_rss(wharfd_pid)
            sample = (memory, wharfd_pid, base)
        busy = busy_seconds()
        starts, start_s, rm_s = _starts(engine, image, args.starts, sample)
        start_cpu, busy = busy_seconds() - busy, busy_seconds()  # the removal's CPU as well
        codes, life_s = _lifecycles(engine, image, args.lifecycles)
        life_cpu = busy_seconds() - busy
        rates[engine.name] = (args.starts / start_s, args.lifecycles / life_s)
        rows += [[f"{engine.name}: start {args.starts} concurrently ({starts} running after)",
                  ms(start_s), f"{args.starts / start_s:.1f}", *_cpu(start_cpu, args.starts)],
                 [f"{engine.name}: rm -f {args.starts} running, concurrently", ms(rm_s),
                  f"{args.starts / rm_s:.1f}", "", ""],
                 [f"{engine.name}: {args.lifecycles} x run --rm true (create, start, wait, rm)",
                  ms(life_s), f"{args.lifecycles / life_s:.1f}", *_cpu(life_cpu, args.lifecycles)]]
        checks.append(_check(engine, codes, base, mounts_before))
    print_table(f"5. concurrency over the API, default bridge ({args.starts} starts, "
                f"{args.lifecycles} lifecycles; one thread + connection each)",
                ["", "wall ms", "containers/s", "CPU ms/container", "CPU ceiling/s"], rows)
    print(f"\nCPU = busy time of all {os.cpu_count()} cores over the step (the start row "
          "includes the forced removal after it); ceiling = cores / CPU per container.")
    for line in checks:
        print(line)
    wharf_starts, wharf_life = rates["wharf"]
    docker_starts, docker_life = rates["docker"]
    for what, goal, wharf_rate, docker_rate in (
            ("concurrent starts", GOAL_STARTS, wharf_starts, docker_starts),
            ("concurrent run --rm", GOAL_LIFECYCLES, wharf_life, docker_life)):
        print(f"goal wharf {what} >= {goal:.0f}/s: {wharf_rate:.1f}/s (docker "
              f"{docker_rate:.1f}/s) -> {'met' if wharf_rate >= goal else 'NOT met'}")


def busy_seconds() -> float:
    """Seconds of CPU time all cores spent busy since boot (/proc/stat: all but idle, iowait)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def _cpu(seconds: float, n: int) -> list[str]:
    per = seconds / n
    return [f"{per * 1000:.1f}", f"{(os.cpu_count() or 1) / per:.0f}" if per > 0 else "-"]


def _starts(engine: Contender, image: str, n: int,
            sample: tuple[Memory, int, Path] | None) -> tuple[int, float, float]:
    """Create ``n`` sleepers (sequentially), start them concurrently, force-remove them
    concurrently; (running after the start, start seconds, removal seconds)."""
    body = engine.create_body(image, ["busybox", "sleep", "30"], "bridge", bench_labels())
    conn = UnixConnection(engine.socket)
    try:
        ids = [create(conn, body) for _ in range(n)]
    finally:
        conn.close()
    start_s = concurrently(engine.socket, ids,
                           lambda c, cid: call(c, "POST", f"/containers/{cid}/start"))
    running = len(labelled(engine, LABEL, running_only=True))
    if sample is not None:
        _sample_memory(*sample)
    rm_s = concurrently(engine.socket, ids,
                        lambda c, cid: call(c, "DELETE", f"/containers/{cid}?force=1"))
    return running, start_s, rm_s


def _lifecycles(engine: Contender, image: str, n: int) -> tuple[list[int], float]:
    body = engine.create_body(image, ["true"], "bridge", bench_labels())
    codes: list[int] = []
    seconds = concurrently(engine.socket, [str(i) for i in range(n)],
                           lambda c, _: run_to_completion(c, body, codes))
    return codes, seconds


def _check(engine: Contender, codes: list[int], base: Path, mounts_before: set[str]) -> str:
    """One line: the exit codes seen and what of the bench's containers is left."""
    left = labelled(engine, LABEL)
    conmons: list[int] = []
    mounts: list[str] = []
    extra = ""
    if engine.name == "wharf":
        conmons = conmon_pids(base)
        mounts = sorted(set(mounts_under(base)) - mounts_before)
        extra = f", conmon of this run {conmons or 'none'}, new mounts {mounts[:3] or 'none'}"
    if left:
        remove_labelled(engine, LABEL)
    tally = ", ".join(f"{count} x {code}" for code, count in sorted(Counter(codes).items()))
    ok = not left and not conmons and not mounts and set(codes) == {0}
    return (f"check {engine.name}: {len(codes)} exit codes ({tally}); containers left "
            f"{len(left) or 'none'}{extra} -> {'ok' if ok else 'PROBLEM'}")


def _sample_memory(memory: Memory, pid: int, base: Path) -> None:
    memory.loaded = vm_rss(pid)
    conmons = conmon_pids(base)
    memory.conmon_count = len(conmons)
    memory.conmon_total = sum(vm_rss(p) for p in conmons)
    memory.conmon_pss = sum(pss(p) for p in conmons)


def memory_section(memory: Memory, n: int) -> None:
    count = memory.conmon_count or 1
    rows = [
        ["wharfd idle, just started (before any container)", *_kib(memory.idle_cold)],
        ["wharfd idle, after sections 1-4 (no container)", *_kib(memory.idle_warm)],
        [f"wharfd with {n} running containers", *_kib(memory.loaded)],
        ["  delta / container (vs idle after 1-4)", *_kib((memory.loaded - memory.idle_warm) / n)],
        ["  delta / container (vs just started)", *_kib((memory.loaded - memory.idle_cold) / n)],
        [f"conmon: {memory.conmon_count} processes, VmRSS total", *_kib(memory.conmon_total)],
        ["  conmon VmRSS / container", *_kib(memory.conmon_total / count)],
        ["  conmon Pss / container (shared pages split)", *_kib(memory.conmon_pss / count)],
    ]
    print_table("6. wharf memory: VmRSS from /proc/<pid>/status, Pss from smaps_rollup",
                ["", "MiB", "KiB"], rows)
    print("\nCPython rarely returns freed memory to the OS, so the idle figure after sections 1-4 "
          "is the fairer baseline for the per-container delta.")


def _kib(kib: float) -> list[str]:
    return [f"{kib / 1024:.1f}", f"{kib:.0f}"]


def vm_rss(pid: int) -> int:
    """VmRSS of ``pid`` in KiB (0 when it is gone)."""
    return _proc_kib(Path(f"/proc/{pid}/status"), "VmRSS:")


def pss(pid: int) -> int:
    """Pss of ``pid`` in KiB (shared pages divided among their users; 0 when it is gone)."""
    return _proc_kib(Path(f"/proc/{pid}/smaps_rollup"), "Pss:")


def _proc_kib(path: Path, key: str) -> int:
    with suppress(OSError):
        for entry in path.read_text().splitlines():
            if entry.startswith(key):
                return int(entry.split()[1])
    return 0
