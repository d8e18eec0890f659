"""The file system side of a build step: an image's root mounted to work in, COPY/ADD copies
into it, WORKDIR's directory, and the tidying of a RUN's upper dir before it becomes a layer.

A step that writes files mounts an overlay of its parent image (``runtime.rootfs``, the mount a
container gets) under the build's work dir; what the step writes lands in the overlay's upper
dir, which ``images.commit.record_image`` turns into the step's layer. Paths inside the image
are resolved with ``rootpath.resolve_in_root`` (symlinks followed as if the root were ``/``).

Copies follow Docker's classic builder (moby ``builder/dockerfile/copy.go``): new files and
directories belong to 0:0 or to ``--chown``'s user and group, ``--chmod`` sets every copied
entry's permission bits, file contents, permission bits (without --chmod) and modification
times come from the source, missing parent directories are made (0755, owned as the copy),
and a directory source's contents are merged into the destination directory.
"""

from __future__ import annotations

import os
import shutil
import stat
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from wharf.daemon.core.rootpath import host_path, resolve_in_root
from wharf.daemon.core.runtime import rootfs
from wharf.daemon.core.runtime.users import resolve_user
from wharf.errors import InvalidArgument, NotFound

Owner = tuple[int, int]
ROOT: Owner = (0, 0)


@contextmanager
def mounted(lowers: list[Path], base: Path, empty: Path) -> Iterator[rootfs.OverlayPaths]:
    """An overlay of ``lowers`` (top first; ``empty``, an empty dir, stands in for scratch's
    none) at ``base``; unmounted and removed afterwards."""
    if not lowers:
        empty.mkdir(parents=True, exist_ok=True)
    paths = rootfs.mount_overlay(lowers or [empty], base)
    try:
        yield paths
    finally:
        rootfs.unmount_overlay(base)


def chown_ids(root: Path, spec: str) -> Owner:
    """``--chown=user[:group]`` as numbers, names looked up in the image (``root``). A user
    without a group gives the user's number as the group, as Docker does."""
    if not spec:
        return ROOT
    user, sep, group = spec.partition(":")
    try:
        uid = resolve_user(root, user).uid
        gid = resolve_user(root, f"{user}:{group}").gid if sep and group else uid
    except (NotFound, InvalidArgument) as exc:
        raise InvalidArgument(f"unable to convert uid/gid chown string to host mapping: "
                              f"{exc.message}") from None
    return uid, gid


def is_dir_in(root: Path, path: str) -> bool:
    """Whether the container path is a directory in the image (symlinks followed)."""
    return host_path(root, resolve_in_root(root, path)).is_dir()


def make_dirs(root: Path, path: str, owner: Owner = ROOT) -> None:
    """``mkdir -p`` of a container path; the directories made get 0755 and ``owner``."""
    resolved = resolve_in_root(root, path)
    missing: list[Path] = []
    target = host_path(root, resolved)
    while not target.exists() and target != root:
        missing.append(target)
        target = target.parent
    for directory in reversed(missing):
        directory.mkdir(mode=0o755)
        os.chmod(directory, 0o755)
        os.chown(directory, *owner, follow_symlinks=False)


def copy_in(root: Path, source: Path, target: str, *, owner: Owner | None,
            mode: int | None) -> None:
    """Copy ``source`` (a host path; a symlink source is followed) to the container path
    ``target`` in ``root``: a directory's contents are merged into ``target``. Entries get
    ``owner``, or keep their own when it is None (ADD of an archive)."""
    make_dirs(root, os_dirname(target), owner or ROOT)
    dest = host_path(root, resolve_in_root(root, target))
    if source.is_dir():
        if not dest.is_dir():
            _clear(dest)
            dest.mkdir()
            _own(dest, os.stat(source), owner, mode)
        _copy_tree(source, dest, owner, mode)
    else:
        _copy_entry(source, dest, os.stat(source), owner, mode)


def os_dirname(path: str) -> str:
    return path.rstrip("/").rpartition("/")[0] or "/"


def _copy_tree(source: Path, dest: Path, owner: Owner | None, mode: int | None) -> None:
    for entry in sorted(os.scandir(source), key=lambda e: e.name):
        st = entry.stat(follow_symlinks=False)
        target = dest / entry.name
        if stat.S_ISDIR(st.st_mode):
            if not target.is_dir() or target.is_symlink():
                _clear(target)
                target.mkdir()
            _own(target, st, owner, mode)
            _copy_tree(Path(entry.path), target, owner, mode)
        else:
            _copy_entry(Path(entry.path), target, st, owner, mode)


def _copy_entry(source: Path, dest: Path, st: os.stat_result, owner: Owner | None,
                mode: int | None) -> None:
    if dest.is_dir() and not dest.is_symlink():
        raise InvalidArgument(f"cannot overwrite directory {dest.name!r} with a non-directory")
    _clear(dest)
    if stat.S_ISLNK(st.st_mode):
        os.symlink(os.readlink(source), dest)
        os.chown(dest, *(owner or (st.st_uid, st.st_gid)), follow_symlinks=False)
        return
    if stat.S_ISFIFO(st.st_mode):
        os.mkfifo(dest)
    elif stat.S_ISREG(st.st_mode):
        shutil.copyfile(source, dest, follow_symlinks=True)
    else:
        return  # sockets and devices: nothing a build copies
    _own(dest, st, owner, mode)
    os.utime(dest, ns=(st.st_atime_ns, st.st_mtime_ns))


def _own(path: Path, st: os.stat_result, owner: Owner | None, mode: int | None) -> None:
    os.chown(path, *(owner or (st.st_uid, st.st_gid)), follow_symlinks=False)
    os.chmod(path, stat.S_IMODE(st.st_mode) if mode is None else mode)


def _clear(path: Path) -> None:
    if path.is_symlink() or path.exists():
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()


def is_archive(path: Path) -> bool:
    """Whether ADD unpacks ``path``: a tar, plain or compressed (gzip, bzip2, xz)."""
    if not path.is_file():
        return False
    try:
        with tarfile.open(path, "r:*") as tar:
            return tar.next() is not None
    except (tarfile.TarError, OSError, EOFError):
        return False


def tidy_upper(upper: Path, lowers: list[Path], skip: frozenset[str]) -> None:
    """Before a RUN's upper dir becomes a layer: drop the mount points the runtime made
    (``skip``) and the directories that are only there because of them (copied up, empty,
    same mode and owner as below): a RUN that changed nothing adds no layer."""
    for name in skip:
        path = upper / name.lstrip("/")
        if path.is_symlink() or path.is_file():
            path.unlink(missing_ok=True)
        elif path.is_dir() and not any(path.iterdir()):
            path.rmdir()
    if upper.is_dir():
        _drop_unchanged(upper, "", lowers)


def _drop_unchanged(upper: Path, rel: str, lowers: list[Path]) -> bool:
    """Drop the unchanged empty directories below ``upper/rel``; whether ``rel`` is empty."""
    here = upper / rel if rel else upper
    empty = True
    for entry in os.scandir(here):
        child = f"{rel}/{entry.name}" if rel else entry.name
        if entry.is_dir(follow_symlinks=False) and _drop_unchanged(upper, child, lowers) \
                and _same_below(upper / child, child, lowers):
            os.rmdir(upper / child)
            continue
        empty = False
    return empty


def _same_below(path: Path, rel: str, lowers: list[Path]) -> bool:
    """Whether the nearest lower has ``rel`` as a directory with the same mode and owner
    (and ``path`` is not an opaque directory)."""
    try:
        if os.getxattr(path, "trusted.overlay.opaque", follow_symlinks=False) == b"y":
            return False
    except OSError:
        pass
    st = os.lstat(path)
    for lower in lowers:
        try:
            below = os.lstat(lower / rel)
        except FileNotFoundError:
            continue
        return (stat.S_ISDIR(below.st_mode) and below.st_mode == st.st_mode
                and (below.st_uid, below.st_gid) == (st.st_uid, st.st_gid))
    return False
