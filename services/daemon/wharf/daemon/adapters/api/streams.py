"""Hijacked routes: ``POST /containers/{id}/attach`` (and, with exec, ``/exec/{id}/start``).

After ``101 UPGRADED`` the connection carries the container's output (8-byte multiplexed frames,
or raw bytes for a TTY) and the client's stdin (always raw). A client may attach before start
(``docker run`` does): the attacher then waits until conmon has created the container, connects
to conmon's attach socket, and only then does the engine start the process — nothing is missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import re

from wharf.daemon.adapters.api.execs import apply_console_size, take_start_size
from wharf.daemon.core.containers.execs import ExecService
from wharf.daemon.core.containers.lifecycle import Status
from wharf.daemon.core.containers.ports import AttachConnection, ExecProcess
from wharf.daemon.core.containers.records import ContainerRecord
from wharf.daemon.core.containers.service import ContainerService
from wharf.dockerapi import STDERR, STDOUT, STREAMS, frame, qbool
from wharf.errors import Conflict, WharfError
from wharf.hijack import HijackRequest, HijackStream

_ATTACH = re.compile(r"/containers/([^/]+)/attach")
_EXEC_START = re.compile(r"/exec/([^/]+)/start")


class StreamDispatcher:
    """Claims the hijack routes and serves them from the engine's container service."""

    def __init__(self, containers: ContainerService, execs: ExecService) -> None:
        self.containers = containers
        self.execs = execs

    def matches(self, request: HijackRequest) -> bool:
        return request.method == "POST" and bool(
            _ATTACH.fullmatch(request.path) or _EXEC_START.fullmatch(request.path))

    async def __call__(self, request: HijackRequest, stream: HijackStream) -> None:
        if match := _ATTACH.fullmatch(request.path):
            await self.attach(match.group(1), request, stream)
        elif match := _EXEC_START.fullmatch(request.path):
            await self.exec_start(match.group(1), request, stream)

    async def exec_start(self, exec_id: str, request: HijackRequest,
                         stream: HijackStream) -> None:
        """Run the exec with its I/O on the hijacked connection; record the exit code before
        closing it (the CLI inspects the exec right after EOF). Its pty gets the size from the
        start body, the create body or a resize that came first."""
        record = self.execs.check_startable(exec_id)
        take_start_size(record, request.json())
        want_stdin = bool(record.request.get("AttachStdin"))
        # 101 first, then the process: output must not share a read with the 101's headers
        # (docker-py drops what its HTTP reader buffered past them), as dockerd orders it.
        await stream.upgrade()
        try:
            started = await self.execs.start(exec_id, stdin=want_stdin)
        except WharfError as exc:
            message = exc.message.encode() + b"\r\n"
            await stream.write(message if record.tty else frame(STDERR, message))
            return
        process = started.process
        assert process is not None
        apply_console_size(started)
        feeder = asyncio.get_running_loop().create_task(
            _exec_stdin(process, stream)) if want_stdin else None
        try:
            while (item := await process.read()) is not None:
                name, data = item
                await stream.write(data if record.tty else frame(STREAMS[name], data))
        finally:
            if feeder is not None:
                feeder.cancel()
                with contextlib.suppress(asyncio.CancelledError, ConnectionError, OSError):
                    await feeder
            await self.execs.finish(started)
        if process.start_error:  # dockerd writes the runtime's refusal into the stream
            message = process.start_error.encode() + b"\r\n"
            await stream.write(message if record.tty else frame(STDOUT, message))

    async def attach(self, name: str, request: HijackRequest, stream: HijackStream) -> None:
        record = self.containers.get(name)
        status = record.state.status
        if status in (Status.EXITED, Status.DEAD) and not qbool(request.param("logs")):
            raise Conflict("You cannot attach to a stopped container, start it first")
        want_stdin = qbool(request.param("stdin")) and bool(record.config.get("OpenStdin"))
        if status is Status.CREATED:
            ready, connected = self.containers.announce_attacher(record.id)
            await stream.upgrade()
            await ready.wait()
        else:
            connected = asyncio.Event()
            await stream.upgrade()
        try:
            conn = await self.containers.open_attach(record)
        except WharfError:
            return  # the start failed: the client learns why from start and wait
        finally:
            connected.set()
        try:
            await _pump(conn, stream, record, want_stdin, request)
        finally:
            conn.close()


async def _pump(conn: AttachConnection, stream: HijackStream, record: ContainerRecord,
                want_stdin: bool, request: HijackRequest) -> None:
    tty = bool(record.config.get("Tty"))
    wanted = {s for s in ("stdout", "stderr") if qbool(request.param(s, "1"))}
    stdin_task = asyncio.get_running_loop().create_task(
        _stdin(conn, stream, bool(record.config.get("StdinOnce")))) if want_stdin else None
    try:
        while (item := await conn.recv()) is not None:
            name, data = item
            if name in wanted:
                await stream.write(data if tty else frame(STREAMS[name], data))
    finally:
        if stdin_task is not None:
            stdin_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await stdin_task


async def _exec_stdin(process: ExecProcess, stream: HijackStream) -> None:
    while data := await stream.read():
        await process.write(data)
    await process.close_stdin()


async def _stdin(conn: AttachConnection, stream: HijackStream, once: bool) -> None:
    while data := await stream.read():
        await conn.send(data)
    if once:
        await conn.close_stdin()
