"""The build context, client side: the body ``wharf build`` sends with ``POST /build``.

Prepared as the docker CLI prepares it (``cli/command/image/build.go``, ``build/context.go``):

- a directory: walked as moby's ``TarWithOptions`` walks it (:func:`wharf.dockerignore.walk`:
  the ``.dockerignore`` patterns, with the Dockerfile and ``.dockerignore`` always sent), depth
  first in byte order, owners 0:0, symlinks sent as symlinks (never
  followed; the daemon refuses one that leads out when COPY uses it), a hard link as a link to
  the first name seen, sockets left out. Every file to send is opened once first, so an
  unreadable one stops the build before anything is sent. A Dockerfile outside the directory
  (``-f ../Dockerfile``) or read from stdin (``-f -``) goes in as ``.dockerfile.<20 hex>``, and
  that name is appended to the ``.dockerignore`` sent (one is made when there is none) so that
  COPY never sees it;
- ``-`` or an http(s) URL: the first 512 bytes tell an archive (the magic of gzip, bzip2, xz or
  zstd, or a valid tar header), sent as it is, from a Dockerfile, sent alone in a context;
- a git URL is refused (the docker CLI clones it; wharf does not yet).

What can fail before the daemon is asked fails here, with the docker CLI's message; the archive
itself is made lazily, while the request body is sent.
"""

from __future__ import annotations

import os
import secrets
import stat
import tarfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from wharf.cli.failure import CLIError
from wharf.dockerignore import (
    DOCKERIGNORE,
    PatternMatcher,
    Verdict,
    keep_build_files,
    read_patterns,
    walk,
)
from wharf.errors import InvalidArgument

DEFAULT_DOCKERFILE = "Dockerfile"
BLOCK = 512
_FLUSH = 64 * 1024
_READ = 1 << 20
# gzip, bzip2, xz, zstd: moby's DetectCompression
_COMPRESSED = (b"\x1f\x8b\x08", b"BZh", b"\xfd7zXZ\x00", b"\x28\xb5\x2f\xfd")
_TYPES = {stat.S_IFDIR: tarfile.DIRTYPE, stat.S_IFREG: tarfile.REGTYPE,
          stat.S_IFLNK: tarfile.SYMTYPE, stat.S_IFIFO: tarfile.FIFOTYPE,
          stat.S_IFCHR: tarfile.CHRTYPE, stat.S_IFBLK: tarfile.BLKTYPE}


@dataclass(frozen=True)
class Context:
    """A context ready to send: the request body, and the Dockerfile's name in it ("" leaves
    the daemon's default, ``Dockerfile``)."""

    body: Iterable[bytes]
    dockerfile: str


@dataclass(frozen=True)
class Member:
    """One archive entry: its header, and its content from a file (read as it is sent) or
    from memory."""

    info: tarfile.TarInfo
    source: Path | None = None
    data: bytes | None = None


def prepare(source: str, dockerfile: str, stdin: BinaryIO) -> Context:
    """The context named on the command line (a directory, ``-`` or a URL), with ``-f``
    (``""``: the default Dockerfile; ``-``: read from ``stdin``). CLIError when it cannot be
    made."""
    if dockerfile == "-" and source == "-":
        raise CLIError("invalid argument: can't use stdin for both build context and dockerfile")
    if source == "-":
        return from_stream(stdin, dockerfile)
    if os.path.exists(source):  # as the docker CLI's os.Stat: a file is refused further on
        return from_directory(source, dockerfile, stdin if dockerfile == "-" else None)
    if is_git_url(source):
        raise CLIError(f"unable to prepare context: {source} is a git repository: wharf does not "
                       "clone contexts yet; clone it and build the directory")
    if source.startswith(("http://", "https://")):
        if dockerfile == "-":
            raise CLIError("unable to prepare context: -f - needs a directory as the context")
        return from_url(source, dockerfile)
    raise CLIError(f'unable to prepare context: path "{source}" not found')


def is_git_url(text: str) -> bool:
    """The docker CLI's ``IsGitURL``."""
    if text.startswith(("http://", "https://")):
        return text.split("#", 1)[0].endswith(".git")
    return text.startswith(("git://", "github.com/", "git@"))


def is_archive(head: bytes) -> bool:
    """The docker CLI's ``IsArchive`` on the first 512 bytes: a compression magic or a tar
    header with a valid checksum."""
    if head.startswith(_COMPRESSED):
        return True
    try:
        tarfile.TarInfo.frombuf(head[:BLOCK], "utf-8", "surrogateescape")
    except tarfile.HeaderError:
        return False
    return True


# --- a directory ----------------------------------------------------------------------------


def from_directory(path: str, dockerfile: str, dockerfile_from: BinaryIO | None = None
                   ) -> Context:
    """A directory as the context; ``dockerfile`` is relative to the working directory (as
    with the docker CLI), and ``dockerfile_from`` a stream to read the Dockerfile from
    instead."""
    root = _context_root(path)
    name, content = "", None
    if dockerfile_from is None:
        name = _dockerfile_in(root, dockerfile)
        if name == ".." or name.startswith("../"):
            try:
                content = Path(dockerfile).read_bytes()
            except OSError as exc:
                raise CLIError(f"unable to open Dockerfile: {_go_error(exc)}") from exc
    members = _walk(root, name if content is None and dockerfile_from is None else None)
    if dockerfile_from is not None:
        content = dockerfile_from.read()
    if content is not None:
        name = ".dockerfile." + secrets.token_hex(10)
        members = with_dockerfile(members, name, content)
    return Context(archive(members), name)


def _go_error(exc: OSError) -> str:
    """An OSError as Go words it: ``lstat /x: no such file or directory``."""
    reason = os.strerror(exc.errno).lower() if exc.errno else str(exc)
    return f"lstat {exc.filename}: {reason}" if exc.filename else reason


def _context_root(path: str) -> Path:
    try:
        real = os.path.realpath(os.path.abspath(path), strict=True)
    except OSError as exc:
        raise CLIError("unable to prepare context: unable to evaluate symlinks in context "
                       f"path: {_go_error(exc)}") from exc
    if not os.path.isdir(real):
        raise CLIError(f"unable to prepare context: context must be a directory: {real}")
    return Path(real)


def _dockerfile_in(root: Path, dockerfile: str) -> str:
    """The Dockerfile's path relative to the context, symlinks resolved (``../…`` when it is
    outside); ``Dockerfile`` by default, or ``dockerfile`` when only that one exists."""
    wanted = root / DEFAULT_DOCKERFILE
    if dockerfile:
        wanted = Path(os.path.abspath(dockerfile))
    elif not os.path.lexists(wanted) and os.path.lexists(root / "dockerfile"):
        wanted = root / "dockerfile"
    try:
        real = os.path.realpath(wanted, strict=True)
    except OSError as exc:
        raise CLIError("unable to prepare context: unable to evaluate symlinks in Dockerfile "
                       f"path: {_go_error(exc)}") from exc
    return os.path.relpath(real, root)


def _walk(root: Path, dockerfile: str | None) -> list[Member]:
    """What the docker CLI sends of ``root``, in its order; ``dockerfile`` (relative) is sent
    even when the patterns exclude it."""
    try:
        patterns = read_patterns((root / DOCKERIGNORE).read_bytes())
    except FileNotFoundError:
        patterns = []
    except OSError as exc:
        raise CLIError(f"error reading .dockerignore: {exc}") from exc
    try:
        matcher = PatternMatcher(keep_build_files(patterns, dockerfile))
    except InvalidArgument as exc:
        raise CLIError(f"error checking context: {exc}") from exc
    links: dict[tuple[int, int], str] = {}
    members: list[Member] = []
    try:
        for rel, _, verdict in walk(root, matcher):
            if verdict is Verdict.SEND and (member := _member(root, rel, links)) is not None:
                members.append(member)
    except PermissionError as exc:
        raise CLIError(f"error checking context: can't stat '{exc.filename}'") from exc
    except OSError as exc:
        raise CLIError(f"error checking context: {exc}") from exc
    return members


def _member(root: Path, rel: str, links: dict[tuple[int, int], str]) -> Member | None:
    """The entry for ``root/rel`` as moby's tar appender makes it; None for a socket."""
    path = root / rel
    st = os.lstat(path)
    kind = _TYPES.get(stat.S_IFMT(st.st_mode))
    if kind is None:
        return None
    info = tarfile.TarInfo(rel)
    info.type, info.mode, info.mtime = kind, stat.S_IMODE(st.st_mode), int(st.st_mtime)
    if kind == tarfile.SYMTYPE:
        info.linkname = os.readlink(path)
    elif kind in (tarfile.CHRTYPE, tarfile.BLKTYPE):
        info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
    if kind != tarfile.REGTYPE:
        return Member(info)
    if st.st_nlink > 1:
        first = links.setdefault((st.st_dev, st.st_ino), rel)
        if first != rel:
            info.type, info.linkname = tarfile.LNKTYPE, first
            return Member(info)
    try:
        os.close(os.open(path, os.O_RDONLY | os.O_NONBLOCK))
    except PermissionError as exc:
        raise CLIError(f"error checking context: no permission to read from '{path}'") from exc
    info.size = st.st_size
    return Member(info, source=path)


def with_dockerfile(members: list[Member], name: str, content: bytes) -> list[Member]:
    """``members`` plus the Dockerfile as ``name``, hidden from COPY by a line in the
    ``.dockerignore`` sent (moby's ``AddDockerfileToBuildContext``)."""
    now = int(time.time())
    line = f"\n{name}\n".encode()
    added = [Member(file_info(name, len(content), 0o600, now), data=content)]
    out = list(members)
    for index, member in enumerate(out):
        if member.info.name == DOCKERIGNORE and member.source is not None:
            data = member.source.read_bytes() + line
            info = file_info(DOCKERIGNORE, len(data), member.info.mode, int(member.info.mtime))
            out[index] = Member(info, data=data)
            return out + added
    data = DOCKERIGNORE.encode() + line
    return out + added + [Member(file_info(DOCKERIGNORE, len(data), 0o600, now), data=data)]


def file_info(name: str, size: int, mode: int, mtime: int) -> tarfile.TarInfo:
    """A regular file's header, owned by 0:0."""
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, mode, mtime
    return info


# --- a stream (stdin or a URL) ---------------------------------------------------------------


def from_stream(stream: BinaryIO, dockerfile: str) -> Context:
    """An archive read from ``stream`` (sent as it comes, ``dockerfile`` naming the Dockerfile
    in it), or a Dockerfile, sent alone in a context of its own."""
    head = b""
    while len(head) < BLOCK and (chunk := stream.read(BLOCK - len(head))):
        head += chunk
    if is_archive(head):
        return Context(_chain(head, stream), dockerfile)
    if dockerfile == "-":
        raise CLIError("unable to prepare context: build context is not an archive")
    content = head + stream.read()
    info = file_info(DEFAULT_DOCKERFILE, len(content), 0o644, int(time.time()))
    return Context(archive([Member(info, data=content)]), DEFAULT_DOCKERFILE)


def from_url(url: str, dockerfile: str) -> Context:
    """The context downloaded from an http(s) URL: an archive or a Dockerfile."""
    import urllib.error  # noqa: PLC0415 - only URL contexts need it
    import urllib.request  # noqa: PLC0415

    try:
        response = urllib.request.urlopen(url, timeout=60)  # noqa: S310 - http(s) only
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise CLIError(f"unable to prepare context: unable to download remote context {url}: "
                       f"{exc}") from exc
    return from_stream(response, dockerfile)


def _chain(head: bytes, stream: BinaryIO) -> Iterator[bytes]:
    yield head
    while chunk := stream.read(_READ):
        yield chunk


# --- the archive -----------------------------------------------------------------------------


def archive(members: Iterable[Member]) -> Iterator[bytes]:
    """The tar stream of ``members`` in chunks of about 64 KiB, ended by two zero blocks (as
    Go's tar writer ends it: no padding to a 10 KiB record)."""
    buffer = bytearray()
    for member in members:
        buffer += member.info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
        if member.data is not None:
            buffer += member.data
        elif member.source is not None:
            for chunk in _content(member.source, member.info.size):
                buffer += chunk
                if len(buffer) >= _FLUSH:
                    yield bytes(buffer)
                    buffer.clear()
        buffer += bytes(-member.info.size % BLOCK)
        if len(buffer) >= _FLUSH:
            yield bytes(buffer)
            buffer.clear()
    yield bytes(buffer + bytes(2 * BLOCK))


def _content(path: Path, size: int) -> Iterator[bytes]:
    """``size`` bytes of the file, as its header announced them."""
    left = size
    with path.open("rb") as handle:
        while left > 0:
            chunk = handle.read(min(_READ, left))
            if not chunk:
                raise CLIError(f"{path} changed while the context was sent: {size - left} of "
                               f"{size} bytes")
            left -= len(chunk)
            yield chunk
