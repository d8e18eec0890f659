"""Docker Engine API JSON shapes for disk usage (``GET /system/df``, API 1.41).

The images and containers are their list entries (``/images/json``, ``/containers/json``) with
the sizes dockerd adds for ``df``; ``SizeRw`` and ``SizeRootFs`` are left out when 0, as
dockerd's ``omitempty`` leaves them. Volumes are shaped by the API's volume routes.
"""

from __future__ import annotations

from typing import Any

from wharf.daemon.adapters.views.containers import container_summary
from wharf.daemon.adapters.views.images import image_summary
from wharf.daemon.core.diskusage import (
    BuildCacheEntry,
    ContainerUsage,
    DiskUsage,
    ImageUsage,
)


def image_entry(usage: ImageUsage) -> dict[str, Any]:
    return {**image_summary(usage.record, usage.containers), "SharedSize": usage.shared_size}


def container_entry(usage: ContainerUsage) -> dict[str, Any]:
    entry = container_summary(usage.record)
    if usage.size_rw:
        entry["SizeRw"] = usage.size_rw
    if usage.size_root_fs:
        entry["SizeRootFs"] = usage.size_root_fs
    return entry


def build_cache_entry(entry: BuildCacheEntry) -> dict[str, Any]:
    """Docker's ``BuildCache`` object as API 1.41 has it (``Parent``, not ``Parents``)."""
    return {"ID": entry.id, "Parent": entry.parent, "Type": entry.type,
            "Description": entry.description, "InUse": entry.in_use, "Shared": entry.shared,
            "Size": entry.size, "CreatedAt": entry.created_at, "LastUsedAt": entry.last_used_at,
            "UsageCount": entry.usage_count}


def disk_usage(usage: DiskUsage, volumes: list[dict[str, Any]] | None) -> dict[str, Any]:
    """The ``/system/df`` document; ``volumes`` are already shaped (with ``UsageData``)."""
    cache = usage.build_cache
    return {
        "LayersSize": usage.layers_size,
        "Images": None if usage.images is None else [image_entry(i) for i in usage.images],
        "Containers": None if usage.containers is None else [
            container_entry(c) for c in usage.containers],
        "Volumes": volumes,
        "BuildCache": None if cache is None else [build_cache_entry(e) for e in cache.entries],
        "BuilderSize": 0 if cache is None else cache.builder_size,
    }
