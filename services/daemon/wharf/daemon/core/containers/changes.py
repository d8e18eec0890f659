"""``docker diff``: what a container changed, read from its overlay upper dir.

Follows moby's ``archive.OverlayChanges``: walk the upper dir in name order; a char device 0:0
is a deletion (``D``); an entry also visible in the image's layers is a modification (``C``),
except a directory whose size, mode and mtime match the lower one (unchanged, only a parent of a
change); anything else is an addition (``A``). The parent of every ``A``/``D`` is reported as
``C`` once, as Docker does.

Where wharf differs, and why:
- An opaque directory (xattr ``trusted.overlay.opaque=y``: the container removed a directory
  and made it again) hides everything the image had under it. Docker reports such a directory as
  ``D``; wharf reports the directory as ``C`` and each entry of the image that it hides as ``D``,
  which is what ``ls`` in the container shows.
- Docker hides the mount points the runtime creates (``/dev``, ``/proc``, ``/sys``,
  ``/etc/hosts``…) by keeping them in a separate ``-init`` layer. wharf has no init layer, so
  those paths and the container's mount destinations are skipped when they appear in the upper
  dir, and a directory that changed only because such a mount point was created in it is not
  reported either.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path

from wharf.daemon.core.images.whiteouts import OPAQUE_XATTR

# Mount points crun creates in the rootfs (Docker keeps them in its -init layer).
RUNTIME_MOUNT_POINTS = frozenset({
    "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/dev/console", "/proc", "/sys",
    "/sys/fs/cgroup", "/etc/hosts", "/etc/hostname", "/etc/resolv.conf", "/etc/mtab",
    "/.dockerenv",
})


class Kind(IntEnum):
    """Docker's change kinds (``GET /containers/{id}/changes``)."""

    MODIFIED = 0
    ADDED = 1
    DELETED = 2

    @property
    def letter(self) -> str:
        return "CAD"[self.value]


@dataclass(frozen=True)
class Change:
    path: str
    kind: Kind

    def docker(self) -> dict[str, object]:
        return {"Path": self.path, "Kind": int(self.kind)}


def is_whiteout(st: os.stat_result) -> bool:
    """The overlay whiteout: a char device 0:0 (never judged by its mode bits)."""
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def is_opaque(path: Path) -> bool:
    try:
        return os.getxattr(path, OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError:
        return False


def lower_entry(lowers: Sequence[Path], rel: str) -> os.stat_result | None:
    """The entry the image shows at ``rel`` (``a/b``), looking through ``lowers`` top first,
    honouring whiteouts and opaque directories; None when the image has nothing there."""
    parts = rel.split("/")
    for layer in lowers:
        try:
            st = os.lstat(layer / rel)
        except FileNotFoundError:
            if any(is_opaque(layer.joinpath(*parts[:i])) for i in range(1, len(parts))):
                return None  # an opaque parent in this layer hides the layers below
            continue
        except NotADirectoryError:
            return None  # a parent here is a file or a whiteout: nothing below shows through
        return None if is_whiteout(st) else st
    return None


def _lower_names(lowers: Sequence[Path], rel: str) -> set[str]:
    """The names the image shows inside directory ``rel``."""
    names: set[str] = set()
    for layer in lowers:
        try:
            entries = os.listdir(layer / rel)
        except (FileNotFoundError, NotADirectoryError):
            entries = []
        names.update(n for n in entries if lower_entry(lowers, f"{rel}/{n}") is not None)
        if is_opaque(layer / rel) or (layer / rel).is_file():
            break
    return names


def _same_dir(upper: os.stat_result, lower: os.stat_result) -> bool:
    return (stat.S_ISDIR(lower.st_mode) and upper.st_size == lower.st_size
            and upper.st_mode == lower.st_mode and upper.st_mtime_ns == lower.st_mtime_ns)


class _Walk:
    def __init__(self, upper: Path, lowers: Sequence[Path], skip: frozenset[str]) -> None:
        self.upper = upper
        self.lowers = lowers
        self.skip = skip
        self.changes: list[Change] = []
        self.changed_dirs: set[str] = set()
        self.skipped_in: set[str] = set()  # dirs that hold a skipped mount point

    def record(self, path: str, kind: Kind) -> None:
        parent = path.rsplit("/", 1)[0] or "/"
        if kind is not Kind.MODIFIED and parent != "/" and parent not in self.changed_dirs:
            self.changes.append(Change(parent, Kind.MODIFIED))
            self.changed_dirs.add(parent)
        self.changes.append(Change(path, kind))

    def visit_dir(self, rel: str, hidden: bool = False) -> None:
        """Visit the entries of upper dir ``rel``; ``hidden``: an opaque dir above hides
        the image's entries, so nothing below is compared with them."""
        host = self.upper / rel if rel else self.upper
        for name in sorted(os.listdir(host)):
            child = f"{rel}/{name}" if rel else name
            path = "/" + child
            st = os.lstat(self.upper / child)
            if path in self.skip:
                self.skipped_in.add(path.rsplit("/", 1)[0] or "/")
                continue
            self.visit(child, path, st, hidden)

    def visit(self, rel: str, path: str, st: os.stat_result, hidden: bool) -> None:
        if is_whiteout(st):
            self.record(path, Kind.DELETED)
            return
        is_dir = stat.S_ISDIR(st.st_mode)
        below = None if hidden else lower_entry(self.lowers, rel)
        opaque = is_dir and is_opaque(self.upper / rel)
        recorded = True
        if below is None:
            self.record(path, Kind.ADDED)
        elif not (is_dir and not opaque and _same_dir(st, below)):
            self.record(path, Kind.MODIFIED)
        else:
            recorded = False  # only a parent of changes: reported if a child is A or D
        if is_dir:
            if recorded:
                self.changed_dirs.add(path)
            if opaque and below is not None:
                present = set(os.listdir(self.upper / rel))
                for name in sorted(_lower_names(self.lowers, rel) - present):
                    self.changes.append(Change(f"{path}/{name}", Kind.DELETED))
            self.visit_dir(rel, hidden or opaque)


def container_changes(upper: Path, lowers: Sequence[Path],
                      mount_points: Iterable[str] = ()) -> list[Change]:
    """The changes of a container whose overlay upper dir is ``upper`` over the image layer
    dirs ``lowers`` (top first). ``mount_points``: the container's own mount destinations,
    skipped like the runtime's. A container that never started (no upper dir) has none."""
    if not upper.is_dir():
        return []
    walk = _Walk(upper, lowers, RUNTIME_MOUNT_POINTS | {os.path.normpath(m)
                                                        for m in mount_points})
    walk.visit_dir("")
    return _drop_mount_point_parents(walk.changes, walk.skipped_in)


def _drop_mount_point_parents(changes: list[Change], skipped_in: set[str]) -> list[Change]:
    """A directory reported (or added) only because the runtime made a mount point in it
    (``/etc`` for ``/etc/hosts``), with no other change below it, is not a change of the
    container."""
    below = {c.path.rsplit("/", 1)[0] or "/" for c in changes}
    parents = set()
    for start in below:
        path = start
        while path not in ("/", ""):
            parents.add(path)
            path = path.rsplit("/", 1)[0] or "/"
    return [c for c in changes
            if not (c.kind is not Kind.DELETED and c.path in skipped_in
                    and c.path not in parents)]
