"""Docker Engine API JSON shapes for images (types exactly as the docker CLI decodes them)."""

from __future__ import annotations

from typing import Any

from wharf import reference
from wharf.daemon.core.images.service import ImageService
from wharf.daemon.core.images.store import ImageRecord
from wharf.dockerapi import unix_seconds
from wharf.errors import NotFound


def familiar_tag(name: str) -> str:
    ref = reference.parse(name)
    if ref.digest and not ref.tag:
        return f"{ref.familiar}@{ref.digest}"
    return f"{ref.familiar}:{ref.tag}"


def image_summary(record: ImageRecord, containers: int = -1) -> dict[str, Any]:
    config = record.config.get("config") or {}
    return {
        "Containers": containers,
        "Created": unix_seconds(record.created),
        "Id": record.id,
        "Labels": config.get("Labels"),
        "ParentId": record.parent,
        "RepoDigests": [familiar_tag(d) for d in record.repo_digests] or None,
        "RepoTags": [familiar_tag(t) for t in record.tags] or None,
        "SharedSize": -1,
        "Size": record.size,
        "VirtualSize": record.size,
    }


def image_inspect(record: ImageRecord, images: ImageService) -> dict[str, Any]:
    config = record.config
    container_config = _container_config(config.get("config") or {})
    diff_ids = [diff for diff, _ in images.layers(record)]
    return {
        "Id": record.id,
        "RepoTags": [familiar_tag(t) for t in record.tags],
        "RepoDigests": [familiar_tag(d) for d in record.repo_digests],
        "Parent": record.parent,
        "Comment": _last_comment(config),
        "Created": record.created,
        "Container": config.get("container", ""),
        "ContainerConfig": _container_config(config.get("container_config") or {}),
        "DockerVersion": config.get("docker_version", ""),
        "Author": config.get("author", ""),
        "Config": container_config,
        "Architecture": config.get("architecture", ""),
        "Variant": config.get("variant", ""),
        "Os": config.get("os", ""),
        "Size": record.size,
        "VirtualSize": record.size,
        "GraphDriver": {
            "Name": "overlay2",
            "Data": {"MergedDir": "", "UpperDir": images.top_layer_dir(record), "WorkDir": ""},
        },
        "RootFS": {"Type": "layers", "Layers": diff_ids},
        "Metadata": {"LastTagTime": record.last_tag_time or "0001-01-01T00:00:00Z"},
    }


def image_history(record: ImageRecord, images: ImageService) -> list[dict[str, Any]]:
    """Newest first; the top entry carries the image ID and tags, the next ones those of its
    parent, grandparent... while they are here (a build's steps), the rest ``<missing>``."""
    config = record.config
    sizes = [size for _, size in images.layers(record)]
    history = config.get("history") or [{"created": record.created} for _ in sizes]
    entries: list[dict[str, Any]] = []
    layer = 0
    for item in history:
        size = 0
        if not item.get("empty_layer") and layer < len(sizes):
            size, layer = sizes[layer], layer + 1
        entries.append({
            "Id": "<missing>",
            "Created": unix_seconds(item.get("created") or record.created),
            "CreatedBy": item.get("created_by", ""),
            "Tags": None,
            "Size": size,
            "Comment": item.get("comment", ""),
        })
    entries.reverse()
    current: ImageRecord | None = record
    for entry in entries:  # dockerd names each entry after the next image up the parents
        if current is None:
            break
        entry["Id"] = current.id
        entry["Tags"] = [familiar_tag(t) for t in current.tags] or None
        try:
            current = images.get(current.parent) if current.parent else None
        except NotFound:
            current = None
    return entries


_CONFIG_KEYS: dict[str, Any] = {
    "Hostname": "", "Domainname": "", "User": "", "AttachStdin": False, "AttachStdout": False,
    "AttachStderr": False, "ExposedPorts": None, "Tty": False, "OpenStdin": False,
    "StdinOnce": False, "Env": None, "Cmd": None, "Image": "", "Volumes": None,
    "WorkingDir": "", "Entrypoint": None, "OnBuild": None, "Labels": None,
}


def _container_config(config: dict[str, Any]) -> dict[str, Any]:
    out = dict(_CONFIG_KEYS)
    for key in out:
        if key in config:
            out[key] = config[key]
    for key in ("StopSignal", "Healthcheck", "Shell"):
        if key in config:
            out[key] = config[key]
    return out


def _last_comment(config: dict[str, Any]) -> str:
    history = config.get("history") or []
    return str(history[-1].get("comment", "")) if history else ""
