"""Exec routes: create, inspect, resize, and a detached start (attached starts are hijacked).

A TTY exec's window size: ``ConsoleSize`` ([height, width], API 1.42) in the create or the
start body, and ``POST /exec/{id}/resize``. A size that arrives before the process exists (the
docker and wharf CLIs resize as soon as the hijacked start has answered 101, which is before
the process is started) is kept in the exec's ``ConsoleSize`` and given to its pty as soon as
it starts (:func:`apply_console_size`); later ones resize the pty at once.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Request
from fastapi.responses import Response

from wharf.daemon.core.containers.execs import ExecRecord, ExecService
from wharf.dockerapi import qint
from wharf.errors import InvalidArgument

router = APIRouter()


def _execs(request: Request) -> ExecService:
    service: ExecService = request.app.state.engine.execs
    return service


Execs = Annotated[ExecService, Depends(_execs)]


@router.post("/containers/{name}/exec", status_code=201)
async def create(execs: Execs, name: str, body: Annotated[dict[str, Any], Body()]
                 ) -> dict[str, str]:
    request = dict(body)
    size = console_size(request.pop("ConsoleSize", None))
    if size is not None:  # kept only as a checked [height, width]
        request["ConsoleSize"] = list(size)
    return {"Id": execs.create(name, request).id}


@router.get("/exec/{exec_id}/json")
async def inspect(execs: Execs, exec_id: str) -> dict[str, Any]:
    return exec_inspect(execs.get(exec_id))


@router.post("/exec/{exec_id}/resize")
async def resize(execs: Execs, exec_id: str, h: str | None = None, w: str | None = None
                 ) -> Response:
    record = execs.get(exec_id)
    height, width = qint(h, "h", 0), qint(w, "w", 0)
    if height > 0 and width > 0:
        set_console_size(record, (height, width))
    return Response(status_code=200)


@router.post("/exec/{exec_id}/start")
async def start_detached(execs: Execs, exec_id: str,
                         body: Annotated[dict[str, Any] | None, Body()] = None) -> Response:
    """``docker exec -d``: start and return; the exit is recorded in the background."""
    take_start_size(execs.check_startable(exec_id), body or {})
    record = await execs.start(exec_id, stdin=False)
    apply_console_size(record)
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


def console_size(value: object) -> tuple[int, int] | None:
    """Docker's ``ConsoleSize`` as (height, width); None when absent or ``[0, 0]`` (no size).

    Raises:
        InvalidArgument: not two non-negative integers.
    """
    if value is None:
        return None
    if (not isinstance(value, list) or len(value) != 2
            or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0
                       for n in value)):
        raise InvalidArgument(f"invalid ConsoleSize {value!r}: want [height, width]")
    height, width = value
    return (height, width) if height > 0 and width > 0 else None


def take_start_size(record: ExecRecord, body: dict[str, Any]) -> None:
    """A start body's ``ConsoleSize`` replaces the one from create (as in dockerd).

    Raises:
        InvalidArgument: a malformed ``ConsoleSize``.
    """
    if (size := console_size(body.get("ConsoleSize"))) is not None:
        record.request["ConsoleSize"] = list(size)


def set_console_size(record: ExecRecord, size: tuple[int, int]) -> None:
    """Resize a TTY exec's pty now, or keep the size for its start when it has not started;
    a no-op without a TTY."""
    if not record.tty:
        return
    record.request["ConsoleSize"] = list(size)
    if record.process is not None:
        record.process.resize(*size)


def apply_console_size(record: ExecRecord) -> None:
    """Give a just-started TTY exec's pty the size it was asked for before it started."""
    size = record.request.get("ConsoleSize")
    if record.tty and record.process is not None and size:
        record.process.resize(int(size[0]), int(size[1]))


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
