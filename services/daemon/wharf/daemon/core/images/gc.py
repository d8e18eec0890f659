"""Garbage collection of the image store, and the leases that protect work in progress.

A blob or an unpacked layer is live while an image record names it (its config, manifest and
the manifest's blobs; its chain IDs) or a lease holds it. A pull, load or import stores blobs
and layers before the image record that names them exists: it holds them with a lease from the
moment it looks them up until the record is written, so a collection running in between (an
``rmi``, a prune) cannot take them. Taking a lease waits for a collection under way: whatever
the holder then finds present stays present.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from wharf.daemon.core.images.content import ContentStore
from wharf.daemon.core.images.layers import LayerStore
from wharf.daemon.core.state import StateStore
from wharf.errors import NotFound

_LAYER = "layer:"  # how a held chain ID is told from a held blob digest


class Leases:
    """The IDs held by operations in progress, and the lock garbage collection holds."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._pins: Counter[str] = Counter()

    @contextmanager
    def lease(self) -> Iterator[Lease]:
        """A lease for one operation, released when the block ends."""
        lease = Lease(self)
        try:
            yield lease
        finally:
            lease.release()

    def held(self) -> set[str]:
        """Every blob digest some lease holds now."""
        with self.lock:
            return {k for k in self._pins if not k.startswith(_LAYER)}

    def held_layers(self) -> set[str]:
        """Every chain ID some lease holds now (a chain ID can equal a blob digest: the bottom
        layer's chain ID is its diff_id, the digest of its uncompressed blob)."""
        with self.lock:
            return {k.removeprefix(_LAYER) for k in self._pins if k.startswith(_LAYER)}

    def change(self, ids: Counter[str], sign: int) -> None:
        with self.lock:
            if sign > 0:
                self._pins.update(ids)
            else:
                self._pins.subtract(ids)
                self._pins = +self._pins  # drop the zero counts


class Lease:
    """Digests and chain IDs one operation needs; garbage collection spares them."""

    def __init__(self, leases: Leases) -> None:
        self._leases = leases
        self._held: Counter[str] = Counter()

    def hold(self, *digests: str) -> None:
        """Protect blobs until the lease ends; waits for a collection under way, so whatever is
        present once this returns stays present."""
        added = Counter(digests)
        self._leases.change(added, +1)
        self._held.update(added)

    def hold_layers(self, *chain_ids: str) -> None:
        """Protect unpacked layers until the lease ends (as :meth:`hold` does blobs)."""
        self.hold(*(_LAYER + c for c in chain_ids))

    def release(self) -> None:
        self._leases.change(self._held, -1)
        self._held.clear()


def collect(state: StateStore, content: ContentStore, layers: LayerStore,
            leases: Leases) -> tuple[int, int, list[Path]]:
    """Delete what no image names and no lease holds: layer rows and blobs go, layer
    directories are detached. Returns (layers, bytes reclaimed, detached directories to
    remove). The caller holds the leases' lock."""
    spared, spared_layers = leases.held(), leases.held_layers()
    with state.tx() as db:
        live_chains: set[str] = set()
        live_blobs: set[str] = set()
        for row in db.execute("SELECT id, chain_ids, manifest, manifest_digest FROM images"):
            live_chains.update(json.loads(row["chain_ids"]))
            live_blobs.add(str(row["id"]))
            if row["manifest_digest"]:
                live_blobs.add(str(row["manifest_digest"]))
            live_blobs.update(manifest_blobs(row["manifest"]))
        rows = {str(r["chain_id"]): int(r["size"])
                for r in db.execute("SELECT chain_id, size FROM layers")}
        dead = [c for c in rows if c not in live_chains | spared_layers]
        db.executemany("DELETE FROM layers WHERE chain_id = ?", [(c,) for c in dead])
        db.execute(
            "DELETE FROM blob_sources WHERE digest NOT IN (SELECT value FROM json_each(?))",
            (json.dumps(sorted(live_blobs | spared)),),
        )
    # a directory without a row: an unpack a crash cut off before it was recorded
    dead += [c for c in layers.chain_ids() if c not in live_chains | spared_layers | set(rows)]
    doomed = [d for d in map(layers.detach, dead) if d is not None]
    reclaimed = sum(rows.get(c, 0) for c in dead)
    for digest in list(content.digests()):
        if digest not in live_blobs | spared:
            with contextlib.suppress(NotFound):
                reclaimed += content.size(digest)
            content.delete(digest)
    return len(dead), reclaimed, doomed


def manifest_blobs(manifest: str | None) -> set[str]:
    """The digests a manifest's config and layer descriptors name."""
    if not manifest:
        return set()
    parsed = json.loads(manifest)
    blobs = {d["digest"] for d in parsed.get("layers", []) if isinstance(d, dict)}
    config = parsed.get("config")
    if isinstance(config, dict) and "digest" in config:
        blobs.add(config["digest"])
    return {b for b in blobs if isinstance(b, str)}
