"""Volume routes: list, create, inspect, remove, prune (Docker Engine API v1.41), and wharf's
own export and import of a volume's data (Podman's libpod ``/volumes/{name}/export|import``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from wharf.daemon.adapters.api.params import Filters
from wharf.daemon.adapters.api.streaming import StreamingReply, spool_body
from wharf.daemon.core import prunefilter
from wharf.daemon.core.engine import Engine
from wharf.daemon.core.volumes.options import string_map
from wharf.daemon.core.volumes.service import PRUNE_KEYS, VolumeService
from wharf.daemon.core.volumes.store import Volume
from wharf.daemon.core.volumes.transfer import VolumeTransfer
from wharf.dockerapi import qbool
from wharf.errors import InvalidArgument

router = APIRouter()


def _volumes(request: Request) -> VolumeService:
    service: VolumeService = request.app.state.engine.volumes
    return service


Volumes = Annotated[VolumeService, Depends(_volumes)]


def _transfer(request: Request) -> VolumeTransfer:
    """Export/import over the engine's volumes; uploads spool where ``docker cp``'s do."""
    engine: Engine = request.app.state.engine
    return VolumeTransfer(engine.volumes, Path(engine.data_root) / "tmp")


Transfer = Annotated[VolumeTransfer, Depends(_transfer)]


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


@router.get("/volumes/{name}/export")
async def export(transfer: Transfer, name: str) -> Response:
    chunks = await run_in_threadpool(transfer.export, name)
    return StreamingReply(chunks, media_type="application/x-tar")


@router.post("/volumes/{name}/import", status_code=204)
async def import_tar(request: Request, transfer: Transfer, name: str) -> Response:
    transfer.local(name, "import")  # 404 or 400 before reading a body that would be thrown away
    spool = await spool_body(request, transfer.tmp_dir, "volume-")
    try:
        await run_in_threadpool(transfer.extract, name, spool)
    finally:
        spool.unlink(missing_ok=True)
    return Response(status_code=204)
