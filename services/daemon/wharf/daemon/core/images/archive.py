"""Image archives: ``docker save`` / ``docker load`` tarballs and ``docker import`` of a rootfs.

``save`` writes Docker's format (``manifest.json`` + ``repositories``) inside an OCI image layout
(``oci-layout``, ``index.json``, ``blobs/sha256``), as Docker 25+ does, so both ``docker load``
(any version) and OCI tools read it. Layers are written uncompressed, as Docker writes them.
``load`` reads Docker's format, or a plain OCI layout when ``manifest.json`` is absent.
Outer archive members are only read, never extracted, so their names cannot escape anywhere.
"""

from __future__ import annotations

import hashlib
import io
import json
import platform
import shutil
import tarfile
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from wharf import reference
from wharf.daemon.core.images.changes import apply_changes
from wharf.daemon.core.images.compression import open_decompressed, sniff_media_type
from wharf.daemon.core.images.gc import Lease
from wharf.daemon.core.images.layers import chain_ids
from wharf.daemon.core.images.store import ImageRecord, ImageStore
from wharf.errors import Internal, InvalidArgument, NotFound

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
_CHUNK = 1 << 20


def save(store: ImageStore, names: list[str]) -> Iterator[bytes]:
    """Stream a tar of the named images (tags keep their names; IDs are saved untagged)."""
    records = []
    for name in names:
        record = store.resolve(name)
        tags = _requested_tags(name, record.tags)
        records.append((record, tags))
    sink = _Sink()
    with tarfile.open(fileobj=sink, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        written: set[str] = set()
        manifest_json: list[dict[str, Any]] = []
        index: list[dict[str, Any]] = []
        repositories: dict[str, dict[str, str]] = {}
        for record, tags in records:
            layer_paths = []
            blobs = _layer_blobs(record)
            for (_, diff_id, _), (blob, media_type) in zip(
                    store.layer_diff_ids(record.chain_ids), blobs, strict=True):
                path = f"blobs/sha256/{diff_id[7:]}"
                layer_paths.append(path)
                if path not in written:
                    written.add(path)
                    _add_layer(tar, store, blob, media_type, diff_id, path)
                    yield sink.take()
            config_path = f"blobs/sha256/{record.id[7:]}"
            if config_path not in written:
                written.add(config_path)
                _add_bytes(tar, config_path, record.config_raw)
            manifest = _oci_manifest(record.config_raw, store, record.chain_ids)
            manifest_digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
            _add_bytes(tar, f"blobs/sha256/{manifest_digest[7:]}", manifest)
            refs = [reference.parse(t) for t in tags]
            familiar = [f"{ref.familiar}:{ref.tag}" for ref in refs]
            manifest_json.append(
                {"Config": config_path, "RepoTags": familiar or None, "Layers": layer_paths}
            )
            for ref in refs:
                repositories.setdefault(ref.familiar, {})[str(ref.tag)] = record.id[7:]
                index.append(_descriptor(manifest, OCI_MANIFEST, {
                    "io.containerd.image.name": ref.string,
                    "org.opencontainers.image.ref.name": str(ref.tag)}))
            if not tags:
                index.append(_descriptor(manifest, OCI_MANIFEST))
            yield sink.take()
        _add_bytes(tar, "manifest.json", json.dumps(manifest_json).encode())
        _add_bytes(tar, "repositories", json.dumps(repositories).encode())
        _add_bytes(tar, "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
        _add_bytes(tar, "index.json", json.dumps(
            {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": index}).encode())
    yield sink.take()


def load(store: ImageStore, tar_path: Path, tmp_dir: Path) -> list[str]:
    """Load every image in a save archive; returns Docker's ``Loaded image…`` lines."""
    try:
        tar = tarfile.open(tar_path, mode="r:*")  # noqa: SIM115 - closed by the with below
    except (tarfile.TarError, OSError) as exc:
        raise InvalidArgument(f"invalid image archive: {exc}") from exc
    with tar:
        members = {m.name.removeprefix("./"): m for m in tar.getmembers() if m.isfile()}
        entries = _archive_entries(tar, members)
        lines = []
        for config_name, repo_tags, layer_names in entries:
            config = _read_member(tar, members, config_name, limit=8 << 20)
            with store.lease() as lease:
                image_id = "sha256:" + hashlib.sha256(config).hexdigest()
                lease.hold(image_id)
                if not store.is_complete(image_id):  # else keep it as it is (its manifest
                    # may be a registry's, which the repo digests name): only tag it
                    _load_image(store, lease, tar, members, config, layer_names, tmp_dir)
                for tag in repo_tags:  # under the lease: a prune must not take it untagged
                    ref = reference.parse(tag).with_default_tag()
                    store.tag(image_id, ref.string)
                    lines.append(f"Loaded image: {ref.familiar}:{ref.tag}")
            if not repo_tags:
                lines.append(f"Loaded image ID: {image_id}")
    return lines


def import_rootfs(
    store: ImageStore,
    tar_path: Path,
    tmp_dir: Path,
    *,
    name: str | None,
    changes: list[str],
    message: str,
) -> str:
    """Make a one-layer image from a root filesystem tarball (``docker import``)."""
    with store.lease() as lease:
        return _import(store, lease, tar_path, name=name, changes=changes, message=message)


def _import(store: ImageStore, lease: Lease, tar_path: Path, *, name: str | None,
            changes: list[str], message: str) -> str:
    blob_digest, media_type = _store_blob(store, lease, tar_path)
    diff_id = _diff_id(store.content.path(blob_digest))
    lease.hold_layers(diff_id)
    _unpack(store, diff_id, None, blob_digest, media_type)
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    config: dict[str, Any] = {
        "architecture": _host_arch(),
        "os": "linux",
        "created": now,
        "config": apply_changes({}, changes),
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created": now, "created_by": "", "comment": message or "Imported from -"}],
    }
    raw = json.dumps(config, separators=(",", ":")).encode()
    manifest = _manifest_for(raw, [(blob_digest, media_type, store.content.size(blob_digest))])
    image_id = store.add_image(
        config=raw, manifest=manifest,
        manifest_digest="sha256:" + hashlib.sha256(manifest).hexdigest(), chain_ids=[diff_id],
    )
    if name:
        store.tag(image_id, name)
    return image_id


# --- helpers ------------------------------------------------------------------------------


class _Sink(io.RawIOBase):
    """A write-only file that hands out what was written since the last take()."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self._chunks.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        out, self._chunks = b"".join(self._chunks), []
        return out


def _requested_tags(name: str, tags: list[str]) -> list[str]:
    try:
        ref = reference.parse(name)
    except InvalidArgument:
        return []
    if ref.digest or name.startswith("sha256:"):
        return []
    wanted = ref.with_default_tag().string
    if wanted in tags:
        return [wanted]
    return [t for t in tags if reference.parse(t).name == ref.name] if ref.tag is None else []


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 0
    tar.addfile(info, io.BytesIO(data))


def _add_layer(tar: tarfile.TarFile, store: ImageStore, blob: str, media_type: str,
               diff_id: str, path: str) -> None:
    """Add the uncompressed layer, checking on the way that it is ``diff_id``."""
    h = hashlib.sha256()
    try:
        source = store.content.path(blob).open("rb")
    except FileNotFoundError:
        raise NotFound(f"the blob {blob} of layer {diff_id} is not in the content store "
                       "(wharf system check)") from None
    with tempfile.TemporaryFile() as plain, source, \
            open_decompressed(store.content.path(blob), media_type) as stream:
        while chunk := stream.read(_CHUNK):
            h.update(chunk)
            plain.write(chunk)
        if "sha256:" + h.hexdigest() != diff_id:
            raise Internal(f"the blob {blob} does not hold layer {diff_id} (wharf system check)")
        info = tarfile.TarInfo(path)
        info.size = plain.tell()
        plain.seek(0)
        tar.addfile(info, plain)


def _layer_blobs(record: ImageRecord) -> list[tuple[str, str]]:
    """(digest, media type) of each layer blob, bottom first: the manifest lists the layers in
    the order of the config's diff_ids."""
    if record.manifest is None:
        raise NotFound(f"image {record.id} has no manifest naming its layer blobs")
    layers = json.loads(record.manifest).get("layers", [])
    if len(layers) != len(record.chain_ids):
        raise Internal(f"image {record.id}: its manifest and its config disagree on the layers")
    return [(str(layer["digest"]), str(layer.get("mediaType", ""))) for layer in layers]


def _hash_stream(stream: IO[bytes]) -> str:
    h = hashlib.sha256()
    while chunk := stream.read(_CHUNK):
        h.update(chunk)
    return "sha256:" + h.hexdigest()


def _diff_id(blob: Path) -> str:
    with open_decompressed(blob, sniff_media_type(blob)) as stream:
        return _hash_stream(stream)


def _descriptor(data: bytes, media_type: str, annotations: dict[str, str] | None = None
                ) -> dict[str, Any]:
    out: dict[str, Any] = {
        "mediaType": media_type,
        "digest": "sha256:" + hashlib.sha256(data).hexdigest(),
        "size": len(data),
    }
    if annotations:
        out["annotations"] = annotations
    return out


def _manifest_for(config: bytes, layers: list[tuple[str, str, int]]) -> bytes:
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": _descriptor(config, OCI_CONFIG),
        "layers": [{"mediaType": m, "digest": d, "size": s} for d, m, s in layers],
    }
    return json.dumps(manifest, separators=(",", ":")).encode()


def _oci_manifest(config: bytes, store: ImageStore, chains: list[str]) -> bytes:
    layers = []
    for _, diff_id, _ in store.layer_diff_ids(chains):
        layers.append((diff_id, "application/vnd.oci.image.layer.v1.tar", 0))
    return _manifest_for(config, layers)


def _archive_entries(
    tar: tarfile.TarFile, members: dict[str, tarfile.TarInfo]
) -> list[tuple[str, list[str], list[str]]]:
    """(config member, repo tags, layer members) for each image in the archive."""
    if "manifest.json" in members:
        data = json.loads(_read_member(tar, members, "manifest.json", limit=16 << 20))
        if not isinstance(data, list):
            raise InvalidArgument("invalid image archive: manifest.json is not a list")
        return [
            (str(e["Config"]), list(e.get("RepoTags") or []), [str(x) for x in e["Layers"]])
            for e in data
        ]
    if "index.json" in members:
        index = json.loads(_read_member(tar, members, "index.json", limit=16 << 20))
        entries = []
        for desc in index.get("manifests", []):
            manifest = json.loads(_read_member(tar, members, _blob_name(desc["digest"]), 16 << 20))
            name = (desc.get("annotations") or {}).get("io.containerd.image.name")
            entries.append((
                _blob_name(manifest["config"]["digest"]),
                [name] if name else [],
                [_blob_name(layer["digest"]) for layer in manifest["layers"]],
            ))
        return entries
    raise InvalidArgument("invalid image archive: neither manifest.json nor index.json found")


def _blob_name(digest: str) -> str:
    algorithm, _, hexpart = digest.partition(":")
    return f"blobs/{algorithm}/{hexpart}"


def _read_member(
    tar: tarfile.TarFile, members: dict[str, tarfile.TarInfo], name: str, limit: int
) -> bytes:
    member = members.get(name.removeprefix("./"))
    if member is None:
        raise InvalidArgument(f"invalid image archive: {name} is missing")
    if member.size > limit:
        raise InvalidArgument(f"invalid image archive: {name} is too large")
    stream = tar.extractfile(member)
    if stream is None:
        raise InvalidArgument(f"invalid image archive: {name} is not a file")
    return stream.read()


def _load_image(
    store: ImageStore, lease: Lease, tar: tarfile.TarFile, members: dict[str, tarfile.TarInfo],
    config: bytes, layer_names: list[str], tmp_dir: Path,
) -> str:
    try:
        diff_ids = [str(d) for d in json.loads(config)["rootfs"]["diff_ids"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidArgument(f"invalid image archive: bad image config: {exc}") from exc
    if len(diff_ids) != len(layer_names):
        raise InvalidArgument("invalid image archive: layer count does not match the config")
    chains = chain_ids(diff_ids)
    lease.hold_layers(*chains)
    descriptors = []
    for index, (name, diff_id) in enumerate(zip(layer_names, diff_ids, strict=True)):
        member = members.get(name.removeprefix("./"))
        stream = tar.extractfile(member) if member is not None else None
        if stream is None:
            raise InvalidArgument(f"invalid image archive: layer {name} is missing")
        tmp_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=tmp_dir) as spool:
            shutil.copyfileobj(stream, spool, _CHUNK)
            spool.flush()
            digest, media_type = _store_blob(store, lease, Path(spool.name))
        parent = chains[index - 1] if index else None
        if not store.has_layer(chains[index]):
            _unpack(store, chains[index], parent, digest, media_type, expected=diff_id)
        descriptors.append((digest, media_type, store.content.size(digest)))
    manifest = _manifest_for(config, descriptors)
    return store.add_image(
        config=config, manifest=manifest,
        manifest_digest="sha256:" + hashlib.sha256(manifest).hexdigest(), chain_ids=chains,
    )


def _store_blob(store: ImageStore, lease: Lease, path: Path) -> tuple[str, str]:
    """Copy a file into the content store, held by ``lease``; returns (digest, media type by
    its magic)."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    digest = "sha256:" + h.hexdigest()
    lease.hold(digest)
    store.content.put_file(path, digest)
    return digest, sniff_media_type(path)


def _unpack(
    store: ImageStore, chain_id: str, parent: str | None, digest: str, media_type: str,
    expected: str | None = None,
) -> None:
    result = store.layers.unpack(chain_id, store.content.path(digest), media_type, expected)
    store.register_layer(chain_id, result.diff_id, parent, result.size)


def _host_arch() -> str:
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)
