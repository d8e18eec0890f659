"""Archive routes (``docker cp``), ``GET /containers/{id}/changes`` (``docker diff``) and
``GET /containers/{id}/export`` (``docker export``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from wharf.daemon.adapters.api.streaming import StreamingReply, spool_body
from wharf.daemon.core.containers.archive import STAT_HEADER, ContainerArchive
from wharf.daemon.core.containers.export import export
from wharf.daemon.core.engine import Engine
from wharf.dockerapi import qbool
from wharf.errors import InvalidArgument

router = APIRouter()


def _archive(request: Request) -> ContainerArchive:
    """One ContainerArchive per app (it serialises the mounts of stopped containers)."""
    state = request.app.state
    archive: ContainerArchive | None = getattr(state, "container_archive", None)
    if archive is None:
        engine: Engine = state.engine
        archive = ContainerArchive(engine.containers, Path(engine.data_root) / "tmp")
        state.container_archive = archive
    return archive


Archive = Annotated[ContainerArchive, Depends(_archive)]


def _path(path: str | None) -> str:
    if not path:
        raise InvalidArgument("path is required")  # dockerd's words for a missing ?path=
    return path


@router.head("/containers/{name}/archive")
async def stat_path(archive: Archive, name: str, path: str | None = None) -> Response:
    info = await run_in_threadpool(archive.stat, name, _path(path))
    return Response(status_code=200, headers={STAT_HEADER: info.header()})


@router.get("/containers/{name}/archive")
async def get_archive(archive: Archive, name: str, path: str | None = None) -> Response:
    info, chunks = await run_in_threadpool(archive.read, name, _path(path))
    return StreamingReply(chunks, media_type="application/x-tar",
                          headers={STAT_HEADER: info.header()})


@router.put("/containers/{name}/archive")
async def put_archive(request: Request, archive: Archive, name: str, path: str | None = None,
                      noOverwriteDirNonDir: str | None = None,  # noqa: N803 - Docker's name
                      copyUIDGID: str | None = None) -> Response:  # noqa: N803
    target = _path(path)
    archive.containers.get(name)  # 404 before reading a body that would be thrown away
    spool = await spool_body(request, archive.tmp_dir, "cp-")
    try:
        await run_in_threadpool(archive.extract, name, target, spool,
                                no_overwrite_dir_non_dir=qbool(noOverwriteDirNonDir),
                                copy_uid_gid=qbool(copyUIDGID))
    finally:
        spool.unlink(missing_ok=True)
    return Response(status_code=200)


@router.get("/containers/{name}/changes")
async def changes(archive: Archive, name: str) -> list[dict[str, Any]]:
    found = await run_in_threadpool(archive.changes, name)
    return [change.docker() for change in found]


@router.get("/containers/{name}/export")
async def export_container(archive: Archive, name: str) -> Response:
    chunks = await run_in_threadpool(export, archive, name)
    return StreamingReply(chunks, media_type="application/x-tar")
