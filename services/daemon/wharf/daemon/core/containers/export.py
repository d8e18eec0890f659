"""``docker export``: a tar of a container's whole filesystem, its mounts left out.

What is exported: the container's overlay as the daemon mounted it (``ContainerArchive
.overlay_root``: the image layers under the container's upper dir, whiteouts applied by the
kernel), for a running container and a stopped one alike. The runtime mounts volumes, binds,
tmpfs, ``/proc`` and ``/sys`` in the container's own mount namespace, so they are not there; a
directory on another device than the root (a mount that propagated back anyway) is exported as
an empty directory, as dockerd exports mount points.

How: the archive helper's way (``containers.archive``): a child process ``chroot``s into the
overlay, walks it without following symlinks and writes a PAX tar to its stdout, which is
streamed in chunks; a helper that fails midway makes the stream raise at its end, so the reply
is cut short rather than passed off as a whole filesystem. Entries keep numeric owners, modes,
mtimes, device numbers and hard links; sockets are left out (tar has no type for them).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

from wharf.daemon.core.containers.archive import ContainerArchive, start_helper, stream_output

# `python -I -S -c _EXPORT <root> export {"top": bool}`: a tar of everything under <root>, names
# relative; with "top", a first entry "./" for <root> itself (its owner, mode and mtime).
_EXPORT = r"""
import errno, json, os, stat, sys, tarfile
tarfile.pwd = tarfile.grp = None  # numeric owners only: no NSS lookups inside the container
try:
    with_top = json.loads(sys.argv[3]).get("top", False)
    os.chroot(sys.argv[1])
    os.chdir("/")
    top = os.lstat("/").st_dev
    def entries(rel):
        try:
            names = sorted(os.listdir("/" + rel))
        except FileNotFoundError:  # removed by the running container meanwhile
            return
        for name in names:
            yield rel + "/" + name if rel else name
    with tarfile.open(fileobj=sys.stdout.buffer, mode="w|", format=tarfile.PAX_FORMAT) as out:
        if with_top:
            info = out.gettarinfo("/", arcname=".")
            info.uname = info.gname = ""
            out.addfile(info)
        stack = [entries("")]
        while stack:
            member = next(stack[-1], None)
            if member is None:
                stack.pop()
                continue
            try:
                info = out.gettarinfo("/" + member, arcname=member)
            except FileNotFoundError:
                continue
            if info is None:  # a socket
                continue
            info.uname = info.gname = ""
            if not info.isreg():
                out.addfile(info)
                if info.isdir() and os.lstat("/" + member).st_dev == top:
                    stack.append(entries(member))
                continue
            fd = os.open("/" + member, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
            with os.fdopen(fd, "rb") as body:
                if not stat.S_ISREG(os.fstat(fd).st_mode):
                    raise OSError(errno.EAGAIN, "changed while it was read", member)
                out.addfile(info, body)
except OSError as exc:
    sys.stderr.write(str(exc))
    sys.exit(1)
"""


def export(archive: ContainerArchive, name: str) -> Iterator[bytes]:
    """GET export: the tar of container ``name``'s filesystem, in chunks as it is written.

    Raises:
        NotFound: no such container (before anything is streamed).
        Internal: the helper could not start; later, while streaming, when it failed.
    """
    record = archive.containers.get(name)
    chunks = tar_tree(archive.overlay_root(record), record.short_id)
    archive.containers.events.emit("container", "export", record.id, image=record.image,
                                   name=record.name)
    return chunks


def tar_tree(root: Path, what: str, *, top: bool = False) -> Iterator[bytes]:
    """A tar of everything under ``root`` (names relative to it, as this module's docstring
    says), streamed from a helper chrooted into ``root``; ``top`` adds ``./`` first, for the
    owner, mode and mtime of ``root`` itself (a volume export). ``what`` names the tree in
    the error of a helper that fails midway.

    Raises:
        Internal: the helper could not start; later, while streaming, when it failed.
    """
    proc = start_helper(root, "export", {"top": top}, stdin=subprocess.DEVNULL, script=_EXPORT)
    return stream_output(proc, what)
