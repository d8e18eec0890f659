"""Checking the image store against its invariants, and repairing what can be repaired.

``inspect`` reads the state store, the content store and the layer store and lists each
:class:`Problem` (docs/image-store.md has the invariants and the table of problems):

- an image's config or manifest blob is missing: the state store keeps both texts, so the blob
  is written again (``rewrite``);
- an image's layer blob is missing: it is fetched again from a repository it is known to live
  in (``fetch``; the registry side is ``ImageService.check``), else the user is told to pull or
  remove the image;
- an image's unpacked layer is missing: it is unpacked again from its blob (``unpack``), or its
  row is recorded again from the layer directory (``register``);
- a blob or layer no image names and no operation holds, a layer directory without a row: the
  garbage collector removes it (``collect``);
- a temporary file or directory older than ``temp_age`` (a crash's leftover, not a write in
  progress): removed (``temp``).

Inspection holds the store's garbage-collection lock, so nothing is collected or leased half way
through; repairs run afterwards under a lease.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from wharf.daemon.core.images.gc import Lease
from wharf.daemon.core.images.store import ImageRecord, ImageStore
from wharf.errors import NotFound, WharfError

TEMP_AGE = 3600.0  # seconds: an older temporary entry is no write in progress


@dataclass
class Problem:
    """One breach of an invariant. ``fix`` names the repair (None: nothing wharf can do)."""

    kind: str  # image | layer | blob | temp
    id: str
    problem: str
    fix: str | None
    advice: str = ""
    image: str = ""  # the image the problem belongs to, when it belongs to one
    layer_index: int = -1  # for a layer blob or an unpacked layer: its position in the image
    repaired: bool = False


def inspect(store: ImageStore, temp_dirs: list[Path], temp_age: float = TEMP_AGE) -> list[Problem]:
    """Every problem of the store, images first, then what nothing references, then temp files."""
    with store.gc_lock:
        problems: list[Problem] = []
        records = store.list_images()
        for record in records:
            problems += _image_problems(store, record)
        problems += _unreferenced(store, records)
    problems += _temp_leftovers(temp_dirs, temp_age)
    return problems


def _image_problems(store: ImageStore, record: ImageRecord) -> list[Problem]:
    problems: list[Problem] = []
    name = (record.tags or record.repo_digests or [record.id])[0]
    where = f"of image {name}"
    if not store.content.has(record.id):
        problems.append(Problem("blob", record.id, f"the config blob {where} is missing",
                                "rewrite", image=record.id))
    if record.manifest_digest and not store.content.has(record.manifest_digest):
        problems.append(Problem("blob", record.manifest_digest,
                                f"the manifest blob {where} is missing", "rewrite",
                                image=record.id))
    layers = json.loads(record.manifest).get("layers", []) if record.manifest else []
    for index, chain in enumerate(record.chain_ids):
        digest = str(layers[index]["digest"]) if index < len(layers) else ""
        blob_missing = bool(digest) and not store.content.has(digest)
        if blob_missing:
            problems.append(Problem(
                "blob", digest, f"the blob of layer {index + 1} {where} is missing", "fetch",
                advice=f"pull {name} again, or remove the image", image=record.id,
                layer_index=index))
        if not store.layers.has(chain):
            problems.append(Problem(
                "layer", chain, f"unpacked layer {index + 1} {where} is missing", "unpack",
                advice=f"remove the image and pull {name} again", image=record.id,
                layer_index=index))
        elif not _has_row(store, chain):
            problems.append(Problem("layer", chain, f"layer {index + 1} {where} is not recorded",
                                    "register", image=record.id, layer_index=index))
    return problems


def _has_row(store: ImageStore, chain: str) -> bool:
    with store.state.tx() as db:
        row = db.execute("SELECT 1 FROM layers WHERE chain_id = ?", (chain,)).fetchone()
    return row is not None


def _unreferenced(store: ImageStore, records: list[ImageRecord]) -> list[Problem]:
    live_chains = {c for r in records for c in r.chain_ids} | store.leases.held_layers()
    live_blobs = {b for r in records for b in store.record_blobs(r)} | store.leases.held()
    problems: list[Problem] = []
    with store.state.tx() as db:
        rows = [str(r["chain_id"]) for r in db.execute("SELECT chain_id FROM layers")]
    for chain in sorted(set(rows) - live_chains):
        problems.append(Problem("layer", chain, "no image uses this layer", "collect"))
    for chain in sorted(set(store.layers.chain_ids()) - live_chains - set(rows)):
        problems.append(Problem("layer", chain, "a layer directory no image uses", "collect"))
    for digest in sorted(set(store.content.digests()) - live_blobs):
        problems.append(Problem("blob", digest, "no image names this blob", "collect"))
    return problems


def _temp_leftovers(temp_dirs: list[Path], temp_age: float) -> list[Problem]:
    problems: list[Problem] = []
    cutoff = time.time() - temp_age
    for directory in temp_dirs:
        with contextlib.suppress(FileNotFoundError):
            for entry in sorted(os.scandir(directory), key=lambda e: e.name):
                if entry.stat(follow_symlinks=False).st_mtime < cutoff:
                    problems.append(Problem("temp", entry.path, "a leftover temporary file",
                                            "temp"))
    return problems


_LOCAL_ORDER = ("rewrite", "unpack", "register", "temp")


def repair_locally(store: ImageStore, lease: Lease, problems: list[Problem]) -> None:
    """Repair every problem that needs no registry (each repaired one is marked); an unpack
    needs its blob, so fetch missing blobs first. Unreferenced things go last, in one garbage
    collection, while ``lease`` still holds what the repairs restored."""
    for fix in _LOCAL_ORDER:
        for problem in problems:
            if problem.fix == fix and not problem.repaired:
                _repair_one(store, lease, problem)
    collect = [p for p in problems if p.fix == "collect"]
    if collect:
        store.collect_garbage()
        for problem in collect:
            problem.repaired = True


def _repair_one(store: ImageStore, lease: Lease, problem: Problem) -> None:
    try:
        if problem.fix == "rewrite":
            record = store.get(problem.image)
            data = record.config_raw if problem.id == record.id else record.manifest
            if data is not None:
                lease.hold(problem.id)
                store.content.put_bytes(data, problem.id)
        elif problem.fix in ("unpack", "register"):
            _restore_layer(store, lease, problem)
        elif problem.fix == "temp":
            path = Path(problem.id)
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
        else:
            return
    except (WharfError, OSError) as exc:
        problem.advice = f"repair failed: {exc}" + (f"; {problem.advice}" if problem.advice
                                                      else "")
        return
    problem.repaired = True


def _restore_layer(store: ImageStore, lease: Lease, problem: Problem) -> None:
    record = store.get(problem.image)
    index, chain = problem.layer_index, problem.id
    parent = record.chain_ids[index - 1] if index else None
    lease.hold_layers(chain)
    if problem.fix == "unpack":
        layers = json.loads(record.manifest or "{}").get("layers", [])
        if index >= len(layers) or not store.content.has(str(layers[index]["digest"])):
            raise NotFound("its blob is missing too")
        digest, media_type = str(layers[index]["digest"]), str(layers[index].get("mediaType"))
        diff_id = json.loads(record.config_raw)["rootfs"]["diff_ids"][index]
        result = store.layers.unpack(chain, store.content.path(digest), media_type, diff_id)
    else:
        result = store.layers.recorded(chain)
    store.register_layer(chain, result.diff_id, parent, result.size)
