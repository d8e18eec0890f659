"""``docker exec``: extra processes in a running container, kept in memory like dockerd does.

An exec inherits the container's process settings from its config.json (user, environment,
capabilities, no-new-privileges), with the request's overrides on top.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from wharf import ids
from wharf.daemon.core.containers.lifecycle import Op, next_status
from wharf.daemon.core.containers.service import ContainerService
from wharf.daemon.core.runtime.exec import ExecConfig, ExecProcess, start_exec
from wharf.daemon.core.runtime.users import UserIds, resolve_user
from wharf.errors import Conflict, InvalidArgument, NotFound


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
        self.containers._event(record, f"exec_create: {' '.join(cmd)}", execID=exec_record.id)
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
        cmd = " ".join(record.request["Cmd"])
        self.containers._event(container, f"exec_start: {cmd}", execID=record.id)
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
        )


def _merge_env(base: list[str], extra: list[str]) -> list[str]:
    merged = {e.partition("=")[0]: e for e in base}
    merged.update({str(e).partition("=")[0]: str(e) for e in extra})
    return list(merged.values())
