"""bench/gateways.py runs end to end with small flags: every case, both tables, the verdict.

It checks that the script works (exit 0, the headings, each case measured, the cleanup check
finding nothing left), never the figures: benchmarks print timings, tests do not assert on them.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.pg_fixture import DB_ENV

pytestmark = [pytest.mark.integration, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def work_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="wbg.", dir="/var/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def test_gateways_bench_runs_and_cleans_up(work_dir: Path) -> None:
    if shutil.which("rabbitmqctl") is None:
        pytest.skip("RabbitMQ is not installed")
    if not DB_ENV.exists():
        pytest.skip(f"no {DB_ENV}: run `make postgres`")
    result = subprocess.run(
        [sys.executable, str(REPO / "bench" / "gateways.py"), "--rounds", "1", "--duration",
         "0.5", "--concurrency", "4", "--agents", "2", "--fleet-procs", "2", "--containers",
         "2", "--heartbeat-interval", "0.5", "--work-dir", str(work_dir)],
        cwd=REPO, capture_output=True, text=True, timeout=240, check=False)
    out = result.stdout
    assert result.returncode == 0, out[-3000:] + result.stderr[-3000:]
    for line in ("round 1, A: wait ", "round 1, B: wait ", "round 1, C: wait ",
                 "## POST start?wait=true (304)", "## POST start, no wait (202)",
                 "A. 1 gateway, SQLite", "B. 1 gateway, PostgreSQL",
                 "C. 2 gateways, PostgreSQL",
                 "## issue #15 item 4: with 2 gateways the cluster serves more commands/s",
                 "cleanup check: vhost and database of this run left: none"):
        assert line in out, f"missing {line!r} in:\n{out[-3000:]}"
    assert "unexpected answers" not in out, out[-3000:]
    assert list(work_dir.iterdir()) == []  # the temporary tree is gone
    assert _processes_in(work_dir) == []  # no gateway or simulated agent outlived the run


def _processes_in(work_dir: Path) -> list[str]:
    """Processes whose command line names ``work_dir``: the run's gateways (their state dirs)
    and its simulated fleet (``--work-dir``)."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                argv = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except (OSError, UnicodeDecodeError):
                continue
            if str(work_dir) in argv:
                found.append(argv)
    return found
