"""Disk usage, daemon side: the counting of ``core/diskusage.py`` over fakes of the image,
container and volume services, and ``GET /system/df`` in dockerd's shape (API 1.41)."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi.testclient import TestClient

from wharf.daemon.adapters.api.server import create_app
from wharf.daemon.adapters.views.diskusage import build_cache_entry
from wharf.daemon.core import diskusage
from wharf.daemon.core.containers.records import ContainerRecord
from wharf.daemon.core.images.store import ImageRecord
from wharf.daemon.core.volumes.store import Volume
from wharf.errors import InvalidArgument, NotFound

BASE, TOP, OTHER = ("sha256:" + c * 64 for c in "123")


def _image(n: str, created: str, chains: list[str], size: int,
           tags: list[str] | None = None) -> ImageRecord:
    return ImageRecord(id="sha256:" + n * 64, config_raw=b'{"created": "%s"}' % created.encode(),
                       manifest=None, manifest_digest=None, chain_ids=chains, size=size,
                       created_at=created, last_tag_time=None, tags=tags or [])


def _container(n: str, image_id: str, created: str) -> ContainerRecord:
    return ContainerRecord(id=n * 64, name=f"c{n}", image="busybox", image_id=image_id,
                           created_at=created, path="sh", args=[], config={}, host_config={})


class FakeImages:
    def __init__(self, records: list[ImageRecord], sizes: Mapping[str, int]) -> None:
        self.records, self.sizes = records, sizes

    def list_images(self) -> list[ImageRecord]:
        return list(self.records)

    def layers(self, record: ImageRecord) -> list[tuple[str, int]]:
        if any(c not in self.sizes for c in record.chain_ids):
            raise NotFound("layer is not in the store")
        return [("sha256:diff" + c[-4:], self.sizes[c]) for c in record.chain_ids]


class FakeContainers:
    def __init__(self, records: list[ContainerRecord], root: Path) -> None:
        self.records, self.root = records, root

    def list_containers(self) -> list[ContainerRecord]:
        return list(self.records)

    def upper_dir(self, record: ContainerRecord) -> Path:
        return self.root / record.id[:4] / "upper"


class FakeVolumes:
    def __init__(self, volumes: list[Volume], users: Mapping[str, list[str]]) -> None:
        self.volumes, self.using = volumes, users

    def find(self, filters: Mapping[str, list[str]]) -> list[Volume]:
        assert not filters
        return list(self.volumes)

    def users(self, name: str) -> list[str]:
        return list(self.using.get(name, []))


def _write(path: Path, size: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)


@pytest.fixture
def sources(tmp_path: Path) -> tuple[FakeImages, FakeContainers, FakeVolumes]:
    busybox = _image("a", "2026-01-01T00:00:00Z", [BASE], 100, ["docker.io/library/busybox:latest"])
    child = _image("b", "2026-02-01T00:00:00Z", [BASE, TOP], 102)
    alone = _image("c", "2026-01-15T00:00:00Z", [OTHER], 50, ["docker.io/library/alone:1"])
    broken = _image("d", "2025-01-01T00:00:00Z", ["sha256:" + "9" * 64], 7)
    images = FakeImages([busybox, alone, child, broken], {BASE: 100, TOP: 2, OTHER: 50})
    old = _container("1", busybox.id, "2026-03-01T00:00:00Z")
    new = _container("2", child.id, "2026-03-02T00:00:00Z")
    fresh = _container("3", busybox.id, "2026-03-03T00:00:00Z")  # never started: no upper dir
    _write(tmp_path / "1111/upper/etc/file", 1000)
    os.link(tmp_path / "1111/upper/etc/file", tmp_path / "1111/upper/hardlink")
    _write(tmp_path / "2222/upper/a", 10)
    (tmp_path / "2222/upper/link").symlink_to("a")
    containers = FakeContainers([old, new, fresh], tmp_path)
    data = tmp_path / "vols/named/_data"
    _write(data / "sub/f", 4096)
    volumes = FakeVolumes([Volume("named", "local", "2026-01-01T00:00:00Z", data),
                           Volume("empty", "local", "2026-01-01T00:00:00Z",
                                  tmp_path / "vols/empty/_data")],
                          {"named": [old.id, new.id]})
    return images, containers, volumes


def test_images_share_layers_and_count_their_containers(
        sources: tuple[FakeImages, FakeContainers, FakeVolumes]) -> None:
    usage = diskusage.collect(*sources, frozenset(diskusage.KINDS))
    assert usage.layers_size == 152  # BASE, TOP and OTHER once each; the broken image has none
    assert usage.images is not None
    assert [(u.record.id[7], u.shared_size, u.containers) for u in usage.images] == [
        ("b", 100, 1), ("c", 0, 0), ("a", 100, 2), ("d", 0, 0)]  # newest first


def test_containers_size_their_upper_dir_once_per_inode(
        sources: tuple[FakeImages, FakeContainers, FakeVolumes]) -> None:
    usage = diskusage.collect(*sources, frozenset({"container"}))
    assert usage.images is None and usage.volumes is None and usage.layers_size == 0
    assert usage.containers is not None
    assert [(u.record.name, u.size_rw, u.size_root_fs) for u in usage.containers] == [
        ("c3", 0, 100), ("c2", 11, 113), ("c1", 1000, 1100)]  # a symlink: its target's length


def test_volumes_size_their_data_and_count_their_users(
        sources: tuple[FakeImages, FakeContainers, FakeVolumes]) -> None:
    usage = diskusage.collect(*sources, frozenset({"volume"}))
    assert usage.volumes is not None
    assert [(u.volume.name, u.size, u.ref_count) for u in usage.volumes] == [
        ("named", 4096, 2), ("empty", 0, 0)]
    other = Volume("far", "nfs-plugin", "2026-01-01T00:00:00Z", Path("/nonexistent"))
    assert diskusage.volume_usage(other, 0).size == -1


def test_kinds_are_dockerds_object_types() -> None:
    assert diskusage.parse_kinds(None) == frozenset(
        {"container", "image", "volume", "build-cache"})
    assert diskusage.parse_kinds(["image", "volume"]) == frozenset({"image", "volume"})
    with pytest.raises(InvalidArgument, match="unknown object type: layers"):
        diskusage.parse_kinds(["image", "layers"])


def test_the_build_cache_entries_and_their_shape() -> None:
    # a daemon without a build service reports an empty cache (the real one: test_build.py)
    assert diskusage.build_cache_usage(SimpleNamespace(builds=None)) == (  # type: ignore[arg-type]
        diskusage.BuildCacheUsage([], 0))
    entry = diskusage.BuildCacheEntry(
        id="k1", type="regular", description="RUN make", size=300,
        created_at="2026-01-01T00:00:00Z", last_used_at=None, usage_count=2, in_use=True)
    assert diskusage.BuildCacheUsage.of([entry, entry]).builder_size == 600
    assert build_cache_entry(entry) == {
        "ID": "k1", "Parent": "", "Type": "regular", "Description": "RUN make", "InUse": True,
        "Shared": False, "Size": 300, "CreatedAt": "2026-01-01T00:00:00Z", "LastUsedAt": None,
        "UsageCount": 2}


@pytest.fixture
def api(sources: tuple[FakeImages, FakeContainers, FakeVolumes]) -> Iterator[TestClient]:
    images, containers, volumes = sources
    engine = SimpleNamespace(images=images, containers=containers, volumes=volumes, builds=None)
    with TestClient(create_app(engine)) as client:  # type: ignore[arg-type]
        yield client


def test_system_df_has_dockerds_shape(api: TestClient) -> None:
    reply = api.get("/v1.41/system/df")
    assert reply.status_code == 200, reply.text
    body: dict[str, Any] = reply.json()
    assert list(body) == ["LayersSize", "Images", "Containers", "Volumes", "BuildCache",
                          "BuilderSize"]
    assert (body["LayersSize"], body["BuildCache"], body["BuilderSize"]) == (152, [], 0)
    busybox = body["Images"][2]
    assert busybox == {
        "Containers": 2, "Created": 1767225600, "Id": "sha256:" + "a" * 64, "Labels": None,
        "ParentId": "", "RepoDigests": None, "RepoTags": ["busybox:latest"], "SharedSize": 100,
        "Size": 100, "VirtualSize": 100}
    fresh, child, old = body["Containers"]
    assert "SizeRw" not in fresh and fresh["SizeRootFs"] == 100  # dockerd's omitempty
    assert (child["SizeRw"], child["SizeRootFs"], old["SizeRw"]) == (11, 113, 1000)
    assert {k: old[k] for k in ("Id", "Names", "State", "ImageID")} == {
        "Id": "1" * 64, "Names": ["/c1"], "State": "created", "ImageID": "sha256:" + "a" * 64}
    named = body["Volumes"][0]
    assert named["Name"] == "named" and named["UsageData"] == {"Size": 4096, "RefCount": 2}


def test_system_df_type_filter(api: TestClient) -> None:
    body = api.get("/system/df?type=volume&type=build-cache").json()
    assert (body["Images"], body["Containers"], body["LayersSize"]) == (None, None, 0)
    assert [v["Name"] for v in body["Volumes"]] == ["named", "empty"]
    assert body["BuildCache"] == []
    body = api.get("/system/df?type=image").json()
    assert body["BuildCache"] is None and body["Volumes"] is None and len(body["Images"]) == 4
    reply = api.get("/system/df?type=bogus")
    assert reply.status_code == 400
    assert reply.json() == {"message": "unknown object type: bogus"}
