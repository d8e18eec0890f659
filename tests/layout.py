"""Where each wharf package lives in the source tree (shared by the static tests)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE_ROOTS: dict[str, Path] = {
    "wharf.daemon": ROOT / "services" / "daemon",
    "wharf.gateway": ROOT / "services" / "gateway",
    "wharf.cli": ROOT / "cli",
    "wharf": ROOT / "shared",
}


def module_files() -> dict[str, Path]:
    """Every wharf module name mapped to its file."""
    out: dict[str, Path] = {}
    for package, folder in PACKAGE_ROOTS.items():
        for path in folder.rglob("*.py"):
            rel = path.relative_to(folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            out[".".join([package, *parts])] = path
    return out


def package_names() -> set[str]:
    """Every folder with an __init__.py, as a package name."""
    return {name for name, path in module_files().items() if path.name == "__init__.py"}
