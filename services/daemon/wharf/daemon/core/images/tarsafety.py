"""Validate an uncompressed layer tar before anything of it is extracted.

``scan`` reads every header (not the file data) with ``tarfile`` and either refuses the layer
(InvalidArgument naming the layer and the entry) or returns a plan: the whiteouts to convert, the
byte ranges of entries to leave out, and the content size.

Rules (R = refused, N = neutralised, S = skipped):
- R  a name or hardlink target with a ``..`` component, or a NUL byte. Docker accepts ``a/../b``
     when it stays inside; we refuse every ``..``, which no real image builder emits, so that our
     reading of a name can never differ from GNU tar's.
- N  absolute names: the leading ``/`` is dropped (``/etc/x`` -> ``etc/x``), as Docker and GNU tar
     both do.
- R  any entry (or hardlink target) whose path goes through a symlink made earlier in this
     layer, including a path that was a symlink and was later replaced: symlink-then-write.
- R  a hardlink whose target is not an earlier non-directory entry of this layer (this covers
     absolute targets such as ``/etc/passwd``), or is a whiteout.
- S  block devices and char devices other than 0:0 (0:0 is the overlay whiteout form itself).
     Docker creates them when it runs as root; an image has no business shipping device nodes
     (the runtime provides /dev), so we drop them rather than mknod on the host.
- R  pax or GNU long-name headers over 1 MiB (tarfile would read them into memory whole).
- R  unknown entry types (GNU volume/multivolume headers, vendor types).
- R  non-zero bytes after the end of the archive: tarfile stops at the first bad or zero header
     where GNU tar would skip ahead and keep extracting, so such trailing data is exactly where
     the two parsers would disagree.
- R  a whiteout that is a directory, a ``.wh.``-prefixed directory component, a whiteout of the
     layer root.
FIFOs are fine. Long names (GNU or pax) are fine.
"""

from __future__ import annotations

import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from wharf.errors import InvalidArgument

WHITEOUT_PREFIX = ".wh."
OPAQUE = ".wh..wh..opq"
MAX_EXTENDED_HEADER = 1 << 20

_FILE_TYPES = (tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.CONTTYPE)
_KNOWN_TYPES = (
    *_FILE_TYPES, tarfile.LNKTYPE, tarfile.SYMTYPE, tarfile.DIRTYPE, tarfile.FIFOTYPE,
    tarfile.CHRTYPE, tarfile.BLKTYPE,
)
_EXTENDED = (tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE,
             tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK)
_CHUNK = 1 << 20


class _CappedTarInfo(tarfile.TarInfo):
    """A TarInfo that refuses oversized extended headers before reading them into memory."""

    def _proc_member(self, tar: tarfile.TarFile) -> tarfile.TarInfo:
        if self.type in _EXTENDED and self.size > MAX_EXTENDED_HEADER:
            raise _OversizedError(f"{self.size}-byte extended header at offset {self.offset}")
        proc = super()._proc_member  # type: ignore[misc]
        result: tarfile.TarInfo = proc(tar)
        return result


class _OversizedError(Exception):
    """Internal: an extended header over the cap (turned into InvalidArgument by ``scan``)."""


@dataclass
class ScanResult:
    """What ``scan`` found. Paths are normalised, relative, ``/``-separated."""

    whiteouts: list[str] = field(default_factory=list)   # "dir/name" to hide (from dir/.wh.name)
    opaques: list[str] = field(default_factory=list)     # dirs to mark opaque ("" = layer root)
    meta: list[str] = field(default_factory=list)        # other ".wh..wh.*" files to delete
    skipped: list[tuple[int, int, str]] = field(default_factory=list)  # (start, end, name)
    size: int = 0                                        # bytes of regular-file content
    entries: int = 0


def normalise(name: str, layer: str, entry: str | None = None) -> str:
    """The relative path GNU tar will extract ``name`` to; InvalidArgument if it could escape.

    ``entry`` names the member when ``name`` is its hardlink target."""
    what = f"entry {name!r}" if entry is None else f"entry {entry!r}: hardlink target {name!r}"
    if "\x00" in name:
        raise InvalidArgument(f"layer {layer}: {what} has a NUL byte")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise InvalidArgument(f"layer {layer}: {what} has a '..' component")
    return "/".join(parts)


class _Scanner:
    def __init__(self, layer: str) -> None:
        self.layer = layer
        self.result = ScanResult()
        self.symlinks: set[str] = set()   # paths that were ever a symlink in this layer
        self.linkable: set[str] = set()   # earlier non-directory, non-whiteout entries

    def refuse(self, member: tarfile.TarInfo, why: str) -> InvalidArgument:
        return InvalidArgument(f"layer {self.layer}: entry {member.name!r} {why}")

    def check_parents(self, member: tarfile.TarInfo, path: str, what: str) -> None:
        parts = path.split("/")
        for i in range(1, len(parts)):
            prefix = "/".join(parts[:i])
            if prefix in self.symlinks:
                raise self.refuse(member, f"{what} goes through the symlink {prefix!r}")
            if parts[i - 1].startswith(WHITEOUT_PREFIX):
                raise self.refuse(member, f"{what} has a whiteout directory {parts[i - 1]!r}")

    def visit(self, member: tarfile.TarInfo, next_offset: int) -> None:
        self.result.entries += 1
        path = normalise(member.name, self.layer)
        self.check_parents(member, path, "path")
        if member.type not in _KNOWN_TYPES:
            raise self.refuse(member, f"has unsupported type {member.type!r}")
        base = path.rsplit("/", 1)[-1]
        if base.startswith(WHITEOUT_PREFIX):
            self.whiteout(member, path, base)
            return
        if member.type in (tarfile.BLKTYPE, tarfile.CHRTYPE) and (
            member.type == tarfile.BLKTYPE or member.devmajor or member.devminor
        ):
            self.result.skipped.append((member.offset, next_offset, member.name))
            return
        if member.type == tarfile.LNKTYPE:
            self.hardlink(member, path)
        elif member.type == tarfile.SYMTYPE:
            if not path:
                raise self.refuse(member, "makes the layer root a symlink")
            self.symlinks.add(path)
        elif member.type in _FILE_TYPES:
            self.result.size += member.size
        if member.type == tarfile.DIRTYPE:
            self.linkable.discard(path)
        else:
            self.linkable.add(path)

    def hardlink(self, member: tarfile.TarInfo, path: str) -> None:
        target = normalise(member.linkname, self.layer, member.name)
        self.check_parents(member, target, "hardlink target")
        if target not in self.linkable:
            raise self.refuse(
                member, f"is a hardlink to {member.linkname!r}, which is not a file of this layer"
            )
        if target in self.symlinks:
            self.symlinks.add(path)  # a hardlink to a symlink is a symlink

    def whiteout(self, member: tarfile.TarInfo, path: str, base: str) -> None:
        if member.type == tarfile.DIRTYPE:
            raise self.refuse(member, "is a whiteout but a directory")
        parent = path.rpartition("/")[0]
        if base == OPAQUE:
            self.result.opaques.append(parent)
        elif base.startswith(WHITEOUT_PREFIX + WHITEOUT_PREFIX):
            self.result.meta.append(path)  # aufs metadata (.wh..wh.plnk etc.): dropped
        else:
            hidden = base.removeprefix(WHITEOUT_PREFIX)
            if hidden in ("", ".", ".."):
                raise self.refuse(member, "is a whiteout of no valid name")
            self.result.whiteouts.append(f"{parent}/{hidden}" if parent else hidden)
        self.linkable.discard(path)


def scan(tar_path: Path, layer: str) -> ScanResult:
    """Validate every header of the uncompressed tar at ``tar_path`` (see the module rules)."""
    scanner = _Scanner(layer)
    try:
        with tarfile.open(tar_path, "r:", tarinfo=_CappedTarInfo) as tf:
            member = tf.next()
            while member is not None:
                following = tf.next()
                end = following.offset if following is not None else tf.offset
                scanner.visit(member, end)
                member = following
            end_of_archive = tf.offset
    except _OversizedError as exc:
        raise InvalidArgument(f"layer {layer}: refused {exc}") from None
    except tarfile.TarError as exc:
        raise InvalidArgument(f"layer {layer} is not a valid tar archive: {exc}") from None
    with tar_path.open("rb") as f:
        _check_trailer(f, end_of_archive, layer)
    return scanner.result


def _check_trailer(f: BinaryIO, offset: int, layer: str) -> None:
    """Refuse any non-zero byte after the end of the archive tarfile saw."""
    f.seek(offset)
    while chunk := f.read(_CHUNK):
        if chunk.count(0) != len(chunk):
            raise InvalidArgument(
                f"layer {layer}: data after the end of the tar archive (offset {offset}); "
                "a damaged header or a lone zero block hides entries"
            )
        offset += len(chunk)
