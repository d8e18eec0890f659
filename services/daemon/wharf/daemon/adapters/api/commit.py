"""``POST /commit`` (``docker commit``): a new image from a container's changes."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from wharf.daemon.core.containers.lifecycle import Status
from wharf.daemon.core.containers.records import ContainerRecord
from wharf.daemon.core.containers.service import ContainerService
from wharf.daemon.core.engine import Engine
from wharf.daemon.core.images.commit import CommitSource
from wharf.dockerapi import qbool
from wharf.errors import InvalidArgument

router = APIRouter()


@router.post("/commit", status_code=201)
async def commit(request: Request, container: str = "", repo: str = "", tag: str = "",
                 comment: str = "", author: str = "", pause: str | None = None,
                 changes: Annotated[list[str] | None, Query()] = None) -> JSONResponse:
    engine: Engine = request.app.state.engine
    record = engine.containers.get(container)  # 404 before anything else
    config = _config(await request.body())
    source = CommitSource(container_id=record.id, image_id=record.image_id,
                          config=dict(record.config),
                          upper=engine.containers.upper_dir(record))
    freeze = pause is None or qbool(pause)  # Docker pauses unless told not to
    image_id = await engine.images.commit(
        source, repo=repo, tag=tag, comment=comment, author=author,
        changes=[c for c in changes or [] if c.strip()], config=config,
        frozen=_paused(engine.containers, record) if freeze else None)
    labels = {str(k): str(v) for k, v in (record.config.get("Labels") or {}).items()}
    image_ref = f"{repo}:{tag or 'latest'}" if repo else ""
    engine.events.emit("container", "commit", record.id, **labels, image=record.image,
                       name=record.name, comment=comment, imageID=image_id,
                       imageRef=image_ref)
    return JSONResponse({"Id": image_id}, status_code=201)


def _config(body: bytes) -> dict[str, Any] | None:
    """The Config to merge: the body, which may be empty or ``null``."""
    if not body.strip():
        return None
    try:
        parsed = json.loads(body)
    except ValueError as exc:
        raise InvalidArgument(f"invalid JSON body: {exc}") from exc
    if parsed is not None and not isinstance(parsed, dict):
        raise InvalidArgument("the body must be a container Config object")
    return parsed


@asynccontextmanager
async def _paused(containers: ContainerService, record: ContainerRecord
                  ) -> AsyncIterator[None]:
    """The container frozen while the block runs, when it runs (and was not paused already)."""
    current = containers.get(record.id)
    if current.state.status is not Status.RUNNING:
        yield
        return
    await containers.pause(record.id)
    try:
        yield
    finally:
        await containers.pause(record.id, resume=True)
