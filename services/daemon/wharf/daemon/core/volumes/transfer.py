"""Volume export and import (Podman's ``volume export``/``volume import``): a named volume's
data as a tar stream, read from one daemon and written into a volume on another, with no
container running (``wharf container move`` carries volumes this way).

What is carried: the content of the volume's ``_data`` directory, names relative to it (``x``,
``dir/y``), numeric owners, modes, mtimes, symlinks, hard links and FIFOs, as ``docker cp``
keeps them; an export starts with a ``./`` entry for the volume root itself, and an import
that starts with one gives the root that owner, mode and mtime (as ``tar -x`` does for the
directory it extracts into), so a volume whose root a database owns arrives usable. Podman's
and Docker's extraction skip ``./``, so both take these archives as they are.

How: the container archive's machinery (``containers.archive``): a helper process ``chroot``s
into ``_data`` before it reads or writes anything, so a symlink in the volume (or one swapped
in by a container meanwhile, CVE-2018-15664) never leads the daemon to a host file. An upload
is spooled by the caller and checked whole by the layer scanner (``images.tarsafety``: ``..``
names, writes through the archive's symlinks, hard links out of it) before the helper sees it:
a refused archive writes nothing. An archive that fails midway (a full disk) leaves what was
extracted so far: there is no staging copy of a volume that may be large.

Refused: tmpfs and bind volumes of the local driver (``type=``/``device=`` options): their data
is a mount made at a container's start (``hostmount``), not the volume's own directory on this
host; exporting what happens to be mounted, or importing beneath a mount that a start may
replace, would not carry the volume.
"""

from __future__ import annotations

import os
import tarfile
from collections.abc import Iterator
from pathlib import Path

from wharf.daemon.core.containers.archive import EXIT_INVALID, check_tar, start_helper
from wharf.daemon.core.containers.export import tar_tree
from wharf.daemon.core.images import tarsafety
from wharf.daemon.core.images.compression import TAR, sniff_media_type
from wharf.daemon.core.volumes import options as vopts
from wharf.daemon.core.volumes.service import VolumeService
from wharf.daemon.core.volumes.store import Volume
from wharf.errors import Internal, InvalidArgument


class VolumeTransfer:
    """Export and import for the volumes of one VolumeService; uploads spool in ``tmp_dir``."""

    def __init__(self, volumes: VolumeService, tmp_dir: Path) -> None:
        self.volumes = volumes
        self.tmp_dir = tmp_dir

    def local(self, name: str, op: str) -> Volume:
        """The volume ``name``, whose data is its own directory on this host (``op``, "export"
        or "import", words the refusal).

        Raises:
            NotFound: no such volume (``get NAME: no such volume``).
            InvalidArgument: a tmpfs or bind volume (see the module docstring).
        """
        volume = self.volumes.get(name)
        if vopts.local_options(name, volume.options).mounted:
            kind, device = volume.options.get("type", ""), volume.options.get("device", "")
            raise InvalidArgument(
                f"{op} {name}: volume {name} is mounted from {device} (type={kind}): its data "
                f"is not kept in the volume's own directory on this host; only plain local "
                f"volumes can be {op}ed")
        return volume

    def export(self, name: str) -> Iterator[bytes]:
        """GET export: the tar of the volume's data, in chunks as it is written.

        Raises:
            NotFound, InvalidArgument: as :meth:`local` (before anything is streamed).
            Internal: the helper could not start; later, while streaming, when it failed.
        """
        volume = self.local(name, "export")
        return tar_tree(volume.mountpoint, f"volume {name}", top=True)

    def extract(self, name: str, tar_path: Path) -> None:
        """POST import: extract the spooled tar at ``tar_path`` into the volume; files of the
        same name are replaced, others kept.

        Raises:
            NotFound, InvalidArgument: as :meth:`local`.
            InvalidArgument: a compressed or invalid archive, an unsafe entry.
            Internal: the extraction failed (what was extracted before stays).
        """
        volume = self.local(name, "import")
        if sniff_media_type(tar_path) != TAR:
            raise InvalidArgument(f"import {name}: the archive is compressed: send a plain tar "
                                  f"(e.g. gunzip -c FILE | wharf volume import {name} -)")
        check_tar(tar_path)
        root = _top_entry(tar_path)
        args = {"dest": "/", "noOverwriteDirNonDir": False, "owner": None}
        with tar_path.open("rb") as body:
            proc = start_helper(volume.mountpoint, "put", args, stdin=body)
            _, err = proc.communicate()
        message = err.decode(errors="replace").strip()
        if proc.returncode == EXIT_INVALID:
            raise InvalidArgument(f"import {name}: {message}")
        if proc.returncode != 0:
            raise Internal(f"importing into volume {name}: {message or proc.returncode}")
        if root is not None:
            _apply_root(volume.mountpoint, root)


def _top_entry(tar_path: Path) -> tarfile.TarInfo | None:
    """The archive's first entry when it is the directory itself (``./``), else None."""
    with tarfile.open(tar_path, "r:") as archive:
        first = archive.next()
    if first is None or not first.isdir() or tarsafety.normalise(first.name, "upload"):
        return None
    return first


def _apply_root(data: Path, root: tarfile.TarInfo) -> None:
    """Give the volume's root the ``./`` entry's owner, mode and mtime, after the extraction
    (which changed its mtime). Through a descriptor opened without following a link: ``_data``
    is the daemon's own directory, and stays so."""
    fd = os.open(data, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        os.fchown(fd, root.uid, root.gid)
        os.fchmod(fd, root.mode & 0o7777)  # after the chown, which clears set-id bits
        os.utime(fd, (root.mtime, root.mtime))
    except OSError as exc:
        raise Internal(f"setting the owner and mode of the volume root {data}: {exc}") from exc
    finally:
        os.close(fd)

