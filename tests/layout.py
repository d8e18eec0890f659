"""Where each wharf distribution lives in the source tree (shared by the static tests)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Each distribution's folder holds its import path: <folder>/wharf/<program>/...
DISTRIBUTIONS: dict[str, Path] = {
    "wharf-shared": ROOT / "shared",
    "wharf-daemon": ROOT / "services" / "daemon",
    "wharf-gateway": ROOT / "services" / "gateway",
    "wharf-cli": ROOT / "cli",
}


def module_files() -> dict[str, Path]:
    """Every wharf module name mapped to its file, named by its path under its distribution."""
    out: dict[str, Path] = {}
    for folder in DISTRIBUTIONS.values():
        for path in (folder / "wharf").rglob("*.py"):
            rel = path.relative_to(folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            out[".".join(parts)] = path
    return out
