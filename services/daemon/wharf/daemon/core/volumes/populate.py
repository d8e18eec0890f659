"""Seed a new volume with the image's content at its mount path, as dockerd does.

dockerd copies when the volume is empty and the image has a directory at that path, preserving
owners, modes, times, links and special files (``cp -a``). The path is resolved inside the
container's rootfs (``core.rootpath``), so an image symlink cannot make the daemon copy a host
directory.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from wharf.daemon.core.rootpath import host_path, resolve_in_root
from wharf.errors import Internal, InvalidArgument, NotFound


def seed(rootfs: Path, destination: str, data: Path) -> bool:
    """Copy the image's ``destination`` dir into the empty volume dir ``data``.

    Returns True when something was copied.

    Raises:
        Internal: the copy failed.
    """
    if any(data.iterdir()):
        return False
    try:
        source = host_path(rootfs, resolve_in_root(rootfs, destination, must_exist=True))
    except (NotFound, InvalidArgument):  # not in the image, or a symlink loop: nothing to copy
        return False
    if not source.is_dir() or source.is_symlink():
        return False
    result = subprocess.run(["cp", "-a", "--", f"{source}/.", str(data)],
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise Internal(f"copying the image's {destination} into the volume: "
                       f"{result.stderr.strip()}")
    return True
