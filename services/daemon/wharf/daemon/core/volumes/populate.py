"""Seed a new volume with the image's content at its mount path, as dockerd does.

dockerd copies when the volume is empty and the image has a directory at that path, preserving
owners, modes, times, links and special files (``cp -a``). The path is resolved inside the
container's rootfs, so an image symlink cannot make the daemon copy a host directory.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from wharf.errors import Internal

MAX_LINKS = 40


def resolve_in_root(root: Path, path: str) -> Path | None:
    """``path`` inside ``root`` with every symlink followed as the container would see it
    (absolute targets are relative to ``root``); None when it does not exist."""
    parts = [p for p in path.split("/") if p not in ("", ".")]
    resolved: list[str] = []
    hops = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = root.joinpath(*resolved, part)
        if candidate.is_symlink():
            hops += 1
            if hops > MAX_LINKS:
                return None
            target = os.readlink(candidate)
            if target.startswith("/"):
                resolved = []
            parts = [p for p in target.split("/") if p not in ("", ".")] + parts
            continue
        if not candidate.exists():
            return None
        resolved.append(part)
    return root.joinpath(*resolved)


def seed(rootfs: Path, destination: str, data: Path) -> bool:
    """Copy the image's ``destination`` dir into the empty volume dir ``data``.

    Returns True when something was copied.

    Raises:
        Internal: the copy failed.
    """
    if any(data.iterdir()):
        return False
    source = resolve_in_root(rootfs, destination)
    if source is None or not source.is_dir() or source.is_symlink():
        return False
    result = subprocess.run(["cp", "-a", "--", f"{source}/.", str(data)],
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise Internal(f"copying the image's {destination} into the volume: "
                       f"{result.stderr.strip()}")
    return True
