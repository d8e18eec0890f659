"""The layer store: unpacked layers, keyed by chain ID, in overlayfs upperdir form.

Layout under ``root`` (``<data_root>/layers``)::

    <chain hex>/diff/        the layer's files (whiteouts as char 0:0, opaque dirs by xattr)
    <chain hex>/layer.json   {"diff_id": ..., "size": ...} recorded at unpack
    tmp/<...>/               unpacks and deletes in progress

``unpack`` in three passes, all inside a private ``tmp/`` directory:

1. decompress the blob (gzip / zstd; the magic bytes win over the media type) into an
   uncompressed temp tar, hashing it for the diff_id in the same pass (a plain tar blob is only
   hashed and then used in place); a wrong diff_id stops here, and so does a blob that
   inflates past the store's ``InflateLimit`` (a decompression bomb);
2. ``tarsafety.scan`` reads every header and refuses or neutralises whatever could escape the
   layer (its docstring lists the rules) before a single file is created;
3. GNU tar extracts the validated tar, confined to the layer directory (``untar``), keeping
   owners, modes, setuid bits, mtimes and xattrs; then ``whiteouts.apply`` converts whiteouts.

Then the whole directory is synced (syncfs) and renamed to ``<chain hex>``: a layer directory is
either complete or absent. On any failure the temp directory is removed. When the layer already
exists (an earlier or concurrent pull won), the new copy is dropped and the recorded result
returned.
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import json
import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from wharf.daemon.core.images import whiteouts
from wharf.daemon.core.images.compression import InflateLimit
from wharf.daemon.core.images.content import fsync_dir
from wharf.daemon.core.images.tarsafety import scan
from wharf.daemon.core.images.untar import compression, decompress_to, extract
from wharf.errors import InvalidArgument, NotFound
from wharf.ids import check_digest

_META = "layer.json"


@dataclass(frozen=True)
class UnpackResult:
    """``diff_id``: sha256 of the uncompressed tar; ``size``: bytes of regular-file content."""

    diff_id: str
    size: int


def chain_ids(diff_ids: Sequence[str]) -> list[str]:
    """OCI chain IDs: ``chain[0] = diff[0]``, ``chain[n] = sha256(chain[n-1] + " " + diff[n])``."""
    chains: list[str] = []
    for diff_id in diff_ids:
        check_digest(diff_id)
        if not chains:
            chains.append(diff_id)
        else:
            text = f"{chains[-1]} {diff_id}".encode()
            chains.append("sha256:" + hashlib.sha256(text).hexdigest())
    return chains


class LayerStore:
    """Unpacked layers on disk (see the module docstring for layout and guarantees)."""

    def __init__(self, root: Path, inflate: InflateLimit | None = None) -> None:
        self.root = root
        self.inflate = inflate or InflateLimit()
        self._tmp = root / "tmp"

    def _dir(self, chain_id: str) -> Path:
        return self.root / check_digest(chain_id).removeprefix("sha256:")

    def has(self, chain_id: str) -> bool:
        return (self._dir(chain_id) / _META).is_file()

    def diff_path(self, chain_id: str) -> Path:
        """The directory to use as an overlay lower (or upper) dir; it may not exist."""
        return self._dir(chain_id) / "diff"

    def unpack(
        self, chain_id: str, blob: Path, media_type: str, expected_diff_id: str | None,
        progress: Callable[[int, int], None] | None = None,
    ) -> UnpackResult:
        """Unpack the layer blob at ``blob`` as ``chain_id``; idempotent.

        ``blob`` must not change during the call (content-store blobs never do). Raises
        InvalidArgument for an unknown media type, corrupt or truncated data, a diff_id
        other than ``expected_diff_id`` and any entry the safety rules refuse; nothing is left
        behind then.
        """
        final = self._dir(chain_id)
        if expected_diff_id is not None:
            check_digest(expected_diff_id)
        if self.has(chain_id):
            return self._recorded(chain_id, expected_diff_id)
        kind = compression(blob, media_type, chain_id)
        self._tmp.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=final.name[:12] + ".", dir=self._tmp))
        try:
            result = self._unpack_into(
                work, chain_id, blob, kind=kind, expected=expected_diff_id, progress=progress
            )
            _syncfs(work)
            os.rename(work, final)
        except OSError as exc:
            shutil.rmtree(work, ignore_errors=True)
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST) or not self.has(chain_id):
                raise
            return self._recorded(chain_id, expected_diff_id)  # another unpack won the race
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
        fsync_dir(self.root)
        return result

    def diff_id_of(self, blob: Path, media_type: str, layer: str,
                   progress: Callable[[int, int], None] | None = None) -> str:
        """The diff_id of a layer blob (sha256 of its uncompressed tar), reading it once;
        InvalidArgument for corrupt data or an unknown media type."""
        return decompress_to(blob, compression(blob, media_type, layer), None, layer, progress,
                             self.inflate)

    def _unpack_into(
        self, work: Path, layer: str, blob: Path, *, kind: str, expected: str | None,
        progress: Callable[[int, int], None] | None,
    ) -> UnpackResult:
        if kind == "none":  # already a tar: hash, scan and extract the immutable blob in place
            tar_path = blob
            diff_id = decompress_to(blob, kind, None, layer, progress)
        else:
            tar_path = work / "layer.tar"
            with tar_path.open("wb") as out:
                diff_id = decompress_to(blob, kind, out, layer, progress, self.inflate)
        if expected is not None and diff_id != expected:
            raise InvalidArgument(
                f"layer {layer}: uncompressed content has diff_id {diff_id}, expected {expected}"
            )
        plan = scan(tar_path, layer)
        diff = work / "diff"
        diff.mkdir(mode=0o755)
        extract(tar_path, plan.skipped, diff, layer)
        if tar_path != blob:
            tar_path.unlink()
        whiteouts.apply(diff, plan, layer)
        result = UnpackResult(diff_id=diff_id, size=plan.size)
        (work / _META).write_text(json.dumps({"diff_id": diff_id, "size": plan.size}))
        return result

    def recorded(self, chain_id: str) -> UnpackResult:
        """What the unpack of ``chain_id`` recorded (diff_id, size); NotFound if absent."""
        if not self.has(chain_id):
            raise NotFound(f"layer {chain_id} is not in the layer store")
        return self._recorded(chain_id, None)

    def chain_ids(self) -> list[str]:
        """The chain IDs of every layer directory (complete or not)."""
        try:
            names = os.listdir(self.root)
        except FileNotFoundError:
            return []
        return ["sha256:" + n for n in names if len(n) == 64 and _is_hex(n)]

    def _recorded(self, chain_id: str, expected: str | None) -> UnpackResult:
        meta = json.loads((self._dir(chain_id) / _META).read_text())
        result = UnpackResult(diff_id=str(meta["diff_id"]), size=int(meta["size"]))
        if expected is not None and result.diff_id != expected:
            raise InvalidArgument(
                f"layer {chain_id} exists with diff_id {result.diff_id}, expected {expected}"
            )
        return result

    def delete(self, chain_id: str) -> None:
        """Remove the layer (a missing layer is fine): renamed away first, so it vanishes at
        once, then removed."""
        doomed = self.detach(chain_id)
        if doomed is not None:
            self.remove_detached(doomed)

    def detach(self, chain_id: str) -> Path | None:
        """Rename the layer away (it is gone from the store at once); the directory to hand to
        :meth:`remove_detached`, or None when there was no such layer."""
        self._tmp.mkdir(parents=True, exist_ok=True)
        doomed = Path(tempfile.mkdtemp(prefix="delete.", dir=self._tmp))
        try:
            os.rename(self._dir(chain_id), doomed / "layer")
        except FileNotFoundError:
            doomed.rmdir()
            return None
        return doomed

    @staticmethod
    def remove_detached(doomed: Path) -> None:
        """Remove a directory :meth:`detach` returned."""
        shutil.rmtree(doomed, ignore_errors=True)

    def size(self, chain_id: str) -> int:
        """Bytes of regular-file content in the layer (hardlinks counted once); NotFound if
        absent."""
        diff = self.diff_path(chain_id)
        if not self.has(chain_id):
            raise NotFound(f"layer {chain_id} is not in the layer store")
        seen: set[int] = set()
        total = 0
        for dirpath, _dirs, files in os.walk(diff):
            for name in files:
                st = os.lstat(os.path.join(dirpath, name))
                if stat.S_ISREG(st.st_mode) and st.st_ino not in seen:
                    seen.add(st.st_ino)
                    total += st.st_size
        return total


def _is_hex(name: str) -> bool:
    return all(c in "0123456789abcdef" for c in name)


def _syncfs(path: Path) -> None:
    """Flush the file system holding ``path`` (one call, instead of an fsync per file)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.syncfs(fd) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"syncfs {path}: {os.strerror(err)}")
    finally:
        os.close(fd)

