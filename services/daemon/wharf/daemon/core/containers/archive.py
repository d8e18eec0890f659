"""``docker cp``: stat, read and write paths of a container's filesystem.

Which filesystem: a running (or paused) container is reached through ``/proc/<pid>/root``, so
a copy sees exactly what the container sees, its volumes, binds and tmpfs mounts included; the
root is opened once the pid was checked to be still the container's (``runtime.procroot``) and
used through that descriptor, so a pid reused by a host process never names the host's ``/``. A
created or exited container has no process; its overlay is mounted at its usual place
(``<container dir>/rootfs/merged``, the mount ``start`` makes and reuses) and left mounted
until the container starts or is removed, like the rootfs of a container that exited.

Staying inside: every path is resolved with the container's root as ``/`` (``core.rootpath``:
symlinks, absolute or relative, never climb above it). Reading a tree and extracting an upload
are done by a helper process that first ``chroot``s into the container root, as moby's
chrootarchive does: a container that swaps a directory for a symlink during the copy
(CVE-2018-15664) still cannot make the daemon read or write a host file; the helper loads every
module it needs before the chroot and no other after it. Uploads are spooled,
then checked by the layer scanner (``images.tarsafety``: ``..`` names, writes through symlinks
of the archive, hardlinks out of it) before the helper sees them.
"""

from __future__ import annotations

import base64
import errno
import json
import os
import posixpath
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from wharf.daemon.core.containers.changes import Change, container_changes
from wharf.daemon.core.containers.lifecycle import Status
from wharf.daemon.core.containers.records import ContainerRecord
from wharf.daemon.core.containers.service import ContainerService
from wharf.daemon.core.images import tarsafety
from wharf.daemon.core.rootpath import host_path, resolve_in_root
from wharf.daemon.core.runtime import procroot, rootfs
from wharf.daemon.core.runtime.users import resolve_user
from wharf.errors import Internal, InvalidArgument, NotFound, PermissionDenied

STAT_HEADER = "X-Docker-Container-Path-Stat"
_CHUNK = 1 << 16
# Go's os.FileMode type bits (what docker clients decode from the stat header).
GO_DIR, GO_SYMLINK, GO_DEVICE, GO_PIPE, GO_SOCKET = 1 << 31, 1 << 27, 1 << 26, 1 << 25, 1 << 24
GO_SETUID, GO_SETGID, GO_CHARDEV, GO_STICKY = 1 << 23, 1 << 22, 1 << 21, 1 << 20
# The put helper's exit statuses besides 0 and 1 (any other failure).
EXIT_NOT_FOUND, EXIT_INVALID, EXIT_READ_ONLY = 2, 3, 4

# Before every helper script (this module's and export's): load all they use, then forbid
# loading more from files. After the chroot a module read from disk would be the container's
# file, run as host root (Python 3.12's tarfile imports `warnings` on an extract without
# filter=; a traceback may look up a codec). Builtin and frozen modules stay available.
_PRELUDE = r"""
import errno, json, os, shutil, stat, sys, tarfile, zlib
sys.meta_path[:] = [f for f in sys.meta_path if getattr(f, "__name__", "") != "PathFinder"]
"""
# The helper: `python -I -S -c _HELPER <root> get|put <json>`; it chroots before touching
# anything. `get` writes a tar of args.path named args.name to stdout; `put` extracts the tar on
# stdin into args.dest.
_HELPER = r"""
import errno, json, os, shutil, stat, sys, tarfile
tarfile.pwd = tarfile.grp = None  # no NSS lookups inside the container root
# docker cp keeps modes, owners and setuid bits, so "fully_trusted" (Python 3.11's only
# behaviour); the upload was scanned before and the chroot confines it. Explicit, so 3.12+
# neither warns nor imports. 3.11 before 3.11.4 has no filter argument.
trusted = {"filter": "fully_trusted"} if hasattr(tarfile, "fully_trusted_filter") else {}
root, op, args = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
def fail(code, message):
    sys.stderr.write(message)
    sys.exit(code)
try:
    os.chroot(root)
    os.chdir("/")
    if op == "get":
        def anonymous(info):
            info.uname = info.gname = ""
            return info
        with tarfile.open(fileobj=sys.stdout.buffer, mode="w|", format=tarfile.PAX_FORMAT) as out:
            out.add(args["path"], arcname=args["name"], filter=anonymous)
        sys.exit(0)
    try:
        os.chdir(args["dest"])
    except FileNotFoundError:
        fail(2, "Could not find the file %s in container" % args["dest"])
    except NotADirectoryError:
        fail(3, "extraction point is not a directory: %s" % args["dest"])
    owner, late_times = args["owner"], {}
    with tarfile.open(fileobj=sys.stdin.buffer, mode="r|") as src:
        for member in src:
            name = "/".join(p for p in member.name.split("/") if p not in ("", "."))
            if not name or member.ischr() or member.isblk():
                continue  # the target itself; device nodes are dropped as in image layers
            try:
                found = os.lstat(name)
            except FileNotFoundError:
                found = None
            if found is not None:
                is_dir = stat.S_ISDIR(found.st_mode)
                if args["noOverwriteDirNonDir"] and is_dir != member.isdir():
                    what = ("directory %r with non-directory %r" if is_dir else
                            "non-directory %r with directory %r")
                    fail(3, "cannot overwrite " + what % ("/" + name, member.name))
                if not (is_dir and member.isdir()):
                    shutil.rmtree(name) if is_dir else os.unlink(name)
            member.name = name
            if member.islnk():
                member.linkname = "/".join(p for p in member.linkname.split("/")
                                           if p not in ("", "."))
            if owner is not None:
                member.uid, member.gid = owner
            src.extract(member, ".", set_attrs=True, numeric_owner=True, **trusted)
            if member.isdir() or member.issym():
                late_times[name] = member.mtime
            else:
                late_times.pop(name, None)
    # tarfile sets no symlink's mtime, and a directory's changes as entries are written into
    # it: both are set last, as dockerd does.
    for name, mtime in late_times.items():
        try:
            os.utime(name, (mtime, mtime), follow_symlinks=False)
        except (FileNotFoundError, NotADirectoryError):
            pass  # replaced later in the archive along with a parent
except OSError as exc:
    fail(4 if exc.errno == errno.EROFS else 1, str(exc))
except tarfile.TarError as exc:
    fail(3, "invalid tar archive: %s" % exc)
except Exception as exc:  # no traceback: printing one reads files, now the container's
    fail(1, "archive helper failed: %r" % exc)
"""


# --- pure parts: the stat header and path resolution ------------------------------------------

def go_file_mode(st_mode: int) -> int:
    """Go's ``os.FileMode`` for a ``st_mode`` (as ``os.Lstat`` fills it in)."""
    mode = st_mode & 0o777
    kind = stat.S_IFMT(st_mode)
    mode |= {stat.S_IFDIR: GO_DIR, stat.S_IFLNK: GO_SYMLINK, stat.S_IFBLK: GO_DEVICE,
             stat.S_IFCHR: GO_DEVICE | GO_CHARDEV, stat.S_IFIFO: GO_PIPE,
             stat.S_IFSOCK: GO_SOCKET}.get(kind, 0)
    for bit, go_bit in ((stat.S_ISUID, GO_SETUID), (stat.S_ISGID, GO_SETGID),
                        (stat.S_ISVTX, GO_STICKY)):
        if st_mode & bit:
            mode |= go_bit
    return mode


def go_time(ns: int) -> str:
    """RFC 3339 with nanoseconds, trailing zeros dropped (Go's ``time.RFC3339Nano``, UTC)."""
    seconds, nanos = divmod(ns, 10**9)
    text = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    fraction = f"{nanos:09d}".rstrip("0")
    return f"{text}.{fraction}Z" if fraction else f"{text}Z"


@dataclass(frozen=True)
class PathStat:
    """Docker's ``ContainerPathStat``; ``mode`` in Go FileMode bits."""

    name: str
    size: int
    mode: int
    mtime: str
    link_target: str = ""

    @property
    def is_dir(self) -> bool:
        return bool(self.mode & GO_DIR)

    def header(self) -> str:
        """The ``X-Docker-Container-Path-Stat`` value: base64 of the JSON object."""
        body = {"name": self.name, "size": self.size, "mode": self.mode, "mtime": self.mtime,
                "linkTarget": self.link_target}
        return base64.b64encode(json.dumps(body, separators=(",", ":")).encode()).decode()


def abs_path(path: str) -> str:
    """The path as an absolute container path, cleaned, keeping a trailing ``/`` or ``/.``
    (Docker's ``PreserveTrailingDotOrSeparator``: they mean "the directory itself")."""
    if "\x00" in path:
        raise InvalidArgument("the path contains a NUL byte")
    clean = posixpath.normpath("/" + path)
    if clean.startswith("//"):
        clean = "/" + clean.lstrip("/")
    if path.endswith("/.") or path == ".":
        return clean.rstrip("/") + "/."
    if path.endswith("/") and clean != "/":
        return clean + "/"
    return clean


def resolve_path(root: Path, path: str) -> tuple[str, str]:
    """(absolute path as asked, resolved container path). The last component is not followed,
    unless the path ends with ``/`` or ``/.`` (then it names the directory a link points to)."""
    absolute = abs_path(path)
    parent, base = posixpath.split(absolute)
    if base in ("", ".") or absolute == "/":
        return absolute, resolve_in_root(root, absolute)
    return absolute, posixpath.join(resolve_in_root(root, parent), base)


def stat_path(root: Path, path: str, container: str = "") -> tuple[PathStat, str]:
    """The stat of ``path`` inside ``root`` and its resolved container path.

    Raises:
        NotFound: the path does not exist.
    """
    absolute, resolved = resolve_path(root, path)
    try:
        st = os.lstat(host_path(root, resolved))
    except (FileNotFoundError, NotADirectoryError):
        raise NotFound(f"Could not find the file {absolute} in container {container}".rstrip()
                       ) from None
    target = ""
    if stat.S_ISLNK(st.st_mode):
        target = resolve_in_root(root, absolute)
    name = posixpath.basename(absolute.rstrip("/")) if absolute != "/" else "/"
    if absolute.endswith("/."):
        name = "."
    return PathStat(name, st.st_size, go_file_mode(st.st_mode), go_time(st.st_mtime_ns),
                    target), resolved


# --- the container side ------------------------------------------------------------------------

class ContainerArchive:
    """cp and diff for the containers of one ContainerService."""

    def __init__(self, containers: ContainerService, tmp_dir: Path) -> None:
        self.containers = containers
        self.tmp_dir = tmp_dir
        self._mounting = threading.Lock()

    def _lowers(self, record: ContainerRecord) -> list[Path]:
        image = self.containers.images.get(record.image_id)
        layers = self.containers.images.layers
        return [layers.diff_path(c) for c in reversed(image.chain_ids)]

    @contextmanager
    def root(self, record: ContainerRecord) -> Iterator[Path]:
        """The container's filesystem as the host sees it (see the module docstring). A
        running container's is ``/proc/self/fd/<n>``: its process's root, opened once its pid
        was checked to be still the container's (a pid reused by a host process would name
        the host's ``/``); the descriptor is closed when the block ends."""
        fd = None
        if record.state.status in (Status.RUNNING, Status.PAUSED):
            fd = procroot.open_root(record.state.pid, record.id)
        if fd is None:
            yield self.overlay_root(record)
            return
        try:
            yield procroot.fd_path(fd)
        finally:
            os.close(fd)

    def overlay_root(self, record: ContainerRecord) -> Path:
        """The container's overlay as the daemon sees it: its image layers and its own
        changes, none of its mounts; mounted now if the container has no mount yet."""
        with self._mounting:
            return self.containers.bundles.mount(record, self._lowers(record))

    def stat(self, name: str, path: str) -> PathStat:
        """HEAD archive: the stat of ``path``; NotFound when it does not exist."""
        record = self.containers.get(name)
        with self.root(record) as root:
            return stat_path(root, path, name)[0]

    def read(self, name: str, path: str) -> tuple[PathStat, Iterator[bytes]]:
        """GET archive: the stat and a tar stream of ``path`` (its base name at the top)."""
        record = self.containers.get(name)
        with self.root(record) as root:
            info, resolved = stat_path(root, path, name)
            args = {"path": resolved, "name": info.name if info.name != "/" else "."}
            proc = start_helper(root, "get", args, stdin=subprocess.DEVNULL)
        self._event(record, "archive-path", path)
        return info, stream_output(proc, record.short_id)

    def extract(self, name: str, path: str, tar_path: Path, *, no_overwrite_dir_non_dir: bool,
                copy_uid_gid: bool) -> None:
        """PUT archive: extract the uploaded tar at ``tar_path`` into the directory ``path``.

        Raises:
            InvalidArgument: not a tar, an unsafe entry, or a dir/non-dir conflict.
            NotFound: the directory does not exist.
            PermissionDenied: the container's root filesystem is read-only.
        """
        record = self.containers.get(name)
        running = record.state.status in (Status.RUNNING, Status.PAUSED)
        if record.options.readonly_rootfs and not running:
            raise PermissionDenied("container rootfs is marked read-only")
        check_tar(tar_path)
        with self.root(record) as root, tar_path.open("rb") as body:
            dest = resolve_in_root(root, abs_path(path))
            owner = self._owner(record, root) if copy_uid_gid else None
            args = {"dest": dest, "noOverwriteDirNonDir": no_overwrite_dir_non_dir,
                    "owner": owner}
            proc = start_helper(root, "put", args, stdin=body)
            _, err = proc.communicate()
        message = err.decode(errors="replace").strip()
        if proc.returncode == EXIT_NOT_FOUND:
            raise NotFound(message)
        if proc.returncode == EXIT_INVALID:
            raise InvalidArgument(message)
        if proc.returncode == EXIT_READ_ONLY:
            raise PermissionDenied(f"container rootfs is marked read-only: {message}")
        if proc.returncode != 0:
            raise Internal(f"extracting into {record.short_id}:{path}: {message}")
        self._event(record, "extract-to-dir", path)

    def changes(self, name: str) -> list[Change]:
        """GET changes: what the container changed in its image's filesystem."""
        record = self.containers.get(name)
        upper = rootfs.OverlayPaths(self.containers.bundles.dir(record.id) / "rootfs").upper
        mounts = [m.destination for m in record.mounts]
        mounts += list(record.options.tmpfs)
        return container_changes(upper, self._lowers(record), mounts)

    def _owner(self, record: ContainerRecord, root: Path) -> list[int]:
        """``copyUIDGID``: dockerd chowns to the container's configured user (root if none)."""
        user = str(record.config.get("User") or "")
        if not user:
            return [0, 0]
        ids = resolve_user(root, user, [])
        return [ids.uid, ids.gid]

    def _event(self, record: ContainerRecord, action: str, path: str) -> None:
        self.containers.events.emit("container", action, record.id, image=record.image,
                                    name=record.name, path=path)


def check_tar(tar_path: Path) -> None:
    """The layer scanner's rules for uploads; its messages without the "layer" wording."""
    label = "upload"
    try:
        tarsafety.scan(tar_path, label)
    except InvalidArgument as exc:
        text = exc.message.replace(f"layer {label} is not", "the upload is not")
        raise InvalidArgument(text.replace(f"layer {label}: ", "refused archive: ")) from None


def start_helper(root: Path, op: str, args: Mapping[str, object], *, stdin: int | IO[bytes],
                 script: str = _HELPER) -> subprocess.Popen[bytes]:
    """``python -I -S -c script root op args`` with its stdout and stderr piped; the script
    runs after :data:`_PRELUDE`, and a ``/proc/self/fd/<n>`` root's descriptor is inherited."""
    argv = [sys.executable, "-I", "-S", "-c", _PRELUDE + script, str(root), op, json.dumps(args)]
    try:
        return subprocess.Popen(argv, stdin=stdin, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, pass_fds=procroot.inherited(root))
    except OSError as exc:
        raise Internal(f"cannot start the archive helper: {os.strerror(exc.errno or errno.EIO)}"
                       ) from exc


def stream_output(proc: subprocess.Popen[bytes], what: str) -> Iterator[bytes]:
    """The helper's stdout in chunks; it is killed if the reader goes away early. A helper
    that fails after its output began raises Internal at the end, so the reply is cut short
    instead of passing a possibly broken tar for a whole one."""
    assert proc.stdout is not None and proc.stderr is not None
    complete = False
    try:
        while chunk := os.read(proc.stdout.fileno(), _CHUNK):
            yield chunk
        complete = True
    finally:
        if not complete:
            proc.kill()
        proc.stdout.close()
        err = proc.stderr.read().decode(errors="replace").strip()
        proc.stderr.close()
        code = proc.wait()
    if code != 0:
        raise Internal(f"archive of {what} failed: {err or f'exit status {code}'}")
