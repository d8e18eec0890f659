"""Volume routes: list, create, inspect, remove, prune (Docker Engine API v1.41)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Request
from fastapi.responses import Response

from wharf.daemon.adapters.api.params import Filters
from wharf.daemon.core import prunefilter
from wharf.daemon.core.volumes.options import string_map
from wharf.daemon.core.volumes.service import PRUNE_KEYS, VolumeService
from wharf.daemon.core.volumes.store import Volume
from wharf.dockerapi import qbool
from wharf.errors import InvalidArgument

router = APIRouter()


def _volumes(request: Request) -> VolumeService:
    service: VolumeService = request.app.state.engine.volumes
    return service


Volumes = Annotated[VolumeService, Depends(_volumes)]


def volume_shape(volume: Volume, usage: tuple[int, int] | None = None) -> dict[str, Any]:
    """Docker's Volume object; ``usage`` (size, ref count) adds ``UsageData``."""
    shape: dict[str, Any] = {
        "CreatedAt": volume.created_at,
        "Driver": volume.driver,
        "Labels": volume.labels,
        "Mountpoint": str(volume.mountpoint),
        "Name": volume.name,
        "Options": volume.options,
        "Scope": "local",
    }
    if usage is not None:
        shape["UsageData"] = {"Size": usage[0], "RefCount": usage[1]}
    return shape


@router.get("/volumes")
async def list_volumes(volumes: Volumes, filters: Filters) -> dict[str, Any]:
    return {"Volumes": [volume_shape(v) for v in volumes.find(filters)], "Warnings": []}


@router.post("/volumes/create", status_code=201)
async def create(volumes: Volumes, body: Annotated[Any, Body()] = None) -> dict[str, Any]:
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise InvalidArgument("the volume create body must be a JSON object")
    if body.get("ClusterVolumeSpec"):  # other unknown keys are ignored, as dockerd does
        raise InvalidArgument("cluster volumes are not supported: this node is not a swarm "
                              "manager")
    name, driver = body.get("Name") or "", body.get("Driver") or ""
    if not isinstance(name, str) or not isinstance(driver, str):
        raise InvalidArgument("Name and Driver must be strings")
    volume = volumes.create(name or None, driver,
                            string_map(body.get("DriverOpts"), "DriverOpts"),
                            string_map(body.get("Labels"), "Labels"))
    return volume_shape(volume)


@router.post("/volumes/prune")
async def prune(volumes: Volumes, filters: Filters) -> dict[str, Any]:
    wanted = prunefilter.parse(filters, extra=PRUNE_KEYS, until=False)
    removed, space = await volumes.prune(wanted)
    return {"VolumesDeleted": removed or None, "SpaceReclaimed": space}


@router.get("/volumes/{name}")
async def inspect(volumes: Volumes, name: str) -> dict[str, Any]:
    return volume_shape(volumes.get(name))


@router.delete("/volumes/{name}", status_code=204)
async def remove(volumes: Volumes, name: str, force: str | None = None) -> Response:
    await volumes.remove(name, force=qbool(force))
    return Response(status_code=204)
