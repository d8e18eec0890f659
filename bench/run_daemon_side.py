"""Sections 3 and 4 of ``bench/run_latency.py``: the daemon side through the API, the floor.

Section 3 runs :func:`bench.api_runs.api_run_once` on every engine's socket, engines
alternating, for ``--network none`` and the bridge; wharfd's own phase timings
(``GET /system/phases``, cleared with ``DELETE /system/phases`` before each mode) are printed
when the daemon has that route, else a line says it has not. Section 4 is the floor without a
daemon: raw ``crun run`` of wharf's bundle and the runtime layer in-process. Not a script.
"""

from __future__ import annotations

import http.client
import os
import shutil
from pathlib import Path
from typing import Any

from bench.api_runs import PHASES, api_run_once
from bench.common import SUMMARY_HEADER, Summary, ms, print_table, ratio, run_timed, summary_row
from bench.contenders import MODE_LABELS, MODES, Contender, bench_labels
from bench.engines import once
from bench.runtime_probe import Probe
from tests.daemon_fixture import UnixConnection
from wharf.daemon.core.runtime import oci, rootfs

GOAL_CREATE_EXIT = {"none": 0.040, "bridge": 0.055}  # issue #14, wharf daemon side medians


def daemon_section(engines: list[Contender], image: str, runs: int) -> float:
    """Both modes; returns wharf's ``--network none`` create -> exit median (s)."""
    medians: dict[str, float] = {}
    for mode in MODES:
        _clear_phases(engines[0].socket)
        results = _alternate(engines, image, mode, runs)
        _print_mode(engines, mode, results)
        medians[mode] = Summary.of([r["create -> exit"] for r in results["wharf"]]).median
        _print_phases(engines[0].socket, mode)
    for mode in MODES:
        met = "met" if medians[mode] <= GOAL_CREATE_EXIT[mode] else "NOT met"
        print(f"goal wharf daemon-side create -> exit <= {GOAL_CREATE_EXIT[mode] * 1e3:.0f} ms, "
              f"{MODE_LABELS[mode]}: median {ms(medians[mode])} ms -> {met}")
    return medians["none"]


def _alternate(engines: list[Contender], image: str, mode: str,
               runs: int) -> dict[str, list[dict[str, float]]]:
    """One warm-up each, then ``runs`` rounds, engines alternating within each round."""
    conns = {e.name: (UnixConnection(e.socket), UnixConnection(e.socket)) for e in engines}
    bodies = {e.name: e.create_body(image, ["true"], mode, bench_labels()) for e in engines}
    results: dict[str, list[dict[str, float]]] = {e.name: [] for e in engines}
    try:
        for i in range(runs + 1):
            for engine in engines[i % len(engines):] + engines[:i % len(engines)]:
                sample = api_run_once(*conns[engine.name], bodies[engine.name])
                if i:
                    results[engine.name].append(sample)
                elif engine.name == "wharf":
                    _clear_phases(engine.socket)  # the warm-up is not in wharfd's phases
    finally:
        for pair in conns.values():
            for conn in pair:
                conn.close()
    return results


def _print_mode(engines: list[Contender], mode: str,
                results: dict[str, list[dict[str, float]]]) -> None:
    names = [e.name for e in engines]
    header = ["", *[f"{n} {s}" for n in names for s in ("med", "p90")], "wharf/docker"]
    rows = []
    for phase in PHASES:
        cells = [phase]
        for name in names:
            s = Summary.of([r[phase] for r in results[name]])
            cells += [ms(s.median), ms(s.p90)]
        docker = Summary.of([r[phase] for r in results["docker"]]).median
        wharf = Summary.of([r[phase] for r in results["wharf"]]).median
        cells.append(ratio(wharf, docker))
        rows.append(cells)
    n = len(results["wharf"])
    print_table(f"3. daemon side via the API, {MODE_LABELS[mode]}  (ms, n = {n} each, engines "
                "alternating; create -> exit = create + open wait + start + start -> exit)",
                header, rows)


def _clear_phases(sock: Path) -> None:
    once(sock, "DELETE", "/system/phases", expect=(204, 404, 405))


def _print_phases(sock: Path, mode: str) -> None:
    """wharfd's ``GET /system/phases`` for the runs of this mode, when it has the route."""
    try:
        reply: Any = once(sock, "GET", "/system/phases")
    except (RuntimeError, http.client.HTTPException, ValueError) as exc:
        print(f"\nwharfd phases: none (GET /system/phases: {str(exc)[:80]}); this is the hook "
              "for the daemon's per-phase timings")
        return
    phases = reply.get("Phases") or {}
    rows = [[name, str(int(p["Count"])), f"{p['Median']:.1f}", f"{p['P90']:.1f}",
             f"{p['Max']:.1f}"] for name, p in phases.items()]
    print_table(f"3. wharfd's own phases, {MODE_LABELS[mode]} (GET /system/phases after "
                "these runs)", ["", "n", "median ms", "p90 ms", "max ms"],
                rows or [["(no phase recorded)", "", "", "", ""]])


# ---- 4. floor ----------------------------------------------------------------------------------

def raw_crun_once(probe: Probe) -> float:
    """Seconds for ``crun run`` of a bundle with wharf's config (the overlay is set up untimed)."""
    cid = os.urandom(32).hex()
    cdir = probe.containers / cid
    cdir.mkdir(parents=True)
    for name in ("hosts", "hostname", "resolv.conf"):
        (cdir / name).write_text("")
    paths = rootfs.mount_overlay([probe.layer], cdir / "rootfs")
    try:
        probe._write_config(cid, cdir, paths.merged)  # same config as the probe
        runtime = probe.runtime.oci
        return run_timed([str(runtime.executable), *runtime.global_args, "run",
                          "--bundle", str(cdir), cid])
    finally:
        rootfs.unmount_overlay(cdir / "rootfs")
        shutil.rmtree(cdir, ignore_errors=True)


def floor_section(base: Path, runs: int, daemon_total: float) -> None:
    probe = Probe(base, oci.RuntimeKind.CRUN, "bpf")
    raw_crun_once(probe)
    probe.run_once()  # warm-up: page cache, seccomp BPF cache
    raw: list[float] = []
    layer: list[float] = []
    for _ in range(runs):
        raw.append(raw_crun_once(probe))
        layer.append(probe.run_once()["run→exit"] / 1e3)
    base_median = Summary.of(raw).median
    rows = [summary_row("crun run, wharf's bundle (floor)", raw, base_median),
            summary_row("runtime layer in-process: overlay -> exit file", layer, base_median)]
    print_table("4. floor, no daemon  (ratio = median / crun run median)", SUMMARY_HEADER, rows)
    print("\nwharf create -> exit (--network none) / crun run:      "
          f"{ratio(daemon_total, base_median)}")
    print(f"wharf create -> exit (--network none) / runtime layer: "
          f"{ratio(daemon_total, Summary.of(layer).median)}")
    kind = "via the hybrid-cgroup wrapper" if probe.runtime.oci.wrapper else "directly"
    print(f"crun {kind}; bundle = busybox-static overlay, Docker caps/masks, precompiled seccomp "
          "BPF, pids limit 64 (bench/runtime_probe.py); runtime layer = conmon + crun create + "
          "start + exit file.")
