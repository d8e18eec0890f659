"""``docker exec``: extra processes in a running container, kept in memory like dockerd does.

An exec inherits the container's process settings from its config.json (user, environment,
capabilities, no-new-privileges), with the request's overrides on top. Health checks run the
same way (``ExecService.run_probe``, the containers' ``ProbeRunner``), with the same events but
no exec instance left behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from dataclasses import dataclass, field
from typing import Any

from wharf import ids
from wharf.daemon.core.containers.health import OutputBuffer
from wharf.daemon.core.containers.lifecycle import Op, next_status
from wharf.daemon.core.containers.observe import process_tree
from wharf.daemon.core.containers.service import ContainerService
from wharf.daemon.core.runtime.exec import ExecConfig, ExecProcess, start_exec
from wharf.daemon.core.runtime.users import UserIds, resolve_user
from wharf.errors import Conflict, Internal, InvalidArgument, NotFound

_PROBE_REAP = 10.0  # seconds the check waits for a probe it killed to end


@dataclass
class ExecRecord:
    id: str
    container_id: str
    request: dict[str, Any]
    running: bool = False
    exit_code: int | None = None
    pid: int = 0
    process: ExecProcess | None = field(default=None, repr=False)

    @property
    def tty(self) -> bool:
        return bool(self.request.get("Tty"))


class ExecService:
    """Exec instances by ID; they vanish with the daemon (as in dockerd)."""

    def __init__(self, containers: ContainerService) -> None:
        self.containers = containers
        self._execs: dict[str, ExecRecord] = {}
        self._reaping: set[asyncio.Task[None]] = set()

    def create(self, container: str, request: dict[str, Any]) -> ExecRecord:
        record = self.containers.get(container)
        next_status(record.state.status, Op.EXEC, name=record.id)
        cmd = request.get("Cmd")
        if not isinstance(cmd, list) or not cmd or not all(isinstance(c, str) for c in cmd):
            raise InvalidArgument("No exec command specified")
        exec_record = ExecRecord(ids.new_id(), record.id, dict(request))
        self._execs[exec_record.id] = exec_record
        record.exec_ids.append(exec_record.id)
        self.containers.records.save(record)
        self.containers._event(record, f"exec_create: {_action(cmd)}", execID=exec_record.id)
        return exec_record

    def get(self, exec_id: str) -> ExecRecord:
        try:
            return self._execs[exec_id]
        except KeyError:
            raise NotFound(f"No such exec instance: {exec_id}") from None

    def check_startable(self, exec_id: str) -> ExecRecord:
        """Raise what :meth:`start` would refuse, before a client is told 101."""
        record = self.get(exec_id)
        if record.running or record.exit_code is not None:
            raise Conflict(f"Error: Exec command {exec_id} has already run")
        container = self.containers.get(record.container_id)
        next_status(container.state.status, Op.EXEC, name=container.id)
        return record

    async def start(self, exec_id: str, *, stdin: bool) -> ExecRecord:
        """Start the process; the caller pumps its I/O and then calls :meth:`finish`."""
        record = self.check_startable(exec_id)
        container = self.containers.get(record.container_id)
        config = self._config(record, container.id)
        record.process = await start_exec(self.containers._rt(container).oci, container.id, config,
                                          stdin=stdin)
        record.running, record.pid = True, record.process.pid
        self.containers._event(container, f"exec_start: {_action(record.request['Cmd'])}",
                               execID=record.id)
        return record

    async def finish(self, record: ExecRecord) -> int:
        assert record.process is not None
        code = await record.process.wait()
        record.running, record.exit_code = False, code
        try:
            container = self.containers.get(record.container_id)
            self.containers._event(container, "exec_die", execID=record.id, exitCode=str(code))
        except NotFound:
            pass
        return code

    async def run_probe(self, container_id: str, argv: list[str], output: OutputBuffer,
                        timeout: float) -> int | None:
        """A health check (``probes.ProbeRunner``): ``argv`` as an exec with the container's
        user, environment and working directory, its stdout and stderr into ``output``; the
        exit code, or None when it ran past ``timeout`` seconds (it and what it started are
        killed). dockerd's exec_create/exec_start/exec_die events; no exec ID stays behind.

        Raises:
            Conflict: the container is not running.
            Internal: the command could not be started (Docker's message).
        """
        container = self.containers.get(container_id)
        record = ExecRecord(ids.new_id(), container.id,
                            {"Cmd": argv, "AttachStdout": True, "AttachStderr": True})
        self.containers._event(container, f"exec_create: {_action(argv)}", execID=record.id)
        record.process = await start_exec(self.containers._rt(container).oci, container.id,
                                          self._config(record, container.id), stdin=False)
        record.running, record.pid = True, record.process.pid
        self.containers._event(container, f"exec_start: {_action(argv)}", execID=record.id)
        try:
            return await asyncio.wait_for(self._probe_output(record, output), timeout)
        except TimeoutError:
            _kill_tree(record.pid)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.finish(record), _PROBE_REAP)
            return None
        except asyncio.CancelledError:  # the check stopped: do not leave the probe running
            _kill_tree(record.pid)
            reaper = asyncio.get_running_loop().create_task(self._reap(record))
            self._reaping.add(reaper)
            reaper.add_done_callback(self._reaping.discard)
            raise

    async def _probe_output(self, record: ExecRecord, output: OutputBuffer) -> int:
        assert record.process is not None
        while (item := await record.process.read()) is not None:
            output.write(item[1])
        if record.process.start_error is not None:  # dockerd: no exec_die, the error is the output
            await record.process.wait()
            raise Internal(record.process.start_error)
        return await self.finish(record)

    async def _reap(self, record: ExecRecord) -> None:
        """Wait for a killed probe's end (a paused container's only after it is unpaused)."""
        await self.finish(record)

    def _config(self, record: ExecRecord, container_id: str) -> ExecConfig:
        bundle = self.containers.bundles.dir(container_id)
        process = json.loads((bundle / "config.json").read_text())["process"]
        request = record.request
        merged = bundle / "rootfs" / "merged"
        user = UserIds(uid=process["user"]["uid"], gid=process["user"]["gid"],
                       additional_gids=tuple(process["user"].get("additionalGids") or ()))
        if request.get("User"):
            user = resolve_user(merged, str(request["User"]))
        env = _merge_env(process.get("env") or [], request.get("Env") or [])
        return ExecConfig(
            args=list(request["Cmd"]),
            env=env,
            cwd=str(request.get("WorkingDir") or process.get("cwd") or "/"),
            user=user,
            terminal=bool(request.get("Tty")),
            capabilities=list(process.get("capabilities", {}).get("bounding") or []),
            no_new_privileges=bool(process.get("noNewPrivileges")),
            privileged=bool(request.get("Privileged")),
            console_size=_console_size(request),
        )


def _console_size(request: dict[str, Any]) -> tuple[int, int] | None:
    """The exec's first window size (rows, columns), from ``ConsoleSize`` as the API keeps it
    current (create, start, or a resize before the start): crun sets it before the command runs."""
    size = request.get("ConsoleSize")
    if not size or not request.get("Tty"):
        return None
    return int(size[0]), int(size[1])


def _action(cmd: list[str]) -> str:
    """What follows ``exec_create: `` in the event: dockerd's entrypoint, a space, the args
    (so ``true`` alone is "true ")."""
    return f"{cmd[0]} {' '.join(cmd[1:])}"


def _kill_tree(pid: int) -> None:
    """SIGKILL an exec's process and its descendants (a shell's children keep the output pipes
    open otherwise); pid 0 is an exec whose pid was never known: nothing to kill."""
    if pid <= 0:
        return
    for member in process_tree(pid):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(member, signal.SIGKILL)


def _merge_env(base: list[str], extra: list[str]) -> list[str]:
    merged = {e.partition("=")[0]: e for e in base}
    merged.update({str(e).partition("=")[0]: str(e) for e in extra})
    return list(merged.values())
