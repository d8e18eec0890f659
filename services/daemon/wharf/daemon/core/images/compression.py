"""Layer compression: tell gzip, zstd and plain tar apart and decompress a layer blob.

The one decompressor for layer blobs: layer unpack (``untar.decompress_to``, for pull and
load) and save/load (``archive``, through :func:`open_decompressed`). Streaming and bounded:
every step yields at most ``_CHUNK`` bytes (a compression bomb costs time, not memory);
multi-member gzip and multi-frame zstd are read whole; corrupt or truncated data is
InvalidArgument, never a short tar; and bounded in size: a blob inflates to at most
:class:`InflateLimit` of its compressed size. The only module that imports ``zstandard``.
"""

from __future__ import annotations

import io
import os
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, BinaryIO

from wharf.errors import InvalidArgument

TAR = "application/vnd.oci.image.layer.v1.tar"
TAR_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
TAR_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
DOCKER_TAR_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"

_CHUNK = 1 << 20
_ZSTD_SLICE = 1 << 13  # bounds one zstd call's output (max ratio ~32768:1) to 256 MiB
_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"

_PLAIN = frozenset({
    TAR,
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.docker.image.rootfs.diff.tar",
    "application/x-tar",
})
_GZIP = frozenset({
    TAR_GZIP,
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    DOCKER_TAR_GZIP,
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
})
_ZSTD = frozenset({
    TAR_ZSTD,
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
})


def _sniff(path: Path) -> str:
    """``gzip``, ``zstd`` or ``none``, by the file's magic bytes."""
    with path.open("rb") as f:
        head = f.read(4)
    if head.startswith(_GZIP_MAGIC):
        return "gzip"
    if head.startswith(_ZSTD_MAGIC):
        return "zstd"
    return "none"


def sniff_media_type(path: Path) -> str:
    """The OCI layer media type matching the file's magic bytes (plain tar otherwise)."""
    return {"gzip": TAR_GZIP, "zstd": TAR_ZSTD}.get(_sniff(path), TAR)


def compression(blob: Path, media_type: str, layer: str) -> str:
    """``gzip``, ``zstd`` or ``none``. The magic bytes win over the label, both ways, as in
    Docker (containerd detects the compression): registries mislabel layers, and a plain tar
    labelled gzip is still the same tar (its diff_id is checked all the same). An unknown
    media type is InvalidArgument."""
    if media_type not in _PLAIN | _GZIP | _ZSTD:
        raise InvalidArgument(f"layer {layer}: unsupported layer media type {media_type!r}")
    return _sniff(blob)


@dataclass(frozen=True)
class InflateLimit:
    """How far a compressed layer may inflate: ``max(ratio * compressed, min_bytes)``.

    A layer that inflates further is refused as a decompression bomb (a 510 KiB gzip of zeros
    is 512 MiB of tar). The daemon's settings ``layer_inflate_ratio`` and
    ``layer_inflate_min_bytes`` choose it; the default is 8 times or 10 GiB, whichever is larger.
    """

    ratio: int = 8
    min_bytes: int = 10 << 30

    def bound(self, compressed: int) -> int:
        """The most uncompressed bytes allowed for ``compressed`` bytes of blob (pure)."""
        return max(self.ratio * compressed, self.min_bytes)


class InflateLimitExceeded(InvalidArgument):
    """The uncompressed data grew past its :class:`InflateLimit` (nothing of it is kept)."""


def decompressed(f: BinaryIO, kind: str, layer: str, limit: int | None = None
                 ) -> Iterator[bytes]:
    """The uncompressed bytes of the ``kind`` blob read from ``f``, in bounded pieces;
    InflateLimitExceeded once they pass ``limit`` bytes (None: no limit)."""
    chunks = _raw_chunks(f)
    if kind == "gzip":
        out = _gunzip(chunks, layer)
    elif kind == "zstd":
        out = _unzstd(chunks, layer)
    else:
        return chunks
    return out if limit is None else _bounded(out, limit, layer)


def _bounded(chunks: Iterator[bytes], limit: int, layer: str) -> Iterator[bytes]:
    total = 0
    for chunk in chunks:
        total += len(chunk)
        if total > limit:
            raise InflateLimitExceeded(
                f"layer {layer}: refusing to decompress past {_human(limit)}, the limit for "
                "its compressed size (a possible decompression bomb; the daemon settings "
                "layer_inflate_ratio and layer_inflate_min_bytes set it)")
        yield chunk


def _human(size: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}".replace(".0 ", " ")
    return f"{size} bytes"


@contextmanager
def open_decompressed(path: Path, media_type: str, limit: InflateLimit | None = None
                      ) -> Iterator[IO[bytes]]:
    """A readable stream of the uncompressed tar inside the blob at ``path`` (InvalidArgument
    for the media types and data :func:`compression` and :func:`decompressed` refuse),
    bounded by ``limit`` (the default rule when None)."""
    kind = compression(path, media_type, path.name)
    with path.open("rb") as raw:
        if kind == "none":
            yield raw
            return
        bound = (limit or InflateLimit()).bound(os.fstat(raw.fileno()).st_size)
        with io.BufferedReader(_ChunkStream(decompressed(raw, kind, path.name, bound)),
                               _CHUNK) as stream:
            yield stream


class _ChunkStream(io.RawIOBase):
    """A readable raw stream over an iterator of byte chunks."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._left = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._left:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._left = memoryview(chunk)
        n = min(len(buffer), len(self._left))
        buffer[:n] = self._left[:n]
        self._left = self._left[n:]
        return n


def _raw_chunks(f: BinaryIO) -> Iterator[bytes]:
    while chunk := f.read(_CHUNK):
        yield chunk


def _gunzip(chunks: Iterator[bytes], layer: str) -> Iterator[bytes]:
    """Multi-member gzip with bounded output per step; truncation and bad CRCs are refused."""
    d = zlib.decompressobj(31)
    try:
        for chunk in chunks:
            pending = chunk
            while pending:
                if d.eof:  # another gzip member follows (zlib rejects anything else)
                    d = zlib.decompressobj(31)
                yield d.decompress(pending, _CHUNK)
                pending = d.unused_data if d.eof else d.unconsumed_tail
        while not d.eof and (tail := d.decompress(b"", _CHUNK)):
            yield tail
    except zlib.error as exc:
        raise InvalidArgument(f"layer {layer}: corrupt gzip data: {exc}") from None
    if not d.eof:
        raise InvalidArgument(f"layer {layer}: the gzip stream is truncated")


def _unzstd(chunks: Iterator[bytes], layer: str) -> Iterator[bytes]:
    """Multi-frame zstd, fed in small slices to bound memory; truncation is refused."""
    import zstandard  # noqa: PLC0415 - only zstd layers pay for the import

    new = zstandard.ZstdDecompressor().decompressobj
    d = new()
    try:
        for chunk in chunks:
            for i in range(0, len(chunk), _ZSTD_SLICE):
                piece = chunk[i:i + _ZSTD_SLICE]
                while piece:
                    if d.eof:
                        d = new()
                    if out := d.decompress(piece):
                        yield out
                    piece = d.unused_data if d.eof else b""
    except zstandard.ZstdError as exc:
        raise InvalidArgument(f"layer {layer}: corrupt zstd data: {exc}") from None
    if not d.eof:
        raise InvalidArgument(f"layer {layer}: the zstd stream is truncated")
