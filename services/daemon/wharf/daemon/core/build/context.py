"""The build context, daemon side: receive it, hide what ``.dockerignore`` excludes, and find
COPY/ADD sources and destinations inside it.

Receiving (the body of ``POST /build``) reuses the image layers' safety code. The body (plain
tar, or gzip, bzip2, xz or zstd by magic bytes, as Docker's ``DecompressStream``) is
decompressed in bounded steps (``images.compression``); every header is checked before anything
is written (``images.tarsafety.scan``: no ``..``, absolute names made relative, hard links only
to earlier files of the archive, no write through one of its symlinks, devices dropped); confined
GNU tar extracts it (``images.untar.extract``). A size limit (bytes received, bytes of tar) and
an entry-count limit refuse oversized contexts; any failure leaves nothing behind.

Then the builder calls :func:`read_dockerfile` (Docker reads it first) and
:func:`apply_dockerignore`, which removes what the patterns exclude, the Dockerfile and
``.dockerignore`` too when matched (moby ``removeDockerfile``): COPY/ADD never see them.

Sources and destinations follow Docker's classic builder (moby ``builder/dockerfile/copy.go``),
with one deliberate difference: a symlink on a source's way that leads out of the context (an
absolute target, or ``..`` past the root) is refused as "forbidden path outside the build
context", where Docker would re-root it inside the context (and then usually not find it).
"""

from __future__ import annotations

import bz2
import hashlib
import lzma
import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from wharf.daemon.core.images import compression as cz
from wharf.daemon.core.images.compression import TAR_GZIP, TAR_ZSTD, decompressed, sniff_media_type
from wharf.daemon.core.images.tarsafety import scan
from wharf.daemon.core.images.untar import extract
from wharf.daemon.core.rootpath import host_path, resolve_in_root
from wharf.dockerignore import (
    DOCKERIGNORE,
    PatternMatcher,
    go_clean,
    go_match_regex,
    has_wildcards,
    prune,
    read_patterns,
)
from wharf.errors import InvalidArgument, NotFound

MIB = 1 << 20
DEFAULT_DOCKERFILE = "Dockerfile"
_LABEL = "build context"  # the layer code says "layer <label>"; see _as_context
_CHUNK = 1 << 20
_BZIP2_MAGIC = b"BZh"
_XZ_MAGIC = b"\xfd7zXZ\x00"
_XZ_MEMLIMIT = 256 * MIB  # xz -9 needs 65 MiB; a forged header may ask for 1.5 GiB


@dataclass(frozen=True)
class ContextLimits:
    """``max_bytes`` bounds both the body as received and the uncompressed tar; a compressed
    body also inflates to at most ``inflate`` of its size (the layers' rule)."""

    max_bytes: int = 2 << 30
    max_files: int = 1_000_000
    inflate: cz.InflateLimit = cz.InflateLimit()


@dataclass(frozen=True)
class BuildContext:
    """A received context: its directory, bytes of regular-file content, tar entries."""

    root: Path
    size: int
    entries: int


# --- receiving ------------------------------------------------------------------------------


def receive_context(body: BinaryIO, target: Path,
                    limits: ContextLimits | None = None) -> BuildContext:
    """Extract the context archive read from ``body`` into the new directory ``target`` (its
    parent is created if needed; a temp directory beside it holds the work). InvalidArgument
    for an oversized, corrupt or unsafe archive; ``target`` then does not exist."""
    limits = limits or ContextLimits()
    if os.path.lexists(target):
        raise InvalidArgument(f"build context directory {target} already exists")
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        tar_path = _spool(body, work, limits)
        with _as_context():
            plan = scan(tar_path, _LABEL)
            if plan.entries > limits.max_files:
                raise InvalidArgument(
                    f"build context has {plan.entries} entries, more than the limit of "
                    f"{limits.max_files}")
            tree = work / "context"
            tree.mkdir(mode=0o755)
            extract(tar_path, plan.skipped, tree, _LABEL)
        _drop_devices(tree)
        os.rename(tree, target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return BuildContext(root=target, size=plan.size, entries=plan.entries)


@contextmanager
def _as_context() -> Iterator[None]:
    """The layer code's messages name a "layer <label>"; here the label alone reads right."""
    try:
        yield
    except InvalidArgument as exc:
        raise InvalidArgument(exc.message.removeprefix("layer ")) from None


def _too_large(limits: ContextLimits, inflated: bool = False) -> InvalidArgument:
    if inflated:  # the layers' rule: see cz.InflateLimit
        return InvalidArgument("build context inflates past the limit for its compressed "
                               "size (a possible decompression bomb)")
    size = limits.max_bytes
    limit = f"{size // MIB} MiB" if size % MIB == 0 else f"{size} bytes"
    return InvalidArgument(f"build context is larger than the limit of {limit}")


def _spool(body: BinaryIO, work: Path, limits: ContextLimits) -> Path:
    """The uncompressed context tar in ``work``, both copies bounded by the size limit."""
    raw = work / "body"
    received = 0
    with raw.open("wb") as out:
        while chunk := body.read(_CHUNK):
            received += len(chunk)
            if received > limits.max_bytes:
                raise _too_large(limits)
            out.write(chunk)
    kind = _compression(raw)
    if kind == "none":
        return raw
    tar_path = work / "context.tar"
    size, bound = 0, min(limits.max_bytes, limits.inflate.bound(received))
    with raw.open("rb") as f, tar_path.open("wb") as out, _as_context():
        for data in _decompress(f, kind):
            size += len(data)
            if size > bound:
                raise _too_large(limits, bound < limits.max_bytes)
            out.write(data)
    raw.unlink()
    return tar_path


def _compression(path: Path) -> str:
    with path.open("rb") as f:
        head = f.read(len(_XZ_MAGIC))
    if head.startswith(_BZIP2_MAGIC):
        return "bzip2"
    if head.startswith(_XZ_MAGIC):
        return "xz"
    return {TAR_GZIP: "gzip", TAR_ZSTD: "zstd"}.get(sniff_media_type(path), "none")


class _Hasher(Protocol):
    def update(self, data: bytes, /) -> None: ...


def _decompress(f: BinaryIO, kind: str) -> Iterator[bytes]:
    if kind in ("gzip", "zstd"):
        return decompressed(f, kind, _LABEL)
    if kind == "bzip2":
        return _streams(f, bz2.BZ2Decompressor, kind)
    return _streams(f, lambda: lzma.LZMADecompressor(memlimit=_XZ_MEMLIMIT), kind)


def _streams(f: BinaryIO, new: Callable[[], bz2.BZ2Decompressor | lzma.LZMADecompressor],
             kind: str) -> Iterator[bytes]:
    """Concatenated bzip2 or xz streams, at most ``_CHUNK`` bytes out per step."""
    d = new()
    try:
        while chunk := f.read(_CHUNK):
            pending = chunk
            while pending or not (d.eof or d.needs_input):
                if d.eof:
                    d = new()  # another stream follows
                out = d.decompress(pending, _CHUNK)
                pending = d.unused_data if d.eof else b""
                if out:
                    yield out
    except (OSError, EOFError, lzma.LZMAError) as exc:
        raise InvalidArgument(f"{_LABEL}: corrupt {kind} data: {exc}") from None
    if not d.eof:
        raise InvalidArgument(f"{_LABEL}: the {kind} stream is truncated")


def _walk(root: Path, max_depth: int | None = None) -> Iterator[tuple[str, os.stat_result]]:
    """``(relative path, lstat)`` of everything below ``root`` in Go's ``WalkDir`` order (depth
    first, names in byte order); symlinks are not followed; no recursion limit."""
    def children(rel: str) -> list[tuple[str, os.stat_result]]:
        with os.scandir(root / rel if rel else root) as entries:
            found = [(e.name, e.stat(follow_symlinks=False)) for e in entries]
        found.sort(key=lambda pair: os.fsencode(pair[0]), reverse=True)
        return [(f"{rel}/{name}" if rel else name, st) for name, st in found]

    stack = children("")
    while stack:
        rel, st = stack.pop()
        yield rel, st
        if stat.S_ISDIR(st.st_mode) and (max_depth is None or rel.count("/") + 1 < max_depth):
            stack.extend(children(rel))


def _drop_devices(tree: Path) -> None:
    """The scan drops devices but keeps char 0:0 (a layer's whiteout); a context has none."""
    for rel, st in list(_walk(tree)):
        if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
            (tree / rel).unlink()


# --- inside the context ---------------------------------------------------------------------


class _Missing(Exception):
    """Internal: the path does not exist in the context."""


class _Outside(Exception):
    """Internal: the path, or a symlink on its way, leads out of the context."""


def _resolve(root: Path, rel: str, confine: bool = True) -> Path:
    """The host path ``rel`` names in the context, every symlink followed; an absolute link
    target, a ``..`` past the root or a link loop is _Outside, a missing component _Missing.
    Without ``confine`` (an image's root, for COPY --from) links are read inside the root."""
    try:
        return host_path(root, resolve_in_root(root, rel, must_exist=True, confine=confine))
    except NotFound:
        raise _Missing from None
    except InvalidArgument:  # OutsideRoot, or more links than the kernel follows (a loop)
        raise _Outside from None


def read_dockerfile(context_dir: Path, name: str = DEFAULT_DOCKERFILE) -> tuple[str, bytes]:
    """The name used and the content of the Dockerfile ``name`` (relative to the context). As
    Docker, a missing ``Dockerfile`` falls back to ``dockerfile``; InvalidArgument ("Cannot
    locate specified Dockerfile: X") when there is none."""
    name = name or DEFAULT_DOCKERFILE
    for candidate in (name, name.lower()) if name == DEFAULT_DOCKERFILE else (name,):
        try:
            path = _resolve(context_dir, go_clean(candidate))
        except (_Missing, _Outside):
            continue
        if path.is_file():
            return candidate, path.read_bytes()
    raise InvalidArgument(f"Cannot locate specified Dockerfile: {name}")


def apply_dockerignore(context_dir: Path) -> list[str]:
    """Remove what the context's ``.dockerignore`` excludes (call after read_dockerfile);
    returns the removed paths. InvalidArgument for a malformed pattern."""
    try:
        path = _resolve(context_dir, DOCKERIGNORE)
    except (_Missing, _Outside):
        return []
    patterns = read_patterns(path.read_bytes()) if path.is_file() else []
    return prune(context_dir, PatternMatcher(patterns)) if patterns else []


def resolve_sources(context_dir: Path, sources: Sequence[str], *,
                    instruction: str = "COPY", confine: bool = True) -> list[Path]:
    """The context paths COPY/ADD ``sources`` name, in order (a wildcard source gives its
    matches in Go's walk order). Each is ``context_dir/<clean relative path>`` as written,
    not resolved: its name is the one the copy takes; every symlink on it stays inside.

    Raises InvalidArgument with Docker's messages: a missing source ("COPY failed: file not
    found in build context or excluded by .dockerignore: stat X: file does not exist"), one
    leading out ("COPY failed: forbidden path outside the build context: X"), or nothing at
    all ("COPY failed: no source files were specified")."""
    found: list[Path] = []
    for source in sources:
        path = source[1:] if len(source) > 1 and source.startswith("/") else source
        path = path.removeprefix("./")
        if has_wildcards(path):
            found += _wildcard_sources(context_dir, path, instruction, confine)
        else:
            found.append(_source(context_dir, path, instruction, confine))
    if not found:
        raise InvalidArgument(f"{instruction} failed: no source files were specified")
    return found


def _source(context_dir: Path, path: str, instruction: str, confine: bool = True) -> Path:
    """One source: the context path as written (its links stay inside), or, in an image's
    root (not ``confine``), the host path it resolves to (its links read inside the root)."""
    rel = go_clean(path)
    try:
        if rel == ".." or rel.startswith("../"):
            if confine:
                raise _Outside
            rel = go_clean("/" + rel).lstrip("/") or "."
        resolved = _resolve(context_dir, rel, confine)
        if not confine:
            return resolved
    except _Outside:
        raise InvalidArgument(
            f"{instruction} failed: forbidden path outside the build context: {path}") from None
    except _Missing:
        raise InvalidArgument(
            f"{instruction} failed: file not found in build context or excluded by "
            f".dockerignore: stat {path}: file does not exist") from None
    return context_dir if rel == "." else context_dir / rel


def _wildcard_sources(context_dir: Path, pattern: str, instruction: str,
                      confine: bool = True) -> list[Path]:
    """Docker matches the pattern (Go filepath.Match) against every path of the context; a
    malformed pattern matches nothing (Docker ignores Match's error)."""
    try:
        regex = go_match_regex(pattern)
    except InvalidArgument:
        return []
    depth = pattern.count("/") + 1  # "*", "?" and classes never match "/" but "[/]"
    return [_source(context_dir, rel, instruction, confine)
            for rel, _ in _walk(context_dir, depth) if regex.fullmatch(rel)]


def dest_path(workdir: str, dest: str, sources: Sequence[Path], *,
              instruction: str = "COPY") -> str:
    """The absolute, clean container path of a COPY/ADD destination; a trailing ``/`` (the
    destination is a directory) is kept. A relative ``dest`` is below ``workdir``. More than
    one source (after wildcards) needs a ``/`` at the end, as Docker requires."""
    directory = dest.endswith("/")
    if len(sources) > 1 and not directory:
        raise InvalidArgument(
            f"When using {instruction} with more than one source file, the destination must "
            "be a directory and end with a /")
    path = go_clean(dest if dest.startswith("/") else f"/{workdir}/{dest}")
    return path + "/" if directory and path != "/" else path


def copy_target(dest: str, source: Path, *, existing_dir: bool) -> str:
    """Where one source lands (``dest`` from :func:`dest_path`): a directory source's contents
    go into ``dest`` itself; a file goes to ``dest/<its name>`` when ``dest`` ends in ``/`` or
    is a directory already in the image (``existing_dir``), else to ``dest``."""
    path = dest.rstrip("/") or "/"
    if source.is_dir() or not (dest.endswith("/") or existing_dir):
        return path
    return f"{path.rstrip('/')}/{source.name}"


# --- cache key ------------------------------------------------------------------------------


def digest_sources(paths: Sequence[Path], *, owner: tuple[int, int] = (0, 0)) -> str:
    """A content digest of what COPY/ADD of ``paths`` (from :func:`resolve_sources`) puts in
    the image, for the cache key: per entry its name (a file source's own name; relative
    names inside a directory source), type, permission bits, ``owner`` (what the files get:
    0:0, or the --chown result), a file's content, a symlink's target. Stable order; mtimes
    are left out. A source symlink is followed, as the copy follows it."""
    h = hashlib.sha256()
    for index, path in enumerate(paths):
        st = os.stat(path)
        _put(h, b"source", str(index).encode())
        top = "." if stat.S_ISDIR(st.st_mode) else path.name
        _put_entry(h, top, st, path, owner)
        if stat.S_ISDIR(st.st_mode):
            for rel, inner in _walk(path):
                _put_entry(h, rel, inner, path / rel, owner)
    return "sha256:" + h.hexdigest()


def _put(h: _Hasher, *fields: bytes) -> None:
    for field in fields:
        h.update(len(field).to_bytes(8, "big"))
        h.update(field)


def _put_entry(h: _Hasher, name: str, st: os.stat_result, path: Path,
               owner: tuple[int, int]) -> None:
    mode = st.st_mode
    payload = b""
    if stat.S_ISREG(mode):
        kind = b"file"
        with path.open("rb") as f:
            payload = hashlib.file_digest(f, "sha256").digest()
    elif stat.S_ISLNK(mode):
        kind, payload = b"symlink", os.fsencode(os.readlink(path))
    elif stat.S_ISDIR(mode):
        kind = b"dir"
    else:
        kind = b"other:%o" % stat.S_IFMT(mode)  # FIFOs: never opened
    _put(h, kind, os.fsencode(name), b"%o" % stat.S_IMODE(mode), b"%d:%d" % owner, payload)
