"""The build cache: a step's key (``steps.cache_key``) -> the image that step made.

Rows live in the state database beside the images they name (``build_cache``, foreign key with
``ON DELETE CASCADE``): removing an image drops the steps it cached, and the cache survives a
daemon restart as the images do. The images themselves are ordinary untagged images whose
``parent`` is the step before (Docker's classic builder), kept by the image they lead to;
``prune`` forgets entries and removes the step images nothing else needs.
"""

from __future__ import annotations

from dataclasses import dataclass

from wharf.daemon.core.images.removal import remove
from wharf.daemon.core.prunefilter import PruneFilter
from wharf.daemon.core.images.store import ImageStore, now_rfc3339
from wharf.errors import Conflict, NotFound


@dataclass(frozen=True)
class CacheEntry:
    """One cached step, for ``system df`` and ``builder prune``."""

    key: str
    image_id: str
    parent: str
    description: str  # the step's created_by
    created_at: str
    last_used: str
    uses: int  # builds that took it from the cache
    size: int  # bytes of the layer the step added (0 for a metadata step)
    in_use: bool  # an image that is tagged, or a container's, descends from it


@dataclass(frozen=True)
class PruneResult:
    deleted: list[str]  # the keys forgotten
    images: list[str]  # the step images removed with them
    space_reclaimed: int


class BuildCache:
    """Cached build steps over the image store."""

    def __init__(self, store: ImageStore) -> None:
        self.store = store

    def get(self, key: str) -> str | None:
        """The image ID cached for ``key`` (and marks it used), or None."""
        with self.store.state.tx() as db:
            row = db.execute("SELECT image_id FROM build_cache WHERE key = ?",
                             (key,)).fetchone()
            if row is None:
                return None
            db.execute("UPDATE build_cache SET last_used = ?, uses = uses + 1 WHERE key = ?",
                       (now_rfc3339(), key))
        return str(row["image_id"])

    def put(self, key: str, image_id: str) -> None:
        now = now_rfc3339()
        with self.store.state.tx() as db:
            db.execute("INSERT OR REPLACE INTO build_cache (key, image_id, created_at, last_used)"
                       " VALUES (?,?,?,?)", (key, image_id, now, now))

    def entries(self) -> list[CacheEntry]:
        """Every cached step, oldest first."""
        with self.store.state.tx() as db:
            rows = db.execute(
                "SELECT key, image_id, created_at, last_used, uses FROM build_cache "
                "ORDER BY created_at").fetchall()
        kept = self._kept()
        out = []
        for row in rows:
            image = self.store.get(str(row["image_id"]))
            history = image.config.get("history") or [{}]
            top = history[-1]
            size = 0
            if not top.get("empty_layer") and image.chain_ids:
                size = next(s for _, _, s in self.store.layer_diff_ids(image.chain_ids[-1:]))
            out.append(CacheEntry(
                key=str(row["key"]), image_id=image.id, parent=image.parent,
                description=str(top.get("created_by") or ""),
                created_at=str(row["created_at"]), last_used=str(row["last_used"]),
                uses=int(row["uses"]), size=size, in_use=image.id in kept))
        return out

    def prune(self, *, everything: bool = False, wanted: PruneFilter | None = None
              ) -> PruneResult:
        """Forget the steps no kept image descends from (``everything``: all steps) that
        ``wanted`` matches (a step has no labels) and remove their images where nothing else
        needs them (an image built on them, a container, a tag)."""
        doomed = [e for e in self.entries() if (everything or not e.in_use)
                  and (wanted is None or wanted.matches({}, e.created_at))]
        with self.store.state.tx() as db:
            for entry in doomed:
                db.execute("DELETE FROM build_cache WHERE key = ?", (entry.key,))
        removed: list[str] = []
        for entry in sorted(doomed, key=lambda e: e.created_at, reverse=True):
            removed += self._remove_image(entry.image_id)
        _, reclaimed = self.store.collect_garbage()
        return PruneResult([e.key for e in doomed], removed, reclaimed)

    def _remove_image(self, image_id: str) -> list[str]:
        try:
            record = self.store.get(image_id)
        except NotFound:  # went with a step after it
            return []
        if (record.tags or record.repo_digests or self.store.users(image_id)
                or self.store.children(image_id) or image_id in self.store.leases.held()):
            return []
        try:
            return remove(self.store, image_id, force=False, prune=True, collect=False).deleted
        except (Conflict, NotFound):
            return []

    def _kept(self) -> set[str]:
        """Images a tagged image or a container's image descends from (ancestors included)."""
        records = {r.id: r for r in self.store.list_images()}
        kept: set[str] = set()
        for record in records.values():
            if record.tags or record.repo_digests or self.store.users(record.id):
                image_id = record.id
                while image_id and image_id not in kept and image_id in records:
                    kept.add(image_id)
                    image_id = records[image_id].parent
        return kept
