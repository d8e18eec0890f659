"""The image store's invariants: every recorded image names only blobs that are present, garbage
collection spares what a lease holds, load keeps a whole image as it is, and the check finds
(and repairs) each kind of breakage. Real state, content and layer stores in a temp dir."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
import threading
import time
from pathlib import Path

import pytest

from wharf.daemon.core.images import archive, check
from wharf.daemon.core.images.content import ContentStore
from wharf.daemon.core.images.layers import LayerStore, chain_ids
from wharf.daemon.core.images.removal import remove
from wharf.daemon.core.images.store import ImageStore
from wharf.daemon.core.state import StateStore
from wharf.errors import Internal

GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"


@pytest.fixture
def store(tmp_path: Path) -> ImageStore:
    state = StateStore(tmp_path / "state.db")
    state.open()
    return ImageStore(state, ContentStore(tmp_path / "content"), LayerStore(tmp_path / "layers"))


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _layer(name: str) -> tuple[bytes, bytes]:
    """(uncompressed tar, gzip blob) with one file ``name``."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        data = f"I am {name}\n".encode()
        info = tarfile.TarInfo(name)
        info.size, info.mtime = len(data), 1_700_000_000
        tar.addfile(info, io.BytesIO(data))
    plain = raw.getvalue()
    return plain, gzip.compress(plain, mtime=0)


def _add(store: ImageStore, names: list[str], *, tag: str) -> str:
    """Store and record an image of one gzip layer per name, as a pull would."""
    plains, blobs = zip(*(_layer(n) for n in names), strict=True)
    diff_ids = [_sha(p) for p in plains]
    chains = chain_ids(diff_ids)
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
    with store.lease() as lease:
        lease.hold(*map(_sha, blobs))
        lease.hold_layers(*chains)
        for i, blob in enumerate(blobs):
            digest = store.content.put_bytes(blob)
            result = store.layers.unpack(chains[i], store.content.path(digest), GZIP,
                                         diff_ids[i])
            store.register_layer(chains[i], result.diff_id, chains[i - 1] if i else None,
                                 result.size)
        manifest = json.dumps({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": _sha(config), "size": len(config)},
            "layers": [{"mediaType": GZIP, "digest": _sha(b), "size": len(b)} for b in blobs],
        }).encode()
        image_id = store.add_image(config=config, manifest=manifest,
                                   manifest_digest=_sha(manifest), chain_ids=chains)
        store.tag(image_id, f"docker.io/library/{tag}:latest")
    return image_id


def _save(store: ImageStore, name: str) -> bytes:
    return b"".join(archive.save(store, [name]))


def test_add_image_refuses_a_manifest_whose_blob_is_missing(store: ImageStore) -> None:
    image_id = _add(store, ["base"], tag="a")
    record = store.get(image_id)
    layer = store.record_blobs(record)[-1]
    remove(store, image_id, force=True)
    with pytest.raises(Internal, match=f"blob {layer}"):
        store.add_image(config=record.config_raw, manifest=record.manifest,
                        manifest_digest=record.manifest_digest, chain_ids=[])
    assert store.list_images() == []


def test_garbage_collection_spares_what_a_lease_holds(store: ImageStore) -> None:
    image_id = _add(store, ["base", "top"], tag="a")
    record = store.get(image_id)
    blobs, chains = store.record_blobs(record), record.chain_ids
    with store.lease() as lease:
        lease.hold(*blobs)
        lease.hold_layers(*chains)
        remove(store, image_id)  # collects garbage
        assert all(store.content.has(b) for b in blobs)
        assert all(store.layers.has(c) for c in chains)
    store.collect_garbage()
    assert not any(store.content.has(b) for b in blobs)
    assert not any(store.layers.has(c) for c in chains)
    assert list(store.content.digests()) == []


def test_taking_a_lease_waits_for_a_collection_under_way(store: ImageStore) -> None:
    taken = threading.Event()

    def take() -> None:
        with store.lease() as lease:
            lease.hold("sha256:" + "0" * 64)
            taken.set()

    with store.gc_lock:  # a collection under way
        thread = threading.Thread(target=take)
        thread.start()
        assert not taken.wait(0.2)
    assert taken.wait(5)
    thread.join()
    assert store.leases.held() == store.leases.held_layers() == set()


def test_shared_layers_stay_saveable_after_load_and_removals(store: ImageStore,
                                                             tmp_path: Path) -> None:
    """The issue's sequence at the store's level: two images sharing a base layer, save one,
    untag, load the archive back, remove the other: the first still saves and names only blobs
    that exist."""
    a = _add(store, ["base", "a"], tag="share-a")
    _add(store, ["base", "b"], tag="share-b")
    saved = tmp_path / "a.tar"
    saved.write_bytes(_save(store, "share-a"))
    store.tag(a, "docker.io/keep/a:latest")
    remove(store, "share-a")
    manifest_before = store.get(a).manifest
    assert archive.load(store, saved, tmp_path / "tmp") == ["Loaded image: share-a:latest"]
    assert store.get(a).manifest == manifest_before  # whole already: only tagged
    remove(store, "keep/a")
    remove(store, "share-b")
    assert store.missing_blobs(store.get(a)) == []
    with tarfile.open(fileobj=io.BytesIO(_save(store, "share-a"))) as saved_again:
        assert "manifest.json" in saved_again.getnames()
    assert check.inspect(store, []) == []


def test_load_of_an_image_whose_blobs_are_gone_restores_them(store: ImageStore,
                                                             tmp_path: Path) -> None:
    a = _add(store, ["base", "a"], tag="share-a")
    saved = tmp_path / "a.tar"
    saved.write_bytes(_save(store, "share-a"))
    for blob in store.record_blobs(store.get(a))[2:]:  # the layer blobs
        os.unlink(store.content.path(blob))
    assert not store.is_complete(a)
    archive.load(store, saved, tmp_path / "tmp")
    assert store.is_complete(a)
    assert check.inspect(store, []) == []


def test_save_refuses_a_blob_that_is_not_the_layer(store: ImageStore) -> None:
    a = _add(store, ["base"], tag="a")
    layer_blob = store.record_blobs(store.get(a))[-1]
    path = store.content.path(layer_blob)
    os.chmod(path, 0o644)
    path.write_bytes(_layer("other")[1])
    with pytest.raises(Internal, match="does not hold layer"):
        _save(store, "a")


def _kinds(problems: list[check.Problem]) -> list[tuple[str, str | None, bool]]:
    return [(p.kind, p.fix, p.repaired) for p in problems]


def test_check_rewrites_config_and_manifest_blobs_from_the_state_store(
        store: ImageStore) -> None:
    a = _add(store, ["base"], tag="a")
    record = store.get(a)
    assert record.manifest_digest is not None
    os.unlink(store.content.path(a))
    os.unlink(store.content.path(record.manifest_digest))
    problems = check.inspect(store, [])
    assert _kinds(problems) == [("blob", "rewrite", False), ("blob", "rewrite", False)]
    with store.lease() as lease:
        check.repair_locally(store, lease, problems)
    assert all(p.repaired for p in problems)
    assert store.is_complete(a)
    assert check.inspect(store, []) == []


def test_check_unpacks_a_missing_layer_again_and_reports_a_missing_blob(
        store: ImageStore) -> None:
    a = _add(store, ["base", "top"], tag="a")
    record = store.get(a)
    store.layers.delete(record.chain_ids[1])
    os.unlink(store.content.path(store.record_blobs(record)[2]))  # the base layer's blob
    problems = check.inspect(store, [])
    assert _kinds(problems) == [("blob", "fetch", False), ("layer", "unpack", False)]
    assert "pull docker.io/library/a:latest again" in problems[0].advice
    with store.lease() as lease:
        check.repair_locally(store, lease, problems)
    assert _kinds(problems) == [("blob", "fetch", False), ("layer", "unpack", True)]
    assert store.layers.has(record.chain_ids[1])


def test_check_collects_unreferenced_data_and_old_temp_files(store: ImageStore,
                                                            tmp_path: Path) -> None:
    stray = store.content.put_bytes(b"nobody names me")
    temp = tmp_path / "tmp"
    temp.mkdir()
    (temp / "old.tar").write_bytes(b"x")
    os.utime(temp / "old.tar", (time.time() - 7200, time.time() - 7200))
    (temp / "fresh.tar").write_bytes(b"x")  # a write in progress: not a leftover
    problems = check.inspect(store, [temp])
    assert [(p.kind, p.id) for p in problems] == [("blob", stray), ("temp", str(temp / "old.tar"))]
    with store.lease() as lease:
        check.repair_locally(store, lease, problems)
    assert all(p.repaired for p in problems)
    assert not store.content.has(stray)
    assert sorted(os.listdir(temp)) == ["fresh.tar"]


def test_check_does_not_report_what_a_lease_holds(store: ImageStore) -> None:
    with store.lease() as lease:
        digest = _sha(b"being pulled")
        lease.hold(digest)
        store.content.put_bytes(b"being pulled")
        assert check.inspect(store, []) == []


def test_holding_a_layer_does_not_spare_a_blob_with_the_same_digest(store: ImageStore) -> None:
    """An uncompressed bottom layer's blob digest is that layer's chain ID."""
    plain, _ = _layer("base")
    digest = store.content.put_bytes(plain)
    with store.lease() as lease:
        lease.hold_layers(digest)
        store.collect_garbage()
        assert not store.content.has(digest)
