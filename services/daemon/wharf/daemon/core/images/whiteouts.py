"""Turn OCI whiteout files in an extracted layer into the overlayfs forms.

- ``dir/.wh.<name>``   -> char device 0:0 at ``dir/<name>`` (the ``.wh.`` file is removed)
- ``dir/.wh..wh..opq`` -> xattr ``trusted.overlay.opaque=y`` on ``dir`` (the file is removed)
- other ``.wh..wh.*``  -> removed (aufs bookkeeping)

Every path is walked one component at a time with ``O_NOFOLLOW`` from the layer directory, so a
symlink can never redirect a whiteout outside the layer even if the scan had missed it. Parent
directories keep the mtimes GNU tar gave them. A whiteout of a name this same layer also creates
is refused (Docker's overlay driver fails the same way).
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

from wharf.daemon.core.images.tarsafety import OPAQUE, ScanResult
from wharf.errors import InvalidArgument

OPAQUE_XATTR = "trusted.overlay.opaque"
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class _Walker:
    """Opens directories under the layer root without following symlinks; remembers times."""

    def __init__(self, root: Path, layer: str) -> None:
        self.root = root
        self.layer = layer
        self.times: dict[str, tuple[int, int]] = {}

    def open_dir(self, rel: str, create: bool = True) -> int:
        fd = os.open(self.root, _DIR_FLAGS)
        self._remember("", fd)
        done: list[str] = []
        try:
            for part in filter(None, rel.split("/")):
                if create:
                    with contextlib.suppress(FileExistsError):
                        os.mkdir(part, 0o755, dir_fd=fd)
                try:
                    child = os.open(part, _DIR_FLAGS, dir_fd=fd)
                except OSError as exc:
                    raise InvalidArgument(
                        f"layer {self.layer}: whiteout parent {rel!r} is not a directory"
                    ) from exc
                os.close(fd)
                fd = child
                done.append(part)
                self._remember("/".join(done), fd)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _remember(self, rel: str, fd: int) -> None:
        if rel not in self.times:
            st = os.fstat(fd)
            self.times[rel] = (st.st_atime_ns, st.st_mtime_ns)

    def restore_times(self) -> None:
        for rel, times in self.times.items():
            fd = self.open_dir(rel, create=False)
            try:
                os.utime(fd, ns=times)
            finally:
                os.close(fd)


def apply(diff: Path, plan: ScanResult, layer: str) -> None:
    """Convert the whiteouts ``plan`` lists inside the extracted layer at ``diff``."""
    walker = _Walker(diff, layer)
    for path in plan.meta:
        fd, name = _parent(walker, path)
        try:
            _unlink(fd, name)
        finally:
            os.close(fd)
    for parent in plan.opaques:
        fd = walker.open_dir(parent)
        try:
            _unlink(fd, OPAQUE)
            os.setxattr(fd, OPAQUE_XATTR, b"y")
        finally:
            os.close(fd)
    for hidden in plan.whiteouts:
        fd, name = _parent(walker, hidden)
        try:
            _whiteout(fd, name, hidden, layer)
        finally:
            os.close(fd)
    walker.restore_times()


def _parent(walker: _Walker, path: str) -> tuple[int, str]:
    """An fd of the directory holding ``path`` (created if missing) and the last name."""
    parent, _, name = path.rpartition("/")
    return walker.open_dir(parent), name


def _unlink(dir_fd: int, name: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(name, dir_fd=dir_fd)


def _whiteout(dir_fd: int, name: str, hidden: str, layer: str) -> None:
    _unlink(dir_fd, ".wh." + name)
    try:
        os.mknod(name, stat.S_IFCHR, os.makedev(0, 0), dir_fd=dir_fd)
    except FileExistsError:
        existing = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        if stat.S_ISCHR(existing.st_mode) and existing.st_rdev == 0:
            return  # the same whiteout twice, or one already in overlay form
        raise InvalidArgument(
            f"layer {layer}: whiteout of {hidden!r} but the layer also creates it"
        ) from None
