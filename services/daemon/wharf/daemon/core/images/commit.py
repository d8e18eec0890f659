"""``docker commit``: a new image from a container's overlay upper dir.

The upper dir becomes one layer on top of the container's image: a plain tar, written in name
order and hashed while it is written (uncompressed, so its digest is its diff_id), the overlay
whiteouts turned into OCI ones on the way (a char device 0:0 ``x`` becomes ``.wh.x``; a
directory with ``trusted.overlay.opaque=y`` gets a ``.wh..wh..opq`` entry), the mount points the
runtime creates left out (Docker keeps them in its ``-init`` layer, which commit never sees).
The tar goes into the content store and is unpacked into the layer store by the same path a
pull takes, all under a lease, before the image record naming them is written
(docs/image-store.md, invariants 1 and 4).

The image config follows dockerd (``daemon/commit.go``): the ``changes`` lines are applied to
the request's Config, which is then merged with the container's (``merge``), and the history
gets Docker's entry (created_by: the container's Cmd joined by spaces).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import stat
import tarfile
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wharf.daemon.core.containers.changes import RUNTIME_MOUNT_POINTS, is_opaque, is_whiteout
from wharf.daemon.core.images.changes import apply_changes
from wharf.daemon.core.images.gc import Lease
from wharf.daemon.core.images.layers import chain_ids
from wharf.daemon.core.images.store import ImageRecord, ImageStore, now_rfc3339
from wharf.daemon.core.images.tarsafety import OPAQUE, WHITEOUT_PREFIX
from wharf.errors import Conflict

LAYER_MEDIA_TYPE = "application/vnd.oci.image.layer.v1.tar"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
# (config, plain layer) media types of a manifest of each kind: the new manifest is of the
# parent's kind, so its descriptors never mix the two.
_MEDIA_TYPES = {
    OCI_MANIFEST: ("application/vnd.oci.image.config.v1+json", LAYER_MEDIA_TYPE),
    DOCKER_MANIFEST: ("application/vnd.docker.container.image.v1+json",
                      "application/vnd.docker.image.rootfs.diff.tar"),
}
# The Config fields an image keeps (the rest of a container's Config is per container).
_IMAGE_FIELDS = ("User", "ExposedPorts", "Env", "Cmd", "Entrypoint", "Volumes", "WorkingDir",
                 "Labels", "OnBuild", "StopSignal", "Healthcheck", "Shell")


@dataclass(frozen=True)
class CommitSource:
    """What a commit takes from the container."""

    container_id: str
    image_id: str  # the container's image
    config: dict[str, Any]  # the container's Config
    upper: Path  # its overlay upper dir (may not exist: never started)
    skip: frozenset[str] = field(default=RUNTIME_MOUNT_POINTS)


# --- the config --------------------------------------------------------------------------------


def commit_config(container: dict[str, Any], user: dict[str, Any] | None,
                  changes: list[str]) -> dict[str, Any]:
    """The new image's Config: ``changes`` applied to ``user`` (the request body), merged with
    the container's Config as dockerd merges them. InvalidArgument for a bad change line."""
    out = apply_changes(dict(user or {}), changes)
    merged = merge(out, container)
    return {k: merged[k] for k in _IMAGE_FIELDS if merged.get(k) is not None}


def merge(user: dict[str, Any], container: dict[str, Any]) -> dict[str, Any]:
    """dockerd's ``merge(userConf, imageConf)``: what the user did not set comes from the
    container; Env, ExposedPorts, Labels and Volumes are unions (the user's values win)."""
    out = dict(user)
    out["User"] = out.get("User") or container.get("User") or ""
    out["ExposedPorts"] = {**(container.get("ExposedPorts") or {}),
                           **(out.get("ExposedPorts") or {})} or None
    env = list(out.get("Env") or [])
    keys = {e.split("=", 1)[0] for e in env}
    out["Env"] = env + [e for e in container.get("Env") or [] if e.split("=", 1)[0] not in keys]
    out["Labels"] = {**(container.get("Labels") or {}), **(out.get("Labels") or {})}
    if not out.get("Entrypoint"):
        if not out.get("Cmd"):
            out["Cmd"] = container.get("Cmd")
        if out.get("Entrypoint") is None:
            out["Entrypoint"] = container.get("Entrypoint")
    out["WorkingDir"] = out.get("WorkingDir") or container.get("WorkingDir") or ""
    out["Volumes"] = {**(out.get("Volumes") or {}), **(container.get("Volumes") or {})} or None
    out["StopSignal"] = out.get("StopSignal") or container.get("StopSignal")
    if out.get("OnBuild") is None:
        out["OnBuild"] = container.get("OnBuild")
    return out


# --- the layer ---------------------------------------------------------------------------------


class _HashingFile:
    """A write-only file that hashes what goes through it (the tar's digest = its diff_id)."""

    def __init__(self, path: Path) -> None:
        self._file = path.open("wb")
        self._hash = hashlib.sha256()
        self._pos = 0

    def write(self, data: bytes) -> int:
        self._file.write(data)
        self._hash.update(data)
        self._pos += len(data)
        return len(data)

    def tell(self) -> int:
        return self._pos

    def close(self) -> None:
        self._file.close()

    @property
    def digest(self) -> str:
        return "sha256:" + self._hash.hexdigest()


def write_layer(upper: Path, target: Path, skip: Iterable[str] = ()) -> tuple[str, int]:
    """Write the tar of ``upper`` (overlay form) to ``target`` in OCI form; returns (digest,
    number of entries). A missing ``upper`` gives an empty tar."""
    out = _HashingFile(target)
    try:
        with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
            count = _add_dir(tar, upper, "", frozenset(skip)) if upper.is_dir() else 0
    finally:
        out.close()
    return out.digest, count


def _add_dir(tar: tarfile.TarFile, upper: Path, rel: str, skip: frozenset[str]) -> int:
    count = 0
    for name in sorted(os.listdir(upper / rel if rel else upper)):
        child = f"{rel}/{name}" if rel else name
        if "/" + child in skip:
            continue
        host = upper / child
        st = os.lstat(host)
        if is_whiteout(st):
            tar.addfile(_empty(f"{rel}/{WHITEOUT_PREFIX}{name}" if rel else WHITEOUT_PREFIX + name,
                               st))
            count += 1
            continue
        if stat.S_ISSOCK(st.st_mode):  # nothing a layer can carry
            continue
        info = tar.gettarinfo(str(host), arcname=child)
        info.uname = info.gname = ""
        info.mtime = int(st.st_mtime)
        info.pax_headers = _xattrs(host)
        if info.isreg():
            with host.open("rb") as f:
                tar.addfile(info, f)
        else:
            tar.addfile(info)
        count += 1
        if stat.S_ISDIR(st.st_mode):
            if is_opaque(host):
                tar.addfile(_empty(f"{child}/{OPAQUE}", st))
                count += 1
            count += _add_dir(tar, upper, child, skip)
    return count


def _empty(name: str, st: os.stat_result) -> tarfile.TarInfo:
    """A whiteout entry: an empty regular file owned as the entry it stands for."""
    info = tarfile.TarInfo(name)
    info.mode, info.uid, info.gid, info.mtime = 0o600, st.st_uid, st.st_gid, int(st.st_mtime)
    return info


def _xattrs(path: Path) -> dict[str, str]:
    """The entry's xattrs as pax ``SCHILY.xattr`` records (not overlayfs' own)."""
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return {}
    out = {}
    for name in names:
        if name.startswith("trusted.overlay."):
            continue
        try:
            value = os.getxattr(path, name, follow_symlinks=False)
        except OSError:
            continue
        out["SCHILY.xattr." + name] = value.decode("utf-8", "surrogateescape")
    return out


# --- recording the image -----------------------------------------------------------------------


@dataclass(frozen=True)
class NewImage:
    """An image to record on top of ``parent`` (None: from scratch): its Config, the history
    entry it adds (``created``, ``empty_layer`` and the diff_id are filled in), and what
    dockerd records of the container that made it."""

    parent: ImageRecord | None
    config: dict[str, Any]
    history: dict[str, Any]
    author: str = ""
    container_id: str = ""
    container_config: dict[str, Any] | None = None


def commit(store: ImageStore, tmp_dir: Path, source: CommitSource, config: dict[str, Any], *,
           comment: str, author: str, name: str | None) -> str:
    """Write the layer, the config and the image record (tagged ``name``, a normalised
    reference, when given); returns the image ID."""
    entry: dict[str, Any] = {"created_by": " ".join(source.config.get("Cmd") or [])}
    if author:
        entry["author"] = author
    if comment:
        entry["comment"] = comment
    with store.lease():  # the parent, until the new image names it
        new = NewImage(parent=store.get(source.image_id), config=config, history=entry,
                       author=author, container_id=source.container_id,
                       container_config=source.config)
        return record_image(store, tmp_dir, new, source.upper, source.skip, name=name)


def record_image(store: ImageStore, tmp_dir: Path, new: NewImage, upper: Path | None,
                 skip: Iterable[str] = (), *, name: str | None = None) -> str:
    """Record ``new``, with ``upper`` (an overlay upper dir) as its new layer when it holds
    anything (else the history entry is an ``empty_layer``), tagged ``name`` when given; all
    under a lease (docs/image-store.md, invariants 1 and 4). Returns the image ID."""
    with store.lease() as lease:
        if new.parent is not None:
            _hold_parent(store, lease, new.parent)
        layer = None
        if upper is not None and upper.is_dir():
            tmp_dir.mkdir(parents=True, exist_ok=True)
            fd, spool_name = tempfile.mkstemp(dir=tmp_dir, prefix="commit-", suffix=".tar")
            os.close(fd)
            spool = Path(spool_name)
            try:
                digest, entries = write_layer(upper, spool, skip)
                layer = _store_layer(store, lease, spool, digest, new.parent) if entries else None
            finally:
                spool.unlink(missing_ok=True)
        raw = image_config(new, layer)
        image_id = _record(store, new.parent, raw, layer)
        if name:  # under the lease: an untagged image is what `image prune` takes
            store.tag(image_id, name)
        return image_id


def _hold_parent(store: ImageStore, lease: Lease, parent: ImageRecord) -> None:
    lease.hold(*store.record_blobs(parent))
    lease.hold_layers(*parent.chain_ids)
    missing = store.missing_blobs(parent)
    if missing:
        raise Conflict(f"image {parent.id} is incomplete (blob {missing[0]} is missing): "
                       "run `wharf system check --repair`")
    if parent.manifest is None:
        raise Conflict(f"image {parent.id} has no manifest to build on")


def _store_layer(store: ImageStore, lease: Lease, spool: Path, digest: str,
                 parent: ImageRecord | None) -> tuple[str, int]:
    """Put the tar into the content store and unpack it as the next layer; (digest, size)."""
    lease.hold(digest)
    store.content.put_file(spool, digest)
    diff_ids = [*_diff_ids(parent), digest]
    chain = chain_ids(diff_ids)[-1]
    lease.hold_layers(chain)
    if not store.has_layer(chain):
        result = store.layers.unpack(chain, store.content.path(digest), LAYER_MEDIA_TYPE, digest)
        below = parent.chain_ids[-1] if parent is not None and parent.chain_ids else None
        store.register_layer(chain, result.diff_id, below, result.size)
    return digest, store.content.size(digest)


def _diff_ids(record: ImageRecord | None) -> list[str]:
    if record is None:
        return []
    return [str(d) for d in (record.config.get("rootfs") or {}).get("diff_ids") or []]


def image_config(new: NewImage, layer: tuple[str, int] | None) -> bytes:
    """The new image config, as dockerd writes it for a commit or a build step."""
    base = new.parent.config if new.parent is not None else {}
    now = now_rfc3339()
    entry = {"created": now, **new.history}
    if layer is None:
        entry["empty_layer"] = True
    doc: dict[str, Any] = {
        "architecture": base.get("architecture") or _host_arch(),
        "os": base.get("os") or "linux",
        **({"variant": base["variant"]} if base.get("variant") else {}),
        **({"author": new.author} if new.author else {}),
        "created": now,
        "config": new.config,
        **({"container": new.container_id} if new.container_id else {}),
        **({"container_config": new.container_config} if new.container_config else {}),
        "rootfs": {"type": "layers",
                   "diff_ids": _diff_ids(new.parent) + ([layer[0]] if layer else [])},
        "history": [*(base.get("history") or []), entry],
    }
    return json.dumps(doc, separators=(",", ":")).encode()


def _record(store: ImageStore, parent: ImageRecord | None, raw: bytes,
            layer: tuple[str, int] | None) -> str:
    base = json.loads(parent.manifest or b"{}") if parent is not None else {}
    kind = str(base.get("mediaType") or "")
    kind = kind if kind in _MEDIA_TYPES else OCI_MANIFEST
    config_type, layer_type = _MEDIA_TYPES[kind]
    layers = list(base.get("layers") or [])
    chains = list(parent.chain_ids) if parent is not None else []
    if layer is not None:
        layers.append({"mediaType": layer_type, "digest": layer[0], "size": layer[1]})
        chains = chain_ids([*_diff_ids(parent), layer[0]])
    manifest = json.dumps({
        "schemaVersion": 2,
        "mediaType": kind,
        "config": {"mediaType": config_type,
                   "digest": "sha256:" + hashlib.sha256(raw).hexdigest(), "size": len(raw)},
        "layers": layers,
    }, separators=(",", ":")).encode()
    return store.add_image(config=raw, manifest=manifest,
                           manifest_digest="sha256:" + hashlib.sha256(manifest).hexdigest(),
                           chain_ids=chains, parent=parent.id if parent is not None else "")


def _host_arch() -> str:
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)

