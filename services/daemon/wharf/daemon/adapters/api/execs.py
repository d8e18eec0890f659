"""Exec routes: create, inspect, resize, and a detached start (attached starts are hijacked)."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Request
from fastapi.responses import Response

from wharf.daemon.core.containers.execs import ExecRecord, ExecService
from wharf.dockerapi import qint

router = APIRouter()


def _execs(request: Request) -> ExecService:
    service: ExecService = request.app.state.engine.execs
    return service


Execs = Annotated[ExecService, Depends(_execs)]


@router.post("/containers/{name}/exec", status_code=201)
async def create(execs: Execs, name: str, body: Annotated[dict[str, Any], Body()]
                 ) -> dict[str, str]:
    return {"Id": execs.create(name, body).id}


@router.get("/exec/{exec_id}/json")
async def inspect(execs: Execs, exec_id: str) -> dict[str, Any]:
    return exec_inspect(execs.get(exec_id))


@router.post("/exec/{exec_id}/resize")
async def resize(execs: Execs, exec_id: str, h: str | None = None, w: str | None = None
                 ) -> Response:
    record = execs.get(exec_id)
    height, width = qint(h, "h", 0), qint(w, "w", 0)
    if record.process is not None and record.tty and height > 0 and width > 0:
        record.process.resize(height, width)
    return Response(status_code=200)


@router.post("/exec/{exec_id}/start")
async def start_detached(execs: Execs, exec_id: str) -> Response:
    """``docker exec -d``: start and return; the exit is recorded in the background."""
    record = await execs.start(exec_id, stdin=False)
    task = asyncio.get_running_loop().create_task(_drain_and_finish(execs, record))
    _background.add(task)
    task.add_done_callback(_background.discard)
    return Response(status_code=200)


_background: set[asyncio.Task[int]] = set()


async def _drain_and_finish(execs: ExecService, record: ExecRecord) -> int:
    assert record.process is not None
    while await record.process.read() is not None:
        pass
    return await execs.finish(record)


def exec_inspect(record: ExecRecord) -> dict[str, Any]:
    cmd = list(record.request.get("Cmd") or [])
    return {
        "ID": record.id,
        "Running": record.running,
        "ExitCode": record.exit_code,
        "ProcessConfig": {"tty": record.tty, "entrypoint": cmd[0] if cmd else "",
                          "arguments": cmd[1:], "privileged": bool(
                              record.request.get("Privileged")),
                          "user": record.request.get("User", "")},
        "OpenStdin": bool(record.request.get("AttachStdin")),
        "OpenStderr": bool(record.request.get("AttachStderr")),
        "OpenStdout": bool(record.request.get("AttachStdout")),
        "CanRemove": False,
        "ContainerID": record.container_id,
        "DetachKeys": "",
        "Pid": record.pid,
    }
