"""Mounts of the local driver's tmpfs and bind volumes on the host (at ``<volume>/_data``).

A tmpfs or bind volume is mounted when a container that uses it starts and stays mounted until
the volume is removed; a plain volume is only a directory.
"""

from __future__ import annotations

import ctypes
import errno
import os
from pathlib import Path

from wharf.daemon.core.runtime.libc import libc
from wharf.daemon.core.runtime.rootfs import is_mounted
from wharf.daemon.core.volumes.options import LocalOptions
from wharf.errors import Internal

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC = 32, 4096, 16384
MNT_DETACH = 2
_FLAGS = {"ro": MS_RDONLY, "nosuid": MS_NOSUID, "nodev": MS_NODEV, "noexec": MS_NOEXEC,
          "bind": MS_BIND, "rbind": MS_BIND | MS_REC}


def _mount(source: str, target: Path, fstype: str | None, flags: int, data: str) -> None:
    rc = libc().mount(source.encode(), os.fsencode(target),
                       fstype.encode() if fstype else None, flags,
                       data.encode() if data else None)
    if rc != 0:
        err = ctypes.get_errno()
        raise Internal(f"failed to mount local volume: mount {source}:{target}, "
                       f"flags: {flags:#x}, data: {data!r}: {os.strerror(err)}")


def mount(local: LocalOptions, data: Path) -> None:
    """Mount the volume's filesystem at ``data`` unless it is mounted already.

    Raises:
        Internal: the kernel refused (e.g. a bind device that does not exist).
    """
    if not local.mounted or is_mounted(data):
        return
    options = [o for o in local.options.split(",") if o]
    if local.kind == "tmpfs":
        flags = sum(_FLAGS[o] for o in set(options) if o in _FLAGS and o != "bind")
        rest = ",".join(o for o in options if o not in _FLAGS and o != "rw")
        _mount(local.device or "tmpfs", data, "tmpfs", flags, rest)
        return
    flags = MS_BIND | (MS_REC if "rbind" in options else 0)
    _mount(local.device, data, None, flags, "")
    extra = sum(_FLAGS[o] for o in set(options) if o in ("ro", "nosuid", "nodev", "noexec"))
    if extra:  # a bind mount takes its flags only on a remount
        _mount("none", data, None, MS_REMOUNT | MS_BIND | extra, "")


def unmount(data: Path) -> None:
    """Detach whatever is mounted at ``data`` (idempotent).

    Raises:
        Internal: the unmount failed for another reason than "not mounted".
    """
    while data.exists() and is_mounted(data):
        if libc().umount2(os.fsencode(data), MNT_DETACH) != 0:
            err = ctypes.get_errno()
            if err != errno.EINVAL:
                raise Internal(f"umount {data}: {os.strerror(err)}")
            return
