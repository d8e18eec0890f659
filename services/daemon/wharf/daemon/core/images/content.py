"""The content store: blobs (manifests, configs, compressed layers) addressed by sha256 digest.

Layout under ``root`` (``<data_root>/content``)::

    sha256/<64 hex>     committed blobs, read-only (0444), never modified in place
    ingest/<...>        partial writes; unique names, so parallel writers never clash

Invariants:
- A file under ``sha256/`` always holds exactly the bytes its name hashes to: writers hash while
  streaming, then fsync, rename into place and fsync the directory.
- A failed or abandoned write leaves nothing behind (the temp file is removed).
- Two writers of the same digest may race; both succeed and the first rename wins.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

from wharf.errors import InvalidArgument, NotFound
from wharf.ids import check_digest

_HEX64 = re.compile(r"[0-9a-f]{64}")  # fullmatch: "$" with re.match accepts a final newline
_BLOB_MODE = 0o444


def fsync_dir(path: Path) -> None:
    """Make a rename or create in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class ContentStore:
    """Blobs on disk, keyed by ``sha256:<hex>`` digest."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._blobs = root / "sha256"
        self._ingest = root / "ingest"

    def path(self, digest: str) -> Path:
        """Where the blob lives (whether or not it exists); InvalidArgument for a bad digest."""
        return self._blobs / check_digest(digest).removeprefix("sha256:")

    def has(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def size(self, digest: str) -> int:
        """The blob's size in bytes; NotFound when absent."""
        try:
            return self.path(digest).stat().st_size
        except FileNotFoundError:
            raise NotFound(f"blob {digest} is not in the content store") from None

    def read_bytes(self, digest: str) -> bytes:
        """The whole blob; NotFound when absent."""
        try:
            return self.path(digest).read_bytes()
        except FileNotFoundError:
            raise NotFound(f"blob {digest} is not in the content store") from None

    def put_bytes(self, data: bytes, expected: str | None = None) -> str:
        """Store ``data`` atomically and return its digest; InvalidArgument when it is not
        ``expected``."""
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        if expected is not None and check_digest(expected) != digest:
            raise InvalidArgument(f"blob content has digest {digest}, expected {expected}")
        if self.has(digest):
            return digest
        with self.writer(digest, len(data)) as w:
            w.write(data)
            return w.commit()

    def put_file(self, path: Path, expected: str) -> None:
        """Copy the file at ``path`` in as blob ``expected`` (verified while it is copied),
        unless the store has it already."""
        if self.has(expected):
            return
        with path.open("rb") as f, self.writer(expected) as writer:
            while chunk := f.read(1 << 20):
                writer.write(chunk)
            writer.commit()

    def writer(self, expected_digest: str, expected_size: int | None = None) -> BlobWriter:
        """A streaming writer that commits only bytes hashing to ``expected_digest``."""
        target = self.path(expected_digest)
        self._ingest.mkdir(parents=True, exist_ok=True)
        self._blobs.mkdir(parents=True, exist_ok=True)
        return BlobWriter(self._ingest, target, expected_digest, expected_size)

    def delete(self, digest: str) -> None:
        """Remove the blob; a missing blob is fine."""
        with contextlib.suppress(FileNotFoundError):
            self.path(digest).unlink()

    def digests(self) -> Iterator[str]:
        """Every committed blob's digest (in no particular order)."""
        try:
            names = os.listdir(self._blobs)
        except FileNotFoundError:
            return
        for name in names:
            if _HEX64.fullmatch(name):
                yield "sha256:" + name


class BlobWriter:
    """Streams one blob into ``ingest/``, hashing as it goes; ``commit`` verifies and publishes.

    Use as a context manager: leaving the block without a successful ``commit`` (or with an
    exception) removes the partial file.
    """

    def __init__(
        self, ingest: Path, target: Path, expected_digest: str, expected_size: int | None
    ) -> None:
        self._target = target
        self._expected = expected_digest
        self._expected_size = expected_size
        self._hash = hashlib.sha256()
        self._written = 0
        fd, name = tempfile.mkstemp(dir=ingest, prefix=target.name[:16] + ".", suffix=".partial")
        self._tmp = Path(name)
        self._file = os.fdopen(fd, "wb")
        self._done = False

    @property
    def written(self) -> int:
        """Bytes accepted so far."""
        return self._written

    def write(self, chunk: bytes) -> None:
        """Append ``chunk``; InvalidArgument at once if it overruns the expected size."""
        if self._done:
            raise InvalidArgument(f"blob {self._expected}: write after commit or abort")
        if self._expected_size is not None and self._written + len(chunk) > self._expected_size:
            self.abort()
            raise InvalidArgument(
                f"blob {self._expected} is larger than the expected {self._expected_size} bytes"
            )
        self._file.write(chunk)
        self._hash.update(chunk)
        self._written += len(chunk)

    def commit(self) -> str:
        """Verify size and digest, then publish the blob atomically; returns the digest."""
        if self._done:
            raise InvalidArgument(f"blob {self._expected}: commit after commit or abort")
        actual = "sha256:" + self._hash.hexdigest()
        if self._expected_size is not None and self._written != self._expected_size:
            self.abort()
            raise InvalidArgument(
                f"blob {self._expected} is truncated: {self._written} of "
                f"{self._expected_size} bytes (digest so far {actual})"
            )
        if actual != self._expected:
            self.abort()
            raise InvalidArgument(f"blob digest mismatch: expected {self._expected}, got {actual}")
        try:
            self._publish()
        finally:
            self._done = True
            with contextlib.suppress(FileNotFoundError):
                self._tmp.unlink()
        return actual

    def _publish(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        if self._target.exists():
            return  # another writer won the race with the same bytes: keep theirs
        os.chmod(self._tmp, _BLOB_MODE)
        os.rename(self._tmp, self._target)
        fsync_dir(self._target.parent)

    def abort(self) -> None:
        """Drop the partial file (idempotent)."""
        if not self._file.closed:
            self._file.close()
        with contextlib.suppress(FileNotFoundError):
            self._tmp.unlink()
        self._done = True

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self._done or exc_type is not None:
            self.abort()
