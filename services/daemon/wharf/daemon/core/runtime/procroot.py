"""Reaching into a container's files from the host without being led out of them.

A running container's filesystem (its mounts included) is ``/proc/<pid>/root``. A pid is only
a number: once the container's process has exited it may name any host process, whose root is
the host's ``/``. :func:`open_root` therefore holds the process with a pidfd, checks that it
is in the container's cgroup, opens its root, and checks the pidfd is still alive: then the
descriptor is that process's root, whatever happens to the pid afterwards. Paths under it are
``/proc/self/fd/<n>/…`` (:func:`fd_path`); a helper process inherits the descriptor.

:func:`open_in_root` opens a file with a directory as ``/`` (``openat2`` with
``RESOLVE_IN_ROOT``, the kernel's own walk, so a link swapped in meanwhile cannot lead out
either); before Linux 5.6 it falls back to ``core.rootpath``'s walk and ``O_NOFOLLOW``.
"""

from __future__ import annotations

import ctypes
import errno
import os
import re
import signal
from pathlib import Path

from wharf.daemon.core.rootpath import host_path, resolve_in_root
from wharf.errors import WharfError

_SYS_OPENAT2 = 437  # the same number on every architecture (a syscall added after 5.1)
_RESOLVE_NO_MAGICLINKS = 0x02
_RESOLVE_IN_ROOT = 0x10
_FD_PATH = re.compile(r"/proc/self/fd/(\d+)")


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64),
                ("resolve", ctypes.c_uint64)]


def in_container(pid: int, container_id: str) -> bool:
    """Whether ``pid`` is in container ``container_id``'s cgroup (per ``/proc/<pid>/cgroup``:
    cgroupfs ``…/wharf/<id>`` or systemd ``…/wharf-<id>.scope``, below it too)."""
    try:
        text = Path(f"/proc/{pid}/cgroup").read_text()
    except OSError:
        return False
    for line in text.splitlines():
        path = line.split(":", 2)[-1]
        if any(container_id in part for part in path.split("/")):
            return True
    return False


def open_root(pid: int, container_id: str) -> int | None:
    """An ``O_PATH`` descriptor of the root of ``pid``, when ``pid`` is (still) a process of
    container ``container_id``; None when it is not (exited, or its number reused)."""
    if pid <= 0:
        return None
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:
        return None
    try:
        if not in_container(pid, container_id):
            return None
        try:
            fd = os.open(f"/proc/{pid}/root", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:
            return None
        try:
            signal.pidfd_send_signal(pidfd, 0)  # alive now, so /proc/<pid> was this process
        except OSError:
            os.close(fd)
            return None
        return fd
    finally:
        os.close(pidfd)


def fd_path(fd: int) -> Path:
    """The path naming the directory ``fd`` in this process (and in a child given the fd)."""
    return Path(f"/proc/self/fd/{fd}")


def inherited(root: Path) -> tuple[int, ...]:
    """The descriptor a child needs for ``root`` to mean the same in it (none for a path)."""
    match = _FD_PATH.fullmatch(str(root))
    return (int(match.group(1)),) if match else ()


def open_in_root(root: Path, path: str, flags: int = os.O_RDONLY) -> int:
    """Open ``path`` with ``root`` as ``/``: links and ``..`` never lead out of it.

    Raises:
        OSError: as open(2) would inside the root (ENOENT, ELOOP, ...).
    """
    flags |= os.O_CLOEXEC
    dirfd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        how = _OpenHow(flags, 0, _RESOLVE_IN_ROOT | _RESOLVE_NO_MAGICLINKS)
        libc = ctypes.CDLL(None, use_errno=True)
        fd = int(libc.syscall(_SYS_OPENAT2, dirfd, os.fsencode(path.lstrip("/") or "."),
                              ctypes.byref(how), ctypes.sizeof(how)))
        if fd >= 0:
            return fd
        err = ctypes.get_errno()
        if err not in (errno.ENOSYS, errno.EPERM):  # EPERM: a seccomp filter refusing it
            raise OSError(err, os.strerror(err), path)
    finally:
        os.close(dirfd)
    try:
        resolved = resolve_in_root(root, path, must_exist=True)
    except WharfError as exc:
        raise OSError(errno.ENOENT, exc.message, path) from None
    return os.open(host_path(root, resolved), flags | os.O_NOFOLLOW)
