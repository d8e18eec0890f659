"""The container's root filesystem: an overlayfs over the image's layer dirs, via mount(2).

Layout under the container dir: ``rootfs/{upper,work,merged}`` and, for long layer lists,
``rootfs/l/<n>`` symlinks to the layer dirs.

The page limit: mount(2) copies the option string into one page, so ``lowerdir=a:b:c…``
must stay under 4096 bytes. Docker's overlay2 and containers/storage shorten it with short
``l/<id>`` symlinks and paths relative to a chdir'ed helper process. wharf keeps the
symlinks but avoids the chdir (process-wide, unsafe in a threaded daemon): it opens the
``rootfs`` dir and names the links through ``/proc/self/fd/<fd>/l/<n>``, an absolute path
of ~20 bytes per layer that the kernel resolves at mount time. 128 layers take ~2.7 KB.
Direct absolute paths are used when they fit and need no escaping (the common case).
"""

from __future__ import annotations

import ctypes
import errno
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from wharf.daemon.core.runtime.libc import libc
from wharf.errors import Conflict, Internal, InvalidArgument

PAGE_LIMIT = 4096 - 1  # the option string plus its NUL must fit in one page
MAX_LAYERS = 128  # Docker's overlay2 limit
MNT_DETACH = 2
_SPECIAL = (",", ":", "\\")


@dataclass(frozen=True)
class OverlayPaths:
    """The directories of one container's overlay."""

    base: Path

    @property
    def upper(self) -> Path:
        return self.base / "upper"

    @property
    def work(self) -> Path:
        return self.base / "work"

    @property
    def merged(self) -> Path:
        return self.base / "merged"

    @property
    def links(self) -> Path:
        return self.base / "l"


def overlay_options(lowers: Sequence[str], upper: str, work: str) -> str:
    """The overlay option string (lowers top first)."""
    return f"lowerdir={':'.join(lowers)},upperdir={upper},workdir={work}"


def _plan_lowers(layers: Sequence[Path], paths: OverlayPaths, dirfd: int) -> list[str]:
    """Lowerdir entries: the layer paths themselves, or short links when those do not fit."""
    direct = [str(p) for p in layers]
    options = overlay_options(direct, str(paths.upper), str(paths.work))
    if len(options) <= PAGE_LIMIT and not any(c in s for s in direct for c in _SPECIAL):
        return direct
    paths.links.mkdir(exist_ok=True)
    lowers = []
    for i, layer in enumerate(layers):
        (paths.links / str(i)).symlink_to(layer)
        lowers.append(f"/proc/self/fd/{dirfd}/l/{i}")
    return lowers


def mount_overlay(layers: Sequence[Path], base: Path, *, keep_upper: bool = False
                  ) -> OverlayPaths:
    """Mount an overlay of ``layers`` (top layer first) at ``base/merged``.

    The upper dir is fresh, unless ``keep_upper`` and ``base`` already exists: then the
    container's earlier writes are mounted again (a restart after an unmount or a reboot).

    Raises:
        InvalidArgument: no layers, too many, or a layer dir is missing.
        Conflict: ``base`` already holds a rootfs.
        Internal: the kernel refused the mount.
    """
    if not layers or len(layers) > MAX_LAYERS:
        raise InvalidArgument(f"an overlay needs 1 to {MAX_LAYERS} layers, got {len(layers)}")
    for layer in layers:
        if not layer.is_absolute() or not layer.is_dir():
            raise InvalidArgument(f"layer dir {layer} does not exist")
    paths = OverlayPaths(base)
    fresh = True
    try:
        # 0700: upper/ holds whatever the container wrote (setuid files too) and merged/ is its
        # whole tree; no host user may reach them. upper/'s own mode is that of the container's
        # "/", so it keeps the default.
        base.mkdir(parents=True, mode=0o700)
    except FileExistsError as exc:
        if not keep_upper:
            raise Conflict(f"rootfs dir {base} already exists") from exc
        fresh = False
        shutil.rmtree(paths.links, ignore_errors=True)
    for d in (paths.upper, paths.work, paths.merged):
        d.mkdir(exist_ok=not fresh)
    dirfd = os.open(base, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        lowers = _plan_lowers(layers, paths, dirfd)
        options = overlay_options(lowers, str(paths.upper), str(paths.work))
        if len(options) > PAGE_LIMIT:
            raise InvalidArgument(f"overlay options for {base} exceed one page")
        rc = libc().mount(b"overlay", os.fsencode(paths.merged), b"overlay", 0,
                           options.encode())
        if rc != 0:
            err = ctypes.get_errno()
            raise Internal(f"mount overlay at {paths.merged}: {os.strerror(err)}")
    except BaseException:
        if fresh:
            shutil.rmtree(base, ignore_errors=True)
        raise
    finally:
        os.close(dirfd)
    return paths


def is_mounted(path: Path) -> bool:
    """Whether ``path`` is a mount point (per /proc/self/mountinfo)."""
    target = os.fsencode(path)
    with open("/proc/self/mountinfo", "rb") as f:
        return any(line.split()[4] == target for line in f)


def unmount_overlay(base: Path) -> None:
    """Lazily unmount ``base/merged`` (if mounted) and delete ``base``. Idempotent.

    Raises:
        Internal: the unmount failed for another reason than "not mounted".
    """
    merged = OverlayPaths(base).merged
    mounted = merged.exists() and is_mounted(merged)
    if mounted and libc().umount2(os.fsencode(merged), MNT_DETACH) != 0:
        err = ctypes.get_errno()
        if err != errno.EINVAL:  # EINVAL: no longer a mount point (raced with another umount)
            raise Internal(f"umount {merged}: {os.strerror(err)}")
    shutil.rmtree(base, ignore_errors=True)
