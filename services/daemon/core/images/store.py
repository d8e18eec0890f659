"""Image metadata: images, tags, repo digests and layer records in the state store.

The content store holds the bytes (manifests, configs, compressed layers) and the layer store the
unpacked layers; this module says which image is which and which tags point where.

Invariants:
- An image row exists only once every layer of its ``chain_ids`` has a layer row and directory.
- A tag or repo digest always points at an existing image (foreign key, one transaction).
- Deleting an image removes, in the same transaction, its tags and repo digests; layers and blobs
  no other image references are then garbage-collected (files after the commit, so a crash leaves
  only unreferenced files, never a reference to a missing file).
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from wharf import reference
from wharf.daemon.core.images.content import ContentStore
from wharf.daemon.core.images.layers import LayerStore
from wharf.daemon.core.state import StateStore
from wharf.errors import Conflict, InvalidArgument, NotFound

_HEX_PREFIX = re.compile(r"^(sha256:)?[0-9a-f]{1,64}$")


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

    @property
    def config(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.config_raw)
        return parsed

    @property
    def created(self) -> str:
        """The image's own creation time (config ``created``), else when it was stored."""
        value = self.config.get("created")
        return value if isinstance(value, str) and value else self.created_at


@dataclass(frozen=True)
class Removal:
    """What a remove did, in Docker's order: untagged names, then deleted IDs."""

    untagged: list[str]
    deleted: list[str]


class ImageStore:
    """Images over the state store, the content store and the layer store."""

    def __init__(self, state: StateStore, content: ContentStore, layers: LayerStore) -> None:
        self.state = state
        self.content = content
        self.layers = layers
        # Set by the engine once containers exist: image id -> names of containers using it.
        self.users: Callable[[str], list[str]] = lambda _image_id: []

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
    ) -> str:
        """Record an image whose layers are all registered; returns its ID (config digest)."""
        image_id = self.content.put_bytes(config)
        if manifest is not None:
            self.content.put_bytes(manifest, manifest_digest)
        with self.state.tx() as db:
            sizes = _layer_sizes(db, chain_ids)
            existing = db.execute("SELECT 1 FROM images WHERE id = ?", (image_id,)).fetchone()
            if existing is None:
                db.execute(
                    "INSERT INTO images (id, config, manifest, manifest_digest, chain_ids, size,"
                    " created_at) VALUES (?,?,?,?,?,?,?)",
                    (
                        image_id,
                        config.decode(),
                        manifest.decode() if manifest is not None else None,
                        manifest_digest,
                        json.dumps(chain_ids),
                        sum(sizes),
                        now_rfc3339(),
                    ),
                )
            elif manifest is not None:
                db.execute(
                    "UPDATE images SET manifest = ?, manifest_digest = ? WHERE id = ?",
                    (manifest.decode(), manifest_digest, image_id),
                )
            if repo_digest:
                db.execute(
                    "INSERT OR REPLACE INTO repo_digests (name, image_id) VALUES (?, ?)",
                    (repo_digest, image_id),
                )
        return image_id

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
            if _HEX_PREFIX.match(text):
                return _unique_prefix(db, text)
        return None

    def remove(self, text: str, *, force: bool = False, prune: bool = True) -> Removal:
        """Docker's ``rmi``: untag a name, or delete an image by ID (and what it alone used).

        Removing a repository's last tag also drops that repository's digest references, and
        the image goes when no reference is left — dockerd's ImageDelete, step by step.
        """
        record = self.resolve(text)
        by_name = self._resolve_by_name(text)
        users = self.users(record.id)
        refs = record.tags + record.repo_digests
        if by_name is not None:
            untagged = self._untag(record, by_name, refuse_last=bool(users and not force),
                                   text=text, user=users[0] if users else "")
            if len(untagged) < len(refs):
                return Removal(untagged=untagged, deleted=[])
        else:
            repositories = {reference.parse(r).name for r in refs}
            if len(repositories) > 1 and not force:
                raise Conflict(
                    f"conflict: unable to delete {record.id[7:19]} (must be forced) - image is "
                    "referenced in multiple repositories"
                )
            if users and not force:
                raise Conflict(
                    f"conflict: unable to delete {record.id[7:19]} (must be forced) - image is "
                    f"being used by stopped container {users[0]}"
                )
            untagged = refs
        with self.state.tx() as db:
            db.execute("DELETE FROM tags WHERE image_id = ?", (record.id,))
            db.execute("DELETE FROM repo_digests WHERE image_id = ?", (record.id,))
            if users:  # forced while in use: Docker keeps the image, only untagged
                return Removal(untagged=untagged, deleted=[])
            db.execute("DELETE FROM images WHERE id = ?", (record.id,))
        if prune:
            self.collect_garbage()
        return Removal(untagged=untagged, deleted=[record.id])

    def _untag(self, record: ImageRecord, name: str, *, refuse_last: bool, text: str,
               user: str) -> list[str]:
        """Remove reference ``name`` (and its repository's digests when it was the last tag)."""
        ref = reference.parse(name)
        dropped = [name]
        if not ref.digest and not any(
            t != name and reference.parse(t).name == ref.name for t in record.tags
        ):
            dropped += [d for d in record.repo_digests if reference.parse(d).name == ref.name]
        if refuse_last and len(dropped) == len(record.tags) + len(record.repo_digests):
            raise Conflict(
                f'conflict: unable to remove repository reference "{text}" (must force) - '
                f"container {user} is using its referenced image {record.id[7:19]}"
            )
        with self.state.tx() as db:
            for item in dropped:
                table = "repo_digests" if "@" in item else "tags"
                db.execute(f"DELETE FROM {table} WHERE name = ?", (item,))  # noqa: S608
        return dropped

    def _resolve_by_name(self, text: str) -> str | None:
        """The normalised name ``text`` denotes when it is a reference that exists, else None."""
        try:
            ref = reference.parse(text).with_default_tag()
        except InvalidArgument:
            return None
        table = "repo_digests" if ref.digest else "tags"
        with self.state.tx() as db:
            row = db.execute(
                f"SELECT 1 FROM {table} WHERE name = ?", (ref.string,)  # noqa: S608
            ).fetchone()
        return ref.string if row else None

    def collect_garbage(self) -> tuple[int, int]:
        """Delete layers and blobs no image references; returns (layers, bytes) reclaimed."""
        with self.state.tx() as db:
            live_chains: set[str] = set()
            live_blobs: set[str] = set()
            for row in db.execute("SELECT id, chain_ids, manifest, manifest_digest FROM images"):
                live_chains.update(json.loads(row["chain_ids"]))
                live_blobs.add(str(row["id"]))
                if row["manifest_digest"]:
                    live_blobs.add(str(row["manifest_digest"]))
                live_blobs.update(_manifest_blobs(row["manifest"]))
            dead = [
                (str(r["chain_id"]), int(r["size"]))
                for r in db.execute("SELECT chain_id, size FROM layers")
                if r["chain_id"] not in live_chains
            ]
            db.executemany("DELETE FROM layers WHERE chain_id = ?", [(c,) for c, _ in dead])
            db.execute(
                "DELETE FROM blob_sources WHERE digest NOT IN (SELECT value FROM json_each(?))",
                (json.dumps(sorted(live_blobs)),),
            )
        for chain_id, _ in dead:
            self.layers.delete(chain_id)
        reclaimed = sum(size for _, size in dead)
        for digest in list(self.content.digests()):
            if digest not in live_blobs:
                reclaimed += self.content.size(digest)
                self.content.delete(digest)
        return len(dead), reclaimed

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

    def layer_diff_ids(self, chain_ids: Iterable[str]) -> Iterator[tuple[str, str, int]]:
        """(chain id, diff id, size) for each chain id, in the order given."""
        with self.state.tx() as db:
            for chain_id in chain_ids:
                row = db.execute(
                    "SELECT diff_id, size FROM layers WHERE chain_id = ?", (chain_id,)
                ).fetchone()
                if row is None:
                    raise NotFound(f"layer {chain_id} is not in the store")
                yield chain_id, str(row["diff_id"]), int(row["size"])


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


def _manifest_blobs(manifest: str | None) -> set[str]:
    if not manifest:
        return set()
    parsed = json.loads(manifest)
    blobs = {d["digest"] for d in parsed.get("layers", []) if isinstance(d, dict)}
    config = parsed.get("config")
    if isinstance(config, dict) and "digest" in config:
        blobs.add(config["digest"])
    return {b for b in blobs if isinstance(b, str)}
