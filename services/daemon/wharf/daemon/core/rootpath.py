"""Paths inside a container's root filesystem, resolved as the container would see them.

The one resolver for every place the daemon turns a container path into a host path (``docker
cp`` in ``containers.archive``, volume seeding in ``volumes.populate``): each symlink is
followed with the root as ``/`` (an absolute target names the container's path, not the
host's), and ``..``, written or from a link, stops at the root. Whatever the image or the
container put in the tree, the result names something below ``root``.

It reads the tree once: a running container can swap a directory for a symlink after that
(CVE-2018-15664), so a caller that then touches a live container's root still does it from
inside a chroot (``containers.archive``'s helper).
"""

from __future__ import annotations

import os
import posixpath
import stat
from pathlib import Path

from wharf.errors import InvalidArgument, NotFound

# Linux's MAXSYMLINKS: the container's own open() of the same path gives up there too.
MAX_SYMLINKS = 40


class OutsideRoot(InvalidArgument):
    """With ``confine``: the path, or a link on its way, leads out of the root."""


def _components(path: str, *, dots: bool = False) -> list[str]:
    """The names in ``path``; with ``dots``, ``.`` and empty names (``a//b``, ``dir/``) stay as
    ``.``, which a non-directory before them cannot have (ENOTDIR)."""
    if dots:
        return [p or "." for p in path.split("/")]
    return [p for p in path.split("/") if p not in ("", ".")]


def resolve_in_root(root: Path, path: str, *, must_exist: bool = False,
                    confine: bool = False) -> str:
    """``path`` with every symlink followed as if ``root`` were ``/``: a clean, absolute
    container path (``/`` for the root itself; see :func:`host_path`).

    A component that does not exist (or comes after a non-directory) is kept as written, and
    so is what follows it (a later ``..`` still removes it), as moby's ``FollowSymlinkInScope``
    does: ``docker cp`` must be able to name a path that does not exist yet. With
    ``must_exist`` the walk is the kernel's (ENOENT, ENOTDIR): such a path is NotFound, and so
    is a non-directory with anything after it (``file/..``, ``file/.``, ``file/``). With
    ``confine`` (a build context: its links may not point out of it at all) an absolute link
    target or a ``..`` past the root is refused instead of read inside the root.

    Raises:
        InvalidArgument: more than MAX_SYMLINKS links (a loop; the kernel's ELOOP).
        NotFound: ``must_exist`` and the path does not name an existing file.
        OutsideRoot: ``confine`` and the path leads out of the root.
    """
    pending = _components(path, dots=must_exist)[::-1]  # a stack: the next component last
    resolved: list[str] = []
    links = 0
    while pending:
        part = pending.pop()
        if part == ".":
            continue
        if part == "..":
            if resolved:
                resolved.pop()
            elif confine:
                raise OutsideRoot(f"{path} leads outside its root")
            continue
        host = root.joinpath(*resolved, part)
        try:
            st = os.lstat(host)
        except (FileNotFoundError, NotADirectoryError):
            if must_exist:
                raise NotFound(f"{path} does not exist in the container's filesystem") from None
            resolved.append(part)
            continue
        if not stat.S_ISLNK(st.st_mode):
            if must_exist and pending and not stat.S_ISDIR(st.st_mode):
                raise NotFound(f"{path}: a component of it is not a directory")
            resolved.append(part)
            continue
        links += 1
        if links > MAX_SYMLINKS:
            raise InvalidArgument(f"too many levels of symbolic links in {path}")
        target = os.readlink(host)
        if target.startswith("/"):
            if confine:
                raise OutsideRoot(f"{path} leads outside its root")
            resolved = []
        pending.extend(reversed(_components(target, dots=must_exist)))
    return "/" + "/".join(resolved)


def host_path(root: Path, container_path: str) -> Path:
    """Where the container path (one :func:`resolve_in_root` returned) is on the host: below
    ``root`` (a ``..`` in it stops at the root; symlinks are not followed here)."""
    return root.joinpath(*_components(posixpath.normpath("/" + container_path)))
