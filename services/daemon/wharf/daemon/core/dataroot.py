"""The data root's directories and who on the host may reach them.

Containers write files as root, setuid bits included, and image layers carry setuid binaries;
a host user who can reach them runs them as root (CVE-2021-41091). Blobs, layers and volumes
also hold what images and containers keep private. So, whatever the umask:

- the data root and ``containers/`` are 0711: root lists them, others may only pass through
  (nothing below them that others could use is readable: see the next lines);
- each ``containers/<id>`` is 0700 (its rootfs, log and config are root's alone);
- ``content/``, ``layers/``, ``volumes/``, ``tmp/``, ``builds/`` and ``seccomp/`` are 0700;
- ``state.db`` and its WAL and SHM files are 0600 (``core.state``).

A container reaches its own files through mounts the runtime (root) set up, never through
these paths, so the modes take nothing from it. :func:`secure` runs at every start: it creates
what is missing and fixes the modes of an install made before.
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT_MODE = 0o711
DIR_MODES = {
    "containers": 0o711,
    "content": 0o700,
    "layers": 0o700,
    "volumes": 0o700,
    "tmp": 0o700,
    "builds": 0o700,
    "seccomp": 0o700,
}
CONTAINER_MODE = 0o700


def secure(root: Path) -> None:
    """Create the data root's directories with their modes and fix those that exist."""
    root.mkdir(mode=ROOT_MODE, parents=True, exist_ok=True)
    os.chmod(root, ROOT_MODE)
    for name, mode in DIR_MODES.items():
        path = root / name
        path.mkdir(mode=mode, exist_ok=True)
        os.chmod(path, mode)
    with os.scandir(root / "containers") as entries:
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                os.chmod(entry.path, CONTAINER_MODE)
