"""ruff, mypy --strict and the import contracts over the whole tree: all kept clean."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.layout import ROOT

BIN = Path(sys.executable).parent
# Every distribution's part of the `wharf` namespace.
PRODUCT = ["shared/wharf", "services/daemon/wharf", "services/gateway/wharf", "cli/wharf"]


def test_ruff_is_clean() -> None:
    result = subprocess.run(
        [str(BIN / "ruff"), "check", "--quiet", "shared", "services", "cli", "tests", "bench"],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_is_clean() -> None:
    # Folders are import paths, so plain mypy follows them (mypy_path in pyproject.toml).
    result = subprocess.run(
        [str(BIN / "mypy"), "--strict", "--config-file", str(ROOT / "pyproject.toml"),
         "--cache-dir", str(ROOT / ".cache" / "mypy"), *PRODUCT],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]


def test_import_contracts_are_kept() -> None:
    # The layer rules (pyproject.toml [tool.importlinter]) on the real import graph.
    result = subprocess.run(
        [str(BIN / "lint-imports"), "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
