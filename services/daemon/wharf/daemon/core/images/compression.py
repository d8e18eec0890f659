"""Layer compression: tell gzip, zstd and plain tar apart and open a decompressed stream."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, cast

from wharf.errors import InvalidArgument

TAR = "application/vnd.oci.image.layer.v1.tar"
TAR_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
TAR_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
DOCKER_TAR_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"

_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def sniff_media_type(path: Path) -> str:
    """The OCI layer media type matching the file's magic bytes (plain tar otherwise)."""
    with path.open("rb") as f:
        head = f.read(4)
    if head.startswith(_GZIP_MAGIC):
        return TAR_GZIP
    if head.startswith(_ZSTD_MAGIC):
        return TAR_ZSTD
    return TAR


def compression_of(path: Path, media_type: str) -> str:
    """``gzip``, ``zstd`` or ``none``: the magic bytes win over a mislabelled media type."""
    sniffed = sniff_media_type(path)
    if sniffed != TAR:
        return "gzip" if sniffed == TAR_GZIP else "zstd"
    if media_type.endswith(("+gzip", ".gzip", "+zstd")):
        raise InvalidArgument(f"layer {path.name} is labelled {media_type} but is not compressed")
    return "none"


@contextmanager
def open_decompressed(path: Path, media_type: str) -> Iterator[IO[bytes]]:
    """A readable stream of the uncompressed tar inside the blob at ``path``."""
    kind = compression_of(path, media_type)
    with path.open("rb") as raw:
        if kind == "gzip":
            with gzip.GzipFile(fileobj=raw) as stream:
                yield cast(IO[bytes], stream)
        elif kind == "zstd":
            import zstandard  # noqa: PLC0415 - only zstd layers pay for the import

            with zstandard.ZstdDecompressor().stream_reader(raw) as zstream:
                yield cast(IO[bytes], zstream)
        else:
            yield raw
