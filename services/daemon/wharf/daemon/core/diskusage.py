"""Disk usage (``GET /system/df``, ``docker system df``): what the images, containers, volumes
and build cache take on disk, counted as dockerd counts them.

- Images: ``Size`` is the image's layers; ``SharedSize`` the part of it in layers that another
  listed image uses too; ``Containers`` the containers (in any state) made from it.
  ``LayersSize`` is every distinct layer of the listed images, each once.
- Containers: ``SizeRw`` is the bytes of the files in the container's overlay upper dir, each
  hard-linked inode once (moby's ``directory.Size``); ``SizeRootFs`` adds its image's size.
- Volumes: ``UsageData.Size`` is the bytes under a ``local`` volume's ``_data`` dir (-1 for other
  drivers), ``RefCount`` the containers that use it.
- Build cache: :func:`build_cache_usage`, the one place the build cache reports to ``df``.

Walking the upper dirs and volumes reads the disk: callers run :func:`disk_usage` in a thread.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from wharf.daemon.core.containers.records import ContainerRecord
from wharf.daemon.core.images.store import ImageRecord
from wharf.daemon.core.volumes.store import Volume, dir_size
from wharf.dockerapi import unix_seconds
from wharf.errors import InvalidArgument, NotFound

if TYPE_CHECKING:
    from wharf.daemon.core.engine import Engine

# The ``type`` values of ``GET /system/df`` (API 1.42), dockerd's names.
KINDS = ("container", "image", "volume", "build-cache")


class ImageSource(Protocol):
    """What disk usage reads of the images (``ImageService``)."""

    def list_images(self) -> list[ImageRecord]: ...

    def layers(self, record: ImageRecord) -> list[tuple[str, int]]: ...


class ContainerSource(Protocol):
    """What disk usage reads of the containers (``ContainerService``)."""

    def list_containers(self) -> list[ContainerRecord]: ...

    def upper_dir(self, record: ContainerRecord) -> Path: ...


class VolumeSource(Protocol):
    """What disk usage reads of the volumes (``VolumeService``)."""

    def find(self, filters: Mapping[str, list[str]]) -> list[Volume]: ...

    def users(self, name: str) -> list[str]: ...


@dataclass(frozen=True)
class ImageUsage:
    record: ImageRecord
    shared_size: int
    containers: int


@dataclass(frozen=True)
class ContainerUsage:
    record: ContainerRecord
    size_rw: int
    size_root_fs: int


@dataclass(frozen=True)
class VolumeUsage:
    volume: Volume
    size: int
    ref_count: int


@dataclass(frozen=True)
class BuildCacheEntry:
    """One build cache record, with the fields of Docker's ``BuildCache`` object (API 1.41)."""

    id: str
    type: str  # dockerd's "regular", "source.local", "internal", "frontend"…
    description: str
    size: int
    created_at: str  # RFC 3339
    last_used_at: str | None  # RFC 3339; None when never used since it was made
    usage_count: int
    in_use: bool = False
    shared: bool = False
    parent: str = ""


@dataclass(frozen=True)
class BuildCacheUsage:
    """``BuildCache`` and ``BuilderSize`` (at API < 1.42 the sum of every entry's size)."""

    entries: list[BuildCacheEntry]
    builder_size: int

    @classmethod
    def of(cls, entries: Iterable[BuildCacheEntry]) -> BuildCacheUsage:
        listed = list(entries)
        return cls(listed, sum(e.size for e in listed))


@dataclass(frozen=True)
class DiskUsage:
    """The whole report; a part not asked for (``type=``) is None, as dockerd leaves it null."""

    layers_size: int
    images: list[ImageUsage] | None
    containers: list[ContainerUsage] | None
    volumes: list[VolumeUsage] | None
    build_cache: BuildCacheUsage | None = None


def parse_kinds(values: Sequence[str] | None) -> frozenset[str]:
    """The ``type`` query values; none means everything (and API 1.41 clients send none)."""
    if not values:
        return frozenset(KINDS)
    for value in values:
        if value not in KINDS:
            raise InvalidArgument(f"unknown object type: {value}")
    return frozenset(values)


def build_cache_usage(engine: Engine) -> BuildCacheUsage:
    """The build cache's entries (``core/build/cache.py``: one per cached step) and
    ``BuilderSize`` for ``GET /system/df``: a step's size is the layer it added."""
    if engine.builds is None:
        return BuildCacheUsage.of([])
    return BuildCacheUsage.of(
        BuildCacheEntry(id=e.key.removeprefix("sha256:")[:25], type="regular",
                        description=e.description, size=e.size, created_at=e.created_at,
                        last_used_at=e.last_used if e.uses else None, usage_count=e.uses,
                        in_use=e.in_use, parent=e.parent)
        for e in engine.builds.cache.entries())


def disk_usage(engine: Engine, kinds: frozenset[str]) -> DiskUsage:
    """The report for ``kinds`` (see :data:`KINDS`), build cache included."""
    usage = collect(engine.images, engine.containers, engine.volumes, kinds)
    if "build-cache" in kinds:
        usage = replace(usage, build_cache=build_cache_usage(engine))
    return usage


def collect(images: ImageSource, containers: ContainerSource, volumes: VolumeSource,
            kinds: frozenset[str]) -> DiskUsage:
    """Images, containers and volumes for ``kinds``; newest image and container first."""
    records = sorted(images.list_images(), key=lambda r: unix_seconds(r.created), reverse=True)
    parents = {r.parent for r in records}  # a build's untagged steps are cache, not images
    records = [r for r in records if r.tags or r.repo_digests or r.id not in parents]
    container_records = containers.list_containers()
    layers_size, image_part = 0, None
    if "image" in kinds:
        layers = {r.id: chain_sizes(images, r) for r in records}
        counts = Counter(c.image_id for c in container_records)
        layers_size, image_part = image_usage(records, layers, counts)
    container_part = None
    if "container" in kinds:
        image_sizes = {r.id: r.size for r in records}
        container_part = [
            container_usage(c, containers.upper_dir(c), image_sizes.get(c.image_id, 0))
            for c in sorted(container_records, key=lambda c: unix_seconds(c.created_at),
                            reverse=True)]
    volume_part = None
    if "volume" in kinds:
        volume_part = [volume_usage(v, len(volumes.users(v.name))) for v in volumes.find({})]
    return DiskUsage(layers_size, image_part, container_part, volume_part)


def chain_sizes(images: ImageSource, record: ImageRecord) -> list[tuple[str, int]]:
    """(chain ID, size) of each of the image's layers, bottom first; none when the store lacks
    a layer record (``wharf system check`` reports that; ``df`` still lists the image)."""
    try:
        sizes = [size for _, size in images.layers(record)]
    except NotFound:
        return []
    return list(zip(record.chain_ids, sizes, strict=False))


def image_usage(records: Sequence[ImageRecord], layers: Mapping[str, list[tuple[str, int]]],
                containers: Mapping[str, int]) -> tuple[int, list[ImageUsage]]:
    """(``LayersSize``, each image's usage): a layer is shared when more than one of
    ``records`` has it (``layers``: image ID → its chain sizes; ``containers``: image ID →
    containers made from it)."""
    refs = Counter(chain for record in records for chain, _ in layers.get(record.id, []))
    sizes = {chain: size for record in records for chain, size in layers.get(record.id, [])}
    usage = [ImageUsage(record,
                        sum(size for chain, size in layers.get(record.id, []) if refs[chain] > 1),
                        containers.get(record.id, 0))
             for record in records]
    return sum(sizes.values()), usage


def container_usage(record: ContainerRecord, upper_dir: Path, image_size: int
                    ) -> ContainerUsage:
    """``SizeRw`` from the upper dir (0 before the first start made one), ``SizeRootFs``."""
    size_rw = container_size(upper_dir)
    return ContainerUsage(record, size_rw, image_size + size_rw)


def container_size(upper_dir: Path) -> int:
    """Bytes a container wrote (``SizeRw``; also what ``ps -s`` and ``inspect --size`` show)."""
    return dir_size(upper_dir) if upper_dir.is_dir() else 0


def volume_usage(volume: Volume, ref_count: int) -> VolumeUsage:
    """Only the ``local`` driver's size is known; dockerd reports -1 for other drivers."""
    size = dir_size(volume.mountpoint) if volume.driver == "local" else -1
    return VolumeUsage(volume, size, ref_count)
