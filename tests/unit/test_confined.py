"""The confined-tar launcher: one helper process forks each confined command; writes land only
below the target; many run at once; a helper that dies fails its callers and is replaced."""

from __future__ import annotations

import os
import signal
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from wharf.daemon.core.images.confined import ConfinedLauncher
from wharf.errors import Internal

SH = "/bin/sh"


@pytest.fixture
def launcher() -> Iterator[ConfinedLauncher]:
    made = ConfinedLauncher()
    yield made
    made.close()


def _run(launcher: ConfinedLauncher, target: Path, script: str) -> tuple[int, str]:
    with tempfile.TemporaryFile() as err:
        code = launcher.run(str(target), [SH, "-c", script], os.open(os.devnull, os.O_RDONLY),
                            err.fileno())
        err.seek(0)
        return code, err.read().decode()


def test_writes_land_below_the_target_only(launcher: ConfinedLauncher, tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.mkdir()
    outside = tmp_path / "outside"
    assert _run(launcher, target, f"echo in > {target}/file")[0] == 0
    assert (target / "file").read_text() == "in\n"
    code, err = _run(launcher, target, f"echo out > {outside}")
    assert code != 0 and "Read-only file system" in err
    assert not outside.exists()
    assert _run(launcher, target, "exit 7")[0] == 7


def test_one_helper_serves_many_at_once(launcher: ConfinedLauncher, tmp_path: Path) -> None:
    targets = [tmp_path / f"t{i}" for i in range(12)]
    for target in targets:
        target.mkdir()
    with ThreadPoolExecutor(6) as pool:
        codes = list(pool.map(lambda t: _run(launcher, t, f"sleep 0.1; echo {t.name} > {t}/n")[0],
                              targets))
    assert codes == [0] * 12
    assert [(t / "n").read_text().strip() for t in targets] == [t.name for t in targets]
    pid = launcher.pid
    _run(launcher, targets[0], "true")
    assert launcher.pid == pid  # the same helper


def test_a_dead_helper_fails_its_callers_and_is_replaced(launcher: ConfinedLauncher,
                                                         tmp_path: Path) -> None:
    with tempfile.TemporaryFile() as err:
        pending = launcher.submit(str(tmp_path), [SH, "-c", "sleep 5"],
                                  os.open(os.devnull, os.O_RDONLY), err.fileno())
        first = launcher.pid
        assert first is not None
        os.kill(first, signal.SIGKILL)
        with pytest.raises(Internal, match="helper died"):
            pending.result(timeout=10)
    assert _run(launcher, tmp_path, "true")[0] == 0
    assert launcher.pid not in (None, first)
