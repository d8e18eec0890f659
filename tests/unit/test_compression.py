"""The one layer decompressor (``images.compression``): what layer unpack and save/load both
read, so both accept and refuse the same blobs."""

from __future__ import annotations

import gzip
import hashlib
import os
from pathlib import Path

import pytest
import zstandard

from wharf.daemon.core.images import compression, untar
from wharf.daemon.core.images.compression import (
    DOCKER_TAR_GZIP,
    TAR,
    TAR_GZIP,
    TAR_ZSTD,
    open_decompressed,
    sniff_media_type,
)
from wharf.errors import InvalidArgument

RAW = os.urandom(300_000) + b"\x00" * 3_000_000  # more than one read, compresses well


def _zstd(data: bytes) -> bytes:
    return zstandard.ZstdCompressor().compress(data)


def _blob(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _read(path: Path, media_type: str) -> bytes:
    with open_decompressed(path, media_type) as stream:
        out = b""
        while chunk := stream.read(1 << 16):
            out += chunk
        return out


def _both(path: Path, media_type: str) -> bytes:
    """The bytes save/load reads, after checking layer unpack reads the same."""
    kind = compression.compression(path, media_type, "l1")
    data = _read(path, media_type)
    assert untar.decompress_to(path, kind, None, "l1") == "sha256:" + hashlib.sha256(
        data).hexdigest()
    return data


@pytest.mark.parametrize(("data", "media_type", "sniffed"), [
    (RAW, TAR, TAR),
    (gzip.compress(RAW), TAR_GZIP, TAR_GZIP),
    (gzip.compress(RAW), DOCKER_TAR_GZIP, TAR_GZIP),
    (_zstd(RAW), TAR_ZSTD, TAR_ZSTD),
    (_zstd(RAW), TAR_GZIP, TAR_ZSTD),  # mislabelled: the magic bytes win
    (RAW, TAR_GZIP, TAR),  # a plain tar labelled gzip is read as what it is (as Docker does)
    (RAW, TAR_ZSTD, TAR),
    (gzip.compress(RAW), TAR, TAR_GZIP),
    (gzip.compress(RAW[:5]) + gzip.compress(RAW[5:]), TAR_GZIP, TAR_GZIP),
    (_zstd(RAW[:100_000]) + _zstd(RAW[100_000:]), TAR_ZSTD, TAR_ZSTD),  # every frame
])
def test_save_load_and_unpack_read_the_same_bytes(tmp_path: Path, data: bytes, media_type: str,
                                                  sniffed: str) -> None:
    blob = _blob(tmp_path, "blob", data)
    assert sniff_media_type(blob) == sniffed
    assert _both(blob, media_type) == RAW


@pytest.mark.parametrize(("data", "media_type", "message"), [
    (gzip.compress(RAW)[:-100], TAR_GZIP, "gzip stream is truncated"),
    (_zstd(RAW)[:-100], TAR_ZSTD, "zstd stream is truncated"),
    (gzip.compress(RAW)[:-8] + b"\x00" * 8, TAR_GZIP, "corrupt gzip data"),
    (gzip.compress(RAW) + b"junk", TAR_GZIP, "corrupt gzip data"),
    (b"\x28\xb5\x2f\xfd" + b"\xff" * 200, TAR_ZSTD, "corrupt zstd data"),
])
def test_corrupt_or_truncated_data_is_refused_by_both(tmp_path: Path, data: bytes,
                                                      media_type: str, message: str) -> None:
    blob = _blob(tmp_path, "blob", data)
    with pytest.raises(InvalidArgument, match=message):
        _read(blob, media_type)
    kind = compression.compression(blob, media_type, "l1")
    with pytest.raises(InvalidArgument, match=message):
        untar.decompress_to(blob, kind, None, "l1")


@pytest.mark.parametrize(("media_type", "message"), [
    ("application/vnd.example.layer", "unsupported layer media type"),
    ("", "unsupported layer media type"),
])
def test_unknown_labels_are_refused_by_both(tmp_path: Path, media_type: str,
                                                     message: str) -> None:
    blob = _blob(tmp_path, "blob", RAW)
    with pytest.raises(InvalidArgument, match=message):
        compression.compression(blob, media_type, "l1")
    with pytest.raises(InvalidArgument, match=message):
        _read(blob, media_type)


def test_output_is_bounded_per_step(tmp_path: Path) -> None:
    bomb = _blob(tmp_path, "bomb", gzip.compress(b"\x00" * (64 << 20)))
    with bomb.open("rb") as f:
        sizes = [len(piece) for piece in compression.decompressed(f, "gzip", "bomb")]
    assert sum(sizes) == 64 << 20 and max(sizes) <= 1 << 20
