"""Container routes: create, list, inspect, start/stop/kill/restart, wait, logs, rm, rename."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from wharf.daemon.adapters.api.params import Filters
from wharf.daemon.adapters.api.streaming import StreamingReply
from wharf.daemon.adapters.views import containers as shapes
from wharf.daemon.core import prunefilter
from wharf.daemon.core.containers import observe
from wharf.daemon.core.containers.filters import select
from wharf.daemon.core.containers.service import ContainerService
from wharf.dockerapi import STREAMS, frame, parse_time, qbool, qint
from wharf.errors import Conflict, InvalidArgument, WharfError

router = APIRouter()


def _containers(request: Request) -> ContainerService:
    service: ContainerService = request.app.state.engine.containers
    return service


Containers = Annotated[ContainerService, Depends(_containers)]


@router.post("/containers/create", status_code=201)
async def create(containers: Containers, body: Annotated[dict[str, Any], Body()],
                 name: str = "") -> dict[str, Any]:
    record = containers.create(body, name or None)
    return {"Id": record.id, "Warnings": []}


@router.get("/containers/json")
async def list_containers(containers: Containers, filters: Filters, all: str | None = None,
                          limit: str | None = None, size: str | None = None,
                          ) -> list[dict[str, Any]]:
    del size
    records = select(containers.list_containers(), all=qbool(all), filters=filters)
    count = qint(limit, "limit", -1)
    if count > 0:
        records = records[:count]
    return [shapes.container_summary(r) for r in records]


@router.get("/containers/{name}/json")
async def inspect(containers: Containers, name: str) -> dict[str, Any]:
    record = containers.get(name)
    return shapes.container_inspect(record, str(containers.container_dir(record)),
                                    str(containers.log_path(record)))


@router.post("/containers/{name}/start", status_code=204)
async def start(containers: Containers, name: str) -> Response:
    await containers.start(name)
    return Response(status_code=204)


@router.post("/containers/{name}/stop", status_code=204)
async def stop(containers: Containers, name: str, t: str | None = None,
               signal: str | None = None) -> Response:
    await containers.stop(name, qint(t, "t", 10) if t else None, signal)
    return Response(status_code=204)


@router.post("/containers/{name}/restart", status_code=204)
async def restart(containers: Containers, name: str, t: str | None = None) -> Response:
    await containers.restart(name, qint(t, "t", 10) if t else None)
    return Response(status_code=204)


@router.post("/containers/{name}/kill", status_code=204)
async def kill(containers: Containers, name: str, signal: str | None = None) -> Response:
    await containers.kill(name, signal)
    return Response(status_code=204)


@router.post("/containers/{container}/rename", status_code=204)
async def rename(containers: Containers, container: str, name: str = "") -> Response:
    if not name:
        raise InvalidArgument("the new name is required (?name=)")
    containers.rename(container, name)
    return Response(status_code=204)


@router.post("/containers/{name}/resize")
async def resize(containers: Containers, name: str, h: str | None = None,
                 w: str | None = None) -> Response:
    record = containers.get(name)
    height, width = qint(h, "h", 0), qint(w, "w", 0)
    if height > 0 and width > 0 and record.config.get("Tty"):
        # not running yet or already gone: docker sends resizes eagerly
        with contextlib.suppress(WharfError):
            containers.resize(record, height, width)
    return Response(status_code=200)


@router.post("/containers/{name}/wait")
async def wait(containers: Containers, name: str, condition: str = "") -> Response:
    """Headers go out at once (docker 20.10 waits for them before it starts the container)."""
    containers.get(name)  # 404 before the stream starts

    async def body() -> AsyncIterator[bytes]:
        try:
            code = await containers.wait(name, condition)
            payload: dict[str, Any] = {"Error": None, "StatusCode": code}
        except WharfError as exc:
            payload = {"Error": {"Message": exc.message}, "StatusCode": -1}
        yield json.dumps(payload).encode() + b"\n"

    return StreamingReply(body(), media_type="application/json")


@router.delete("/containers/{name}", status_code=204)
async def remove(containers: Containers, name: str, force: str | None = None,
                 v: str | None = None) -> Response:
    await containers.remove(name, force=qbool(force), volumes=qbool(v))
    return Response(status_code=204)


@router.post("/containers/prune")
async def prune(containers: Containers, filters: Filters) -> dict[str, Any]:
    removed, space = await containers.prune(prunefilter.parse(filters))
    return {"ContainersDeleted": removed if removed else None, "SpaceReclaimed": space}


@router.get("/containers/{name}/logs")
async def logs(request: Request, containers: Containers, name: str) -> Response:
    q = request.query_params
    record = containers.get(name)
    stdout, stderr = qbool(q.get("stdout")), qbool(q.get("stderr"))
    if not (stdout or stderr):
        raise InvalidArgument("You must choose at least one stream")
    tail_text = q.get("tail", "all")
    tail = None if tail_text in ("", "all") else qint(tail_text, "tail", 0)
    since = _time_param(q.get("since"))
    until = _time_param(q.get("until"))
    timestamps, tty = qbool(q.get("timestamps")), bool(record.config.get("Tty"))
    options = {"stdout": stdout, "stderr": stderr, "since": since, "until": until,
               "tail": tail}
    follow = containers.follow_logs(record, **options) if qbool(q.get("follow")) else None

    async def body() -> AsyncIterator[bytes]:
        if follow is not None:
            async for entry in follow:
                yield _log_chunk(entry, timestamps, tty)
        else:
            for entry in containers.read_logs(record, **options):
                yield _log_chunk(entry, timestamps, tty)

    return StreamingReply(body(), headers={"Content-Type": ""})


def _log_chunk(entry: Any, timestamps: bool, tty: bool) -> bytes:
    data = (entry.timestamp.encode() + b" " + entry.data) if timestamps else entry.data
    return data if tty else frame(STREAMS[entry.stream], data)


def _time_param(value: str | None) -> float | None:
    """``since``/``until``: unix seconds (with fraction) or RFC 3339; 0 or absent = unset."""
    if not value or value == "0":
        return None
    try:
        return float(value)
    except ValueError:
        return parse_time(value).timestamp()



@router.post("/containers/{name}/pause", status_code=204)
async def pause(containers: Containers, name: str) -> Response:
    await containers.pause(name)
    return Response(status_code=204)


@router.post("/containers/{name}/unpause", status_code=204)
async def unpause(containers: Containers, name: str) -> Response:
    await containers.pause(name, resume=True)
    return Response(status_code=204)


@router.get("/containers/{name}/top")
async def top(containers: Containers, name: str, ps_args: str = "-ef") -> dict[str, Any]:
    record = containers.get(name)
    if record.state.status.value not in ("running", "paused"):
        raise Conflict(f"Container {name} is not running")
    return await run_in_threadpool(observe.top, record.id, ps_args)


@router.get("/containers/{name}/stats")
async def stats(containers: Containers, name: str, stream: str | None = None) -> Response:
    record = containers.get(name)
    if qbool(stream if stream is not None else "1"):
        async def body() -> AsyncIterator[bytes]:
            while containers.is_running(record.id)():
                doc = await run_in_threadpool(observe.stats, record.id, record.name)
                yield json.dumps(doc).encode() + b"\n"
                await asyncio.sleep(0.9)
        return StreamingReply(body(), media_type="application/json")
    doc = await run_in_threadpool(observe.stats, record.id, record.name)
    return Response(json.dumps(doc), media_type="application/json")
