"""``wharf cp``, ``diff`` and ``export``: files between a container and the host, its changes
and its whole filesystem as a tar.

The path rules are the docker CLI's (``cli/command/container/cp.go`` and moby's
``pkg/archive/copy.go``): the daemon only ever archives one path and extracts into one existing
directory; the client decides which directory and renames the top entry of the archive so that
``cp a b`` gives ``b`` when ``b`` does not exist, ``b/a`` when it is a directory, and
``SRC/.`` copies the content of a directory rather than the directory. A copy out is spooled
whole before the first file is extracted, so an archive cut short leaves nothing behind.
"""

from __future__ import annotations

import os
import posixpath
import stat
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import click

from wharf.cli.failure import CLIError
from wharf.cli.session import current

if TYPE_CHECKING:
    import tarfile

GO_DIR, GO_SYMLINK = 1 << 31, 1 << 27
GO_NOT_REGULAR = GO_DIR | GO_SYMLINK | (1 << 26) | (1 << 25) | (1 << 24) | (1 << 21) | (1 << 19)
CHUNK = 1 << 20
MAX_DEST_LINKS = 10


# --- argument and path rules (pure) -----------------------------------------------------------

def split_cp_arg(arg: str) -> tuple[str, str]:
    """``CONTAINER:PATH`` -> (container, path); a local path -> ("", path). An absolute path
    or one starting with ``.`` is local even with a colon in it (as in the docker CLI)."""
    if arg.startswith("/"):
        return "", arg
    container, sep, path = arg.partition(":")
    if not sep or container.startswith("."):
        return "", arg
    return container, path


def has_trailing_sep(path: str) -> bool:
    return path.endswith("/")


def specifies_current_dir(path: str) -> bool:
    return posixpath.basename(path) == "." and path.endswith(".")


def asserts_directory(path: str) -> bool:
    return has_trailing_sep(path) or specifies_current_dir(path)


def split_dir_entry(path: str) -> tuple[str, str]:
    """moby's SplitPathDirEntry: ``a/b/`` -> (``a``, ``b``); ``a/b/.`` -> (``a/b``, ``.``)."""
    cleaned = posixpath.normpath(path)
    if specifies_current_dir(path):
        cleaned += "/."
    return posixpath.dirname(cleaned) or ".", posixpath.basename(cleaned) or "/"


def rebase_name(path: str, resolved: str) -> tuple[str, str]:
    """moby's GetRebaseName: (resolved path keeping ``/.`` or ``/``, the name to use or "")."""
    if specifies_current_dir(path) and not specifies_current_dir(resolved):
        resolved += "/."
    if has_trailing_sep(path) and not has_trailing_sep(resolved):
        resolved += "/"
    base = posixpath.basename(path.rstrip("/")) if path != "/" else "/"
    if specifies_current_dir(path):
        base = "."
    resolved_base = split_dir_entry(resolved)[1]
    return resolved, base if base != resolved_base else ""


@dataclass(frozen=True)
class Target:
    """Where a copy lands: extract into ``directory``, renaming the top entry ``old`` to
    ``new`` (equal when nothing is renamed)."""

    directory: str
    old: str
    new: str


def plan_copy(src_path: str, src_is_dir: bool, rename: str, dst_path: str, dst_exists: bool,
              dst_is_dir: bool) -> Target:
    """moby's PrepareArchiveCopy: the archive of ``src_path`` (top entry its base name, to be
    called ``rename`` when set) lands at ``dst_path``. CLIError for the impossible cases."""
    old = split_dir_entry(src_path)[1]
    named = rename or old
    dst_dir, dst_base = split_dir_entry(dst_path)
    if dst_exists and dst_is_dir:
        return Target(dst_path, old, named)
    if dst_exists and src_is_dir:
        raise CLIError("cannot copy directory: the destination is an existing file")
    if not dst_exists and not src_is_dir and asserts_directory(dst_path):
        raise CLIError(f"no such directory: {dst_path}")
    return Target(dst_dir, old, dst_base)


def renamed(name: str, old: str, new: str) -> str:
    """``name`` with its first component ``old`` replaced by ``new`` (``.`` is a component)."""
    parts = [p for p in name.split("/") if p != ""] or ["."]
    if old == new or parts[0] != old:
        return "/".join(parts)
    return "/".join(p for p in [new, *parts[1:]] if p not in ("",))


# --- host side ----------------------------------------------------------------------------------

def destination_info(path: str) -> tuple[str, bool, bool]:
    """moby's CopyInfoDestinationPath: (path after following final symlinks, exists, is dir);
    a missing path needs an existing parent directory."""
    for _ in range(MAX_DEST_LINKS + 1):
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            parent = split_dir_entry(path)[0]
            if not os.path.isdir(parent):
                raise CLIError(f'destination directory "{parent}" must exist') from None
            return path, False, False
        if not stat.S_ISLNK(st.st_mode):
            return path, True, stat.S_ISDIR(st.st_mode)
        target = os.readlink(path)
        path = target if target.startswith("/") else os.path.join(split_dir_entry(path)[0],
                                                                  target)
    raise CLIError(f"too many symlinks in {path}")


def source_info(path: str, follow: bool) -> tuple[str, bool, str]:
    """moby's CopyInfoSourcePath: (resolved local path, is dir, rebase name)."""
    if follow:
        resolved, rename = rebase_name(path, os.path.realpath(path))
    else:
        parent, base = os.path.split(path)
        resolved = os.path.join(os.path.realpath(parent or "."), base)
        rename = posixpath.basename(path.rstrip("/")) if (
            has_trailing_sep(path) and posixpath.basename(path.rstrip("/"))
            != posixpath.basename(resolved.rstrip("/"))) else ""
    try:
        st = os.lstat(resolved)
    except FileNotFoundError:
        raise CLIError(f"could not find the file {path}: no such file or directory") from None
    return resolved, stat.S_ISDIR(st.st_mode), rename


def local_tar(path: str, arcname: str, keep_owner: bool) -> IO[bytes]:
    """A spooled tar of ``path`` named ``arcname``; owned by root unless ``keep_owner``."""
    import tarfile  # noqa: PLC0415 - ~7 ms: only cp pays for it
    import tempfile  # noqa: PLC0415

    def owner(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uname = info.gname = ""
        if not keep_owner:
            info.uid = info.gid = 0
        return info

    spool = tempfile.TemporaryFile()  # noqa: SIM115 - returned to the caller, who closes it
    with tarfile.open(fileobj=spool, mode="w", format=tarfile.PAX_FORMAT) as out:
        out.add(path, arcname=arcname, filter=owner)
    spool.seek(0)
    return spool


def spool(chunks: Iterable[bytes], directory: str) -> IO[bytes]:
    """All of ``chunks`` in an anonymous temporary file in ``directory`` (where the files will
    land, so no other filesystem has to hold the archive), rewound. A stream that breaks
    raises here, before anything was extracted, and leaves no file behind."""
    import tempfile  # noqa: PLC0415

    handle = tempfile.TemporaryFile(dir=directory)  # noqa: SIM115 - returned to the caller
    try:
        for chunk in chunks:
            handle.write(chunk)
        handle.seek(0)
    except BaseException:
        handle.close()
        raise
    return handle


def _safe_name(name: str) -> str:
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise CLIError(f"refusing archive entry {name!r}: it leaves the destination")
    return "/".join(parts)


def extract_here(archive: IO[bytes], target: Target, keep_owner: bool) -> None:
    """Extract the container's tar into ``target.directory`` without following symlinks below
    it (an entry may never be written through a link, from the archive or already there)."""
    import tarfile  # noqa: PLC0415 - ~7 ms: only cp pays for it

    with tarfile.open(fileobj=archive, mode="r|") as src:
        for member in src:
            name = _safe_name(renamed(member.name, target.old, target.new))
            if not name or member.ischr() or member.isblk():
                continue
            _check_parents(target.directory, name)
            path = os.path.join(target.directory, name)
            _clear(path, member)
            member.name = name
            if member.islnk():
                member.linkname = _safe_name(renamed(member.linkname, target.old, target.new))
            if not keep_owner:
                member.uid, member.gid = os.getuid(), os.getgid()
            src.extract(member, target.directory, set_attrs=True, numeric_owner=True)


def _check_parents(directory: str, name: str) -> None:
    parts = name.split("/")
    for i in range(1, len(parts)):
        if os.path.islink(os.path.join(directory, *parts[:i])):
            raise CLIError(f"refusing archive entry {name!r}: {'/'.join(parts[:i])} is a "
                           "symbolic link")


def _clear(path: str, member: tarfile.TarInfo) -> None:
    """Docker's NoOverwriteDirNonDir; an existing file or link is replaced, not written
    through."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode) != member.isdir():
        what = "directory" if stat.S_ISDIR(st.st_mode) else "non-directory"
        raise CLIError(f"cannot overwrite {what} {path!r} with {member.name!r}")
    if not member.isdir():
        os.unlink(path)


# --- commands -----------------------------------------------------------------------------------

def _copy_out(container: str, src: str, dst: str, follow: bool, keep_owner: bool) -> None:
    client = current().client()
    rename = ""
    if follow:
        found = _stat_or_none(container, src) or {}  # a missing path: the GET says so
        if int(found.get("mode", 0)) & GO_SYMLINK:
            link = str(found.get("linkTarget", ""))
            if not link.startswith("/"):
                link = posixpath.join(split_dir_entry(src)[0], link)
            src, rename = rebase_name(src, link)
    info, chunks = client.get_archive(container, src)
    if dst == "-":
        out = sys.stdout.buffer
        for chunk in chunks:
            out.write(chunk)
        out.flush()
        return
    dst_path, exists, is_dir = destination_info(dst)
    target = plan_copy(src, bool(int(info.get("mode", 0)) & GO_DIR), rename, dst_path, exists,
                       is_dir)
    with spool(chunks, target.directory) as archive:  # the whole tar, then the first file
        extract_here(archive, target, keep_owner)


def _copy_in(container: str, src: str, dst: str, follow: bool, keep_owner: bool) -> None:
    client = current().client()
    dst_path, found = dst, _stat_or_none(container, dst)
    if found is not None and int(found.get("mode", 0)) & GO_SYMLINK:
        link = str(found.get("linkTarget", ""))
        dst_path = link if link.startswith("/") else posixpath.join(split_dir_entry(dst)[0],
                                                                    link)
        found = _stat_or_none(container, dst_path)
    mode = int(found.get("mode", 0)) if found is not None else 0
    if found is not None and mode & GO_NOT_REGULAR and not mode & GO_DIR:
        raise CLIError(f'destination "{container}:{dst}" must be a directory or a regular file')
    exists, is_dir = found is not None, bool(mode & GO_DIR)
    if src == "-":
        if not is_dir:
            raise CLIError(f'destination "{container}:{dst}" must be a directory')
        client.put_archive(container, dst_path, _read_chunks(sys.stdin.buffer),
                           copy_uid_gid=keep_owner)
        return
    resolved, src_is_dir, rename = source_info(src, follow)
    target = plan_copy(resolved, src_is_dir, rename, dst_path, exists, is_dir)
    with local_tar(resolved, target.new, keep_owner) as body:
        client.put_archive(container, target.directory, _read_chunks(body),
                           copy_uid_gid=keep_owner)


def _stat_or_none(container: str, path: str) -> dict[str, Any] | None:
    from wharf.errors import NotFound  # noqa: PLC0415 - lazy, like every command import

    try:
        return current().client().stat_path(container, path)
    except NotFound:
        return None


def _read_chunks(handle: IO[bytes]) -> Iterable[bytes]:
    while chunk := handle.read(CHUNK):
        yield chunk


@click.command("cp", context_settings={"ignore_unknown_options": False})
@click.argument("source", metavar="SRC")
@click.argument("dest", metavar="DEST")
@click.option("-a", "--archive", is_flag=True,
              help="Archive mode (copy all uid/gid information).")
@click.option("-L", "--follow-link", is_flag=True, help="Always follow symbol link in SRC_PATH.")
@click.option("-q", "--quiet", is_flag=True,
              help="Accepted for compatibility; wharf prints no progress output.")
def cp_cmd(source: str, dest: str, archive: bool, follow_link: bool, quiet: bool) -> None:
    """Copy files/folders between a container and the local filesystem.

    \b
    wharf cp [OPTIONS] CONTAINER:SRC_PATH DEST_PATH|-
    wharf cp [OPTIONS] SRC_PATH|- CONTAINER:DEST_PATH

    Use '-' as the source to read a tar archive from stdin and extract it to a directory
    destination in a container. Use '-' as the destination to stream a tar archive of a
    container source to stdout.
    """
    del quiet
    if not source:
        raise CLIError("source can not be empty")
    if not dest:
        raise CLIError("destination can not be empty")
    src_container, src_path = split_cp_arg(source)
    dst_container, dst_path = split_cp_arg(dest)
    if src_container and dst_container:
        raise CLIError("copying between containers is not supported")
    if not src_container and not dst_container:
        raise CLIError("must specify at least one container source")
    if src_container:
        _copy_out(src_container, src_path, dst_path, follow_link, archive)
    else:
        _copy_in(dst_container, src_path, dst_path, follow_link, archive)


@click.command("diff")
@click.argument("container")
def diff_cmd(container: str) -> None:
    """Inspect changes to files or directories on a container's filesystem.

    \b
    A  a file or directory was added
    D  a file or directory was deleted
    C  a file or directory was changed
    """
    for change in current().client().changes(container):
        kind = int(change.get("Kind", 0))
        letter = "CAD"[kind] if 0 <= kind <= 2 else "?"
        click.echo(f"{letter} {change.get('Path', '')}")


@click.command("export")
@click.argument("container")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write to a file, instead of STDOUT.")
def export_cmd(container: str, output: Path | None) -> None:
    """Export a container's filesystem as a tar archive (streamed to STDOUT by default)."""
    from wharf.cli.commands.transfer import refuse_terminal, write_tar  # noqa: PLC0415

    refuse_terminal(output, "save")
    write_tar(current().client().export(container), output)
