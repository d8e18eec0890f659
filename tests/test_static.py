"""ruff and mypy --strict over the whole tree: the project keeps both clean."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests.layout import PACKAGE_ROOTS, ROOT

BIN = Path(sys.executable).parent


def test_ruff_is_clean() -> None:
    result = subprocess.run(
        [str(BIN / "ruff"), "check", "--quiet", "shared", "services", "cli", "tests", "bench"],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _link_tree(base: Path) -> Path:
    """A tree where folders carry package names (wharf/daemon/…), made of symlinks.

    mypy maps files to modules by folder names; ours differ (shared/ is `wharf`), so it checks
    this mirror instead. Symlinked folders keep error paths pointing at the real files.
    """
    top = base / "wharf"
    if top.exists():
        shutil.rmtree(top)
    top.mkdir(parents=True)
    for entry in PACKAGE_ROOTS["wharf"].iterdir():
        if entry.name != "__pycache__":
            (top / entry.name).symlink_to(entry)
    for package, folder in PACKAGE_ROOTS.items():
        if package != "wharf":
            (top / package.split(".", 1)[1]).symlink_to(folder)
    return top


def test_mypy_strict_is_clean() -> None:
    tree = _link_tree(ROOT / ".cache" / "typecheck")
    result = subprocess.run(
        [str(BIN / "mypy"), "--strict", "--config-file", str(ROOT / "pyproject.toml"),
         "--cache-dir", str(ROOT / ".cache" / "mypy"), "-p", "wharf"],
        cwd=tree.parent, capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
