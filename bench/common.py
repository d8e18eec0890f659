"""Helpers shared by the bench scripts: timing, summary statistics, tables, machine facts.

Bench scripts print figures (medians, percentiles, ratios against a reference measured in the
same invocation); they never assert on timings.
"""

from __future__ import annotations

import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent


class CommandFailed(RuntimeError):
    """A timed command exited non-zero; the message names the command and its stderr."""


def run_timed(argv: Sequence[str], env: Mapping[str, str] | None = None) -> float:
    """Wall seconds for one run of ``argv`` (no shell, output captured); raises CommandFailed."""
    start = time.perf_counter()
    proc = subprocess.run(list(argv), capture_output=True,
                          env=None if env is None else dict(env), check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).decode(errors="replace").strip()[-800:]
        raise CommandFailed(f"`{shlex.join(argv)}` exited {proc.returncode}: {tail}")
    return elapsed


def timed(fn: Callable[[], object]) -> float:
    """Wall seconds for one call of ``fn``."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


@dataclass(frozen=True)
class Summary:
    """Median, p90 (linear interpolation, inclusive), min and max of a sample, in seconds."""

    n: int
    median: float
    p90: float
    min: float
    max: float

    @classmethod
    def of(cls, samples: Sequence[float]) -> Summary:
        if not samples:
            raise ValueError("no samples")
        ordered = sorted(samples)
        p90 = ordered[0] if len(ordered) < 2 else statistics.quantiles(
            ordered, n=10, method="inclusive")[8]
        return cls(len(ordered), statistics.median(ordered), p90, ordered[0], ordered[-1])


def ms(seconds: float) -> str:
    """Seconds as milliseconds, with a precision that suits the magnitude."""
    value = seconds * 1e3
    return f"{value:.1f}" if value < 1000 else f"{value:.0f}"


def ratio(value: float, reference: float) -> str:
    return f"{value / reference:.2f}x" if reference > 0 else "-"


def summary_row(label: str, samples: Sequence[float], reference: float | None) -> list[str]:
    """A table row: label, n, median, p90, min, max (ms) and median / reference median."""
    s = Summary.of(samples)
    rel = ratio(s.median, reference) if reference is not None else "-"
    return [label, str(s.n), ms(s.median), ms(s.p90), ms(s.min), ms(s.max), rel]


SUMMARY_HEADER = ["", "n", "median ms", "p90 ms", "min ms", "max ms", "ratio"]


def print_table(title: str, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """A plain-text table: first column left-aligned, the others right-aligned."""
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        first = str(cells[0]).ljust(widths[0])
        rest = [str(c).rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True)]
        return "  ".join([first, *rest]).rstrip()

    print(f"\n## {title}\n")
    print(line(header))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print(line(row))


def filesystem_of(path: Path) -> str:
    """``<fstype> on <mount point> (<device>)`` for the mount holding ``path``."""
    best = ("?", "/", "?")
    target = str(path.resolve())
    for entry in Path("/proc/mounts").read_text().splitlines():
        device, mount, fstype = entry.split()[:3]
        inside = target == mount or target.startswith(mount.rstrip("/") + "/")
        if inside and len(mount) >= len(best[1]):
            best = (fstype, mount, device)
    return f"{best[0]} on {best[1]} ({best[2]})"


def _cpu_model() -> str:
    for entry in Path("/proc/cpuinfo").read_text().splitlines():
        if entry.startswith("model name"):
            return entry.split(":", 1)[1].strip()
    return platform.processor() or "?"


def machine_lines(work: Path) -> list[str]:
    """What a reader needs to compare figures between machines."""
    affinity = len(os.sched_getaffinity(0))
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return [
        f"command:  {shlex.join(sys.orig_argv)}  (cwd {os.getcwd()})",
        f"date:     {time.strftime('%Y-%m-%d %H:%M:%S %z')}",
        f"machine:  nproc {affinity} (cpu_count {os.cpu_count()}), {_cpu_model()}, "
        f"{memory:.1f} GiB RAM",
        f"kernel:   {platform.system()} {platform.release()} {platform.machine()}",
        f"python:   {platform.python_version()} ({sys.executable})",
        f"work dir: {work}  [{filesystem_of(work)}]",
    ]
