"""bench/dispatch.py runs end to end with small flags and prints every section.

It checks that the script works (exit 0, the headings, the cleanup check finding nothing),
never the figures: benchmarks print timings, tests do not assert on them.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.pull import BUSYBOX, registry_has

pytestmark = [pytest.mark.integration, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]
REGISTRY = "127.0.0.1:5000"  # the local registry `make up` starts and `make images` seeds


@pytest.fixture
def work_dir() -> Iterator[Path]:
    """A short directory: pytest's tmp_path makes wharfd's socket path longer than AF_UNIX
    allows (108 bytes)."""
    path = Path(tempfile.mkdtemp(prefix="wbd.", dir="/var/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def test_dispatch_bench_runs_and_cleans_up(work_dir: Path) -> None:
    if shutil.which("rabbitmqctl") is None:
        pytest.skip("RabbitMQ is not installed")
    if not registry_has(REGISTRY, BUSYBOX):
        pytest.skip(f"no busybox on {REGISTRY}: run `make up images`")
    before = _bench_vhosts()
    result = subprocess.run(
        [sys.executable, str(REPO / "bench" / "dispatch.py"), "--requests", "20",
         "--concurrency", "4", "--duration", "1", "--nodes", "2", "--agents", "5",
         "--containers", "10", "--scale-requests", "3", "--down-samples", "1",
         "--node-down-after", "1", "--heartbeat-interval", "0.3", "--registry", REGISTRY,
         "--work-dir", str(work_dir)],
        cwd=REPO, capture_output=True, text=True, timeout=240, check=False)
    out = result.stdout
    assert result.returncode == 0, out[-3000:] + result.stderr[-3000:]
    for heading in ("## 1. sequential round trips, 1 real node",
                    "## 2. sequential round trips, 2 real nodes",
                    "## 3a. throughput, 1 real node", "## 3b. throughput, 2 real nodes",
                    "## 4. control-plane scale: 5 SIMULATED agents x 10 containers = 50",
                    "## 4a. cluster view reads", "## 4c. node-down detection",
                    "## 3c. the same round trip after more commands",
                    "## issue #5 targets"):
        assert heading in out, f"missing {heading!r} in:\n{out[-3000:]}"
    assert "floor: gateway -> sim-0 (SIMULATED" in out
    assert "conmon processes of this run: none" in out and "mounts under" in out
    assert list(work_dir.iterdir()) == []  # the temporary tree is gone
    assert _bench_vhosts() - before == set()  # both private vhosts were deleted


def _bench_vhosts() -> set[str]:
    listed = subprocess.run(["rabbitmqctl", "list_vhosts", "--quiet"], capture_output=True,
                            text=True, timeout=60, check=True).stdout.split()
    return {v for v in listed if v.startswith("wharf-bench-")}
