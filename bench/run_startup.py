"""Section 2 of ``bench/run_latency.py``: what the wharf CLI costs before the daemon works.

Rows, round-robin after one warm-up round: the venv's ``python -c pass`` (the floor),
``wharf --help`` (no daemon), ``wharf version`` and ``docker version`` (one round trip to the
bench's wharfd each). Then, through :class:`bench.first_byte.FirstByteProxy` in front of wharfd,
the time from spawning ``wharf run --rm`` (and ``docker run --rm``, for comparison) to the
first byte the daemon gets, and to the exit. Not a script.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from bench.common import SUMMARY_HEADER, Summary, ms, print_table, run_timed, summary_row
from bench.contenders import Contender
from bench.first_byte import FirstByteProxy

GOAL_STARTUP = 0.035     # issue #14: wharf --help and wharf version <= 35 ms
GOAL_FIRST_BYTE = 0.030  # issue #14: wharf run --rm <= 30 ms in the CLI before its first byte


def startup_section(wharf: Contender, base: Path, image: str, runs: int) -> None:
    """Print the start-up table, the first-byte table and their goal lines."""
    wharf_bin, host = wharf.cli[0], wharf.cli[-1]
    cases = {
        "python -c pass (venv)": [sys.executable, "-c", "pass"],
        "wharf --help": [wharf_bin, "--help"],
        "wharf version (-> wharfd)": [wharf_bin, "-H", host, "version"],
        "docker version (-> wharfd)": ["docker", "-H", host, "version"],
    }
    samples: dict[str, list[float]] = {label: [] for label in cases}
    for i in range(runs + 1):
        for label, argv in cases.items():
            seconds = run_timed(argv)
            if i:
                samples[label].append(seconds)
    floor = Summary.of(samples["python -c pass (venv)"]).median
    print_table("2. CLI start-up, wall time  (ratio = median / python -c pass median)",
                SUMMARY_HEADER, [summary_row(k, v, floor) for k, v in samples.items()])
    first = _first_byte_rows(wharf, base, image, runs)
    for label in ("wharf --help", "wharf version (-> wharfd)"):
        _goal(label, Summary.of(samples[label]).median, GOAL_STARTUP)
    _goal("wharf run --rm: spawn -> first byte to wharfd", first, GOAL_FIRST_BYTE)


def _first_byte_rows(wharf: Contender, base: Path, image: str, runs: int) -> float:
    """Time ``run --rm --network none`` through the proxy; wharf's first-byte median (s)."""
    proxy_path = base / "first-byte.sock"
    first: dict[str, list[float]] = {"wharf": [], "docker": []}
    total: dict[str, list[float]] = {"wharf": [], "docker": []}
    with FirstByteProxy(proxy_path, wharf.socket) as proxy:
        argvs = {"wharf": [wharf.cli[0], "-H", proxy.host],
                 "docker": ["docker", "-H", proxy.host]}
        for i in range(runs + 1):
            for name, prefix in argvs.items():
                to_first, to_exit = proxy.time_cli(
                    [*prefix, "run", "--rm", "--network", "none", image, "true"])
                if i:
                    first[name].append(to_first)
                    total[name].append(to_exit)
        calls = {}
        for name, prefix in argvs.items():  # one more run each, untimed: which calls it makes
            proxy.requests.clear()
            proxy.time_cli([*prefix, "run", "--rm", "--network", "none", image, "true"])
            calls[name] = list(proxy.requests)
    base_s = Summary.of(first["docker"]).median
    rows = [summary_row(f"{name} run --rm: spawn -> first byte", first[name], base_s)
            for name in first]
    rows += [summary_row(f"{name} run --rm: spawn -> exit (via the proxy)", total[name], None)
             for name in total]
    print_table("2b. CLI before its first byte to wharfd, `run --rm --network none`  "
                "(unix proxy timestamps the first byte; ratio = median / docker CLI's)",
                SUMMARY_HEADER, rows)
    print()
    for name, lines in calls.items():
        print(f"{name} run --rm calls ({len(lines)}): " + ", ".join(
            re.sub(r"[0-9a-f]{64}", "ID", line.split("?")[0]) for line in lines))
    return Summary.of(first["wharf"]).median


def _goal(label: str, median: float, goal: float) -> None:
    met = "met" if median <= goal else "NOT met"
    print(f"goal {label} <= {goal * 1e3:.0f} ms: median {ms(median)} ms -> {met}")
