"""Image metadata: images, tags, repo digests and layer records in the state store.

The content store holds the bytes (manifests, configs, compressed layers) and the layer store the
unpacked layers; this module says which image is which and which tags point where.

Invariants (docs/image-store.md; ``wharf system check`` verifies them):
- An image row exists only once every layer of its ``chain_ids`` has a layer row and directory,
  and every blob its manifest names (config, layers) and the manifest itself are in the content
  store: ``add_image`` refuses a record that would name a missing blob. Such an image can be run,
  saved and pushed.
- A tag or repo digest always points at an existing image (foreign key, one transaction).
- Deleting an image removes, in the same transaction, its tags and repo digests; layers and blobs
  no other image references are then garbage-collected (files after the commit, so a crash leaves
  only unreferenced files, never a reference to a missing file).
- Garbage collection counts every image record's references and spares whatever an operation in
  progress (a pull, load or import not yet recorded) holds through a :class:`Lease`; taking a
  lease waits for a collection under way, so what a lease holder then finds present stays.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from wharf import reference
from wharf.daemon.core.images.content import ContentStore
from wharf.daemon.core.images.gc import Lease, Leases, collect, manifest_blobs
from wharf.daemon.core.images.layers import LayerStore
from wharf.daemon.core.state import StateStore
from wharf.errors import Conflict, Internal, InvalidArgument, NotFound

# fullmatch: "$" with re.match also accepts a final newline
_HEX_PREFIX = re.compile(r"(sha256:)?[0-9a-f]{1,64}")


def now_rfc3339() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class ImageRecord:
    """One stored image; ``config`` is the parsed image config JSON."""

    id: str
    config_raw: bytes
    manifest: bytes | None
    manifest_digest: str | None
    chain_ids: list[str]
    size: int
    created_at: str
    last_tag_time: str | None
    tags: list[str] = field(default_factory=list)
    repo_digests: list[str] = field(default_factory=list)
    parent: str = ""  # the image a build step or commit started from ("" when none)

    @property
    def config(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.config_raw)
        return parsed

    @property
    def created(self) -> str:
        """The image's own creation time (config ``created``), else when it was stored."""
        value = self.config.get("created")
        return value if isinstance(value, str) and value else self.created_at


class ImageStore:
    """Images over the state store, the content store and the layer store."""

    def __init__(self, state: StateStore, content: ContentStore, layers: LayerStore) -> None:
        self.state = state
        self.content = content
        self.layers = layers
        # Set by the engine once containers exist: image id -> names of containers using it.
        self.users: Callable[[str], list[str]] = lambda _image_id: []
        self.leases = Leases()

    @property
    def gc_lock(self) -> threading.RLock:
        """Held by garbage collection: while it is held nothing is collected or leased."""
        return self.leases.lock

    def lease(self) -> AbstractContextManager[Lease]:
        """A lease for one pull, load or import: what it holds survives garbage collection."""
        return self.leases.lease()

    @staticmethod
    def record_blobs(record: ImageRecord) -> list[str]:
        """Every blob an image record names: its config, its manifest and the manifest's."""
        blobs = [record.id]
        if record.manifest is not None:
            if record.manifest_digest:
                blobs.append(record.manifest_digest)
            blobs += sorted(manifest_blobs(record.manifest.decode()) - {record.id})
        return blobs

    def missing_blobs(self, record: ImageRecord) -> list[str]:
        """The blobs ``record`` names (manifest, config, layers) that the content store lacks."""
        return [d for d in self.record_blobs(record) if not self.content.has(d)]

    def is_complete(self, image_id: str) -> bool:
        """Whether the image exists with every blob and unpacked layer it names present."""
        try:
            record = self.get(image_id)
        except NotFound:
            return False
        return not self.missing_blobs(record) and all(
            self.has_layer(chain) for chain in record.chain_ids)

    # --- layers -----------------------------------------------------------------------------

    def has_layer(self, chain_id: str) -> bool:
        with self.state.tx() as db:
            row = db.execute("SELECT 1 FROM layers WHERE chain_id = ?", (chain_id,)).fetchone()
        return row is not None and self.layers.has(chain_id)

    def register_layer(self, chain_id: str, diff_id: str, parent: str | None, size: int) -> None:
        with self.state.tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO layers (chain_id, diff_id, parent, size) VALUES (?,?,?,?)",
                (chain_id, diff_id, parent, size),
            )

    # --- images -----------------------------------------------------------------------------

    def add_image(
        self,
        *,
        config: bytes,
        manifest: bytes | None,
        manifest_digest: str | None,
        chain_ids: list[str],
        repo_digest: str | None = None,
        parent: str = "",
    ) -> str:
        """Record an image whose layers are all registered and whose manifest's blobs are all in
        the content store (the caller holds them with a lease); returns its ID (config digest).

        Internal when a blob the manifest names is missing: such a record could be run but
        neither saved nor pushed, so it is never written.
        """
        with self.gc_lock:
            image_id = self.content.put_bytes(config)
            if manifest is not None:
                self.content.put_bytes(manifest, manifest_digest)
                missing = [d for d in manifest_blobs(manifest.decode())
                           if not self.content.has(d)]
                if missing:
                    raise Internal(
                        f"image {image_id}: not recording it, blob {missing[0]} of its manifest "
                        "is not in the content store")
            replaced = self._insert_image(image_id, config, manifest, manifest_digest,
                                          chain_ids, repo_digest, parent)
        if replaced:  # the blobs only the old manifest named are garbage now
            self.collect_garbage()
        return image_id

    def _insert_image(self, image_id: str, config: bytes, manifest: bytes | None,
                      manifest_digest: str | None, chain_ids: list[str],
                      repo_digest: str | None, parent: str = "") -> bool:
        """Insert or update the image row; whether it replaced another manifest."""
        replaced = False
        with self.state.tx() as db:
            sizes = _layer_sizes(db, chain_ids)
            existing = db.execute("SELECT manifest_digest FROM images WHERE id = ?",
                                  (image_id,)).fetchone()
            if existing is None:
                db.execute(
                    "INSERT INTO images (id, config, manifest, manifest_digest, chain_ids, size,"
                    " created_at, parent) VALUES (?,?,?,?,?,?,?,?)",
                    (
                        image_id,
                        config.decode(),
                        manifest.decode() if manifest is not None else None,
                        manifest_digest,
                        json.dumps(chain_ids),
                        sum(sizes),
                        now_rfc3339(),
                        parent or None,
                    ),
                )
            elif manifest is not None:
                replaced = existing["manifest_digest"] != manifest_digest
                db.execute(
                    "UPDATE images SET manifest = ?, manifest_digest = ? WHERE id = ?",
                    (manifest.decode(), manifest_digest, image_id),
                )
            if repo_digest:
                db.execute(
                    "INSERT OR REPLACE INTO repo_digests (name, image_id) VALUES (?, ?)",
                    (repo_digest, image_id),
                )
        return replaced

    def has_image_for_manifest(self, manifest_digest: str) -> str | None:
        with self.state.tx() as db:
            row = db.execute(
                "SELECT id FROM images WHERE manifest_digest = ?", (manifest_digest,)
            ).fetchone()
        return str(row["id"]) if row else None

    def tag(self, image_id: str, name: str) -> None:
        """Point ``name`` (a normalised reference with a tag) at ``image_id``."""
        with self.state.tx() as db:
            if db.execute("SELECT 1 FROM images WHERE id = ?", (image_id,)).fetchone() is None:
                raise NotFound(f"No such image: {image_id}")
            db.execute(
                "INSERT OR REPLACE INTO tags (name, image_id) VALUES (?, ?)", (name, image_id)
            )
            db.execute(
                "UPDATE images SET last_tag_time = ? WHERE id = ?", (now_rfc3339(), image_id)
            )

    def get(self, image_id: str) -> ImageRecord:
        with self.state.tx() as db:
            row = db.execute("SELECT * FROM images WHERE id = ?", (image_id,)).fetchone()
            if row is None:
                raise NotFound(f"No such image: {image_id}")
            return _record(db, row)

    def list_images(self) -> list[ImageRecord]:
        with self.state.tx() as db:
            rows = db.execute("SELECT * FROM images ORDER BY created_at DESC").fetchall()
            return [_record(db, row) for row in rows]

    def children(self, image_id: str) -> list[str]:
        """The images whose parent is ``image_id``."""
        with self.state.tx() as db:
            rows = db.execute("SELECT id FROM images WHERE parent = ?", (image_id,)).fetchall()
        return [str(row["id"]) for row in rows]

    def parents(self) -> set[str]:
        """Every image that is another's parent (Docker hides those untagged from ``images``
        and never counts them as dangling)."""
        with self.state.tx() as db:
            rows = db.execute("SELECT DISTINCT parent FROM images WHERE parent IS NOT NULL")
            return {str(row["parent"]) for row in rows}

    def resolve(self, text: str) -> ImageRecord:
        """Find an image by full ID, unique ID prefix, name[:tag] or name@digest, like Docker."""
        image_id = self._resolve_id(text)
        if image_id is None:
            raise NotFound(f"No such image: {text}")
        return self.get(image_id)

    def _resolve_id(self, text: str) -> str | None:
        with self.state.tx() as db:
            if text.startswith("sha256:") and len(text) == 71:
                row = db.execute("SELECT id FROM images WHERE id = ?", (text,)).fetchone()
                return str(row["id"]) if row else None
            try:
                ref = reference.parse(text).with_default_tag()
            except InvalidArgument:
                ref = None
            if ref is not None:
                table = "repo_digests" if ref.digest else "tags"
                row = db.execute(
                    f"SELECT image_id FROM {table} WHERE name = ?",  # noqa: S608 - fixed names
                    (ref.string,),
                ).fetchone()
                if row:
                    return str(row["image_id"])
            if _HEX_PREFIX.fullmatch(text):
                return _unique_prefix(db, text)
        return None

    def collect_garbage(self) -> tuple[int, int]:
        """Delete layers and blobs no image references and no lease holds; returns (layers,
        bytes) reclaimed. Under the lock the rows go and the files are renamed away or
        unlinked; the removal of the layer trees, the slow part, follows outside it."""
        with self.gc_lock:
            dead, reclaimed, doomed = self._collect_garbage()
        for directory in doomed:
            self.layers.remove_detached(directory)
        return dead, reclaimed

    def _collect_garbage(self) -> tuple[int, int, list[Path]]:
        return collect(self.state, self.content, self.layers, self.leases)

    # --- blob sources (cross-repository mounts on push) -----------------------------------

    def record_blob_source(self, digest: str, registry: str, repository: str) -> None:
        with self.state.tx() as db:
            db.execute(
                "INSERT OR IGNORE INTO blob_sources (digest, registry, repository) VALUES (?,?,?)",
                (digest, registry, repository),
            )

    def blob_sources(self, digest: str) -> list[tuple[str, str]]:
        with self.state.tx() as db:
            rows = db.execute(
                "SELECT registry, repository FROM blob_sources WHERE digest = ?", (digest,)
            ).fetchall()
        return [(str(r["registry"]), str(r["repository"])) for r in rows]

    def layer_diff_ids(self, chain_ids: Iterable[str]) -> list[tuple[str, str, int]]:
        """(chain id, diff id, size) for each chain id, in the order given.

        A list, read in one transaction: a generator would hold the state store's lock while
        its consumer is suspended (``save`` streams a layer between two items), and one whose
        client went away would hold it for ever, stopping the whole daemon."""
        found = []
        with self.state.tx() as db:
            for chain_id in chain_ids:
                row = db.execute(
                    "SELECT diff_id, size FROM layers WHERE chain_id = ?", (chain_id,)
                ).fetchone()
                if row is None:
                    raise NotFound(f"layer {chain_id} is not in the store")
                found.append((chain_id, str(row["diff_id"]), int(row["size"])))
        return found


def _record(db: sqlite3.Connection, row: sqlite3.Row) -> ImageRecord:
    image_id = str(row["id"])
    tags = [str(r["name"]) for r in db.execute(
        "SELECT name FROM tags WHERE image_id = ? ORDER BY name", (image_id,))]
    digests = [str(r["name"]) for r in db.execute(
        "SELECT name FROM repo_digests WHERE image_id = ? ORDER BY name", (image_id,))]
    return ImageRecord(
        id=image_id,
        config_raw=str(row["config"]).encode(),
        manifest=str(row["manifest"]).encode() if row["manifest"] is not None else None,
        manifest_digest=row["manifest_digest"],
        chain_ids=list(json.loads(row["chain_ids"])),
        size=int(row["size"]),
        created_at=str(row["created_at"]),
        last_tag_time=row["last_tag_time"],
        tags=tags,
        repo_digests=digests,
        parent=str(row["parent"] or ""),
    )


def _layer_sizes(db: sqlite3.Connection, chain_ids: list[str]) -> list[int]:
    sizes = []
    for chain_id in chain_ids:
        row = db.execute("SELECT size FROM layers WHERE chain_id = ?", (chain_id,)).fetchone()
        if row is None:
            raise NotFound(f"layer {chain_id} is not in the store")
        sizes.append(int(row["size"]))
    return sizes


def _unique_prefix(db: sqlite3.Connection, text: str) -> str | None:
    prefix = text if text.startswith("sha256:") else "sha256:" + text
    rows = db.execute(
        "SELECT id FROM images WHERE id >= ? AND id < ? LIMIT 2", (prefix, prefix + "g")
    ).fetchall()
    if len(rows) > 1:
        raise Conflict(f"image ID prefix {text} is ambiguous")
    return str(rows[0]["id"]) if rows else None
