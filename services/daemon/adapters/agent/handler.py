"""Executes one command envelope against the Engine, exactly once per command id."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from wharf.daemon.adapters.agent.journal import CommandJournal
from wharf.daemon.core.containers.records import ContainerRecord
from wharf.daemon.core.engine import Engine
from wharf.daemon.core.runtime.logs import read_logs
from wharf.errors import Internal, WharfError
from wharf.protocol import (
    CommandEnvelope,
    CommandResult,
    ContainerPayload,
    CreatePayload,
    ErrorInfo,
    ImagesPayload,
    KillPayload,
    ListPayload,
    LogsPayload,
    PullPayload,
    RemoveImagePayload,
    RemovePayload,
    ResultStatus,
    RunPayload,
    StopPayload,
)


class CommandHandler:
    """Journal first, then the same Engine calls the Docker API makes."""

    def __init__(self, engine: Engine, journal: CommandJournal, node: str) -> None:
        self.engine = engine
        self.journal = journal
        self.node = node

    async def handle(self, envelope: CommandEnvelope, now: datetime | None = None
                     ) -> CommandResult:
        first, recorded = self.journal.begin(envelope)
        if recorded is not None:
            return recorded
        if not first:  # received before, never finished: the daemon died while running it
            return self._error(envelope, Internal(
                f"command {envelope.id} was interrupted on {self.node}; not run again"))
        if envelope.expired(now):
            result = CommandResult(command_id=envelope.id, node=self.node,
                                   status=ResultStatus.EXPIRED)
        else:
            try:
                value = await self._execute(envelope)
                result = CommandResult(command_id=envelope.id, node=self.node,
                                       status=ResultStatus.OK, result=value)
            except WharfError as exc:
                result = self._error(envelope, exc)
        self.journal.finish(result)
        return result

    def _error(self, envelope: CommandEnvelope, error: WharfError) -> CommandResult:
        return CommandResult(command_id=envelope.id, node=self.node, status=ResultStatus.ERROR,
                             error=ErrorInfo(code=error.code, message=error.message))

    async def _execute(self, envelope: CommandEnvelope) -> Any:
        payload = envelope.payload
        containers, images = self.engine.containers, self.engine.images
        if isinstance(payload, RunPayload | CreatePayload):
            record = containers.create(dict(payload.create), payload.name)
            if isinstance(payload, RunPayload):
                await containers.start(record.id)
            return {"Id": record.id, "Name": record.name}
        if isinstance(payload, ContainerPayload):
            if payload.type == "start":
                await containers.start(payload.container)
                return None
            return _summary(containers.get(payload.container))
        if isinstance(payload, StopPayload):
            if payload.type == "stop":
                await containers.stop(payload.container, payload.timeout)
            else:
                await containers.restart(payload.container, payload.timeout)
            return None
        if isinstance(payload, KillPayload):
            await containers.kill(payload.container, payload.signal)
            return None
        if isinstance(payload, RemovePayload):
            await containers.remove(payload.container, force=payload.force)
            return None
        if isinstance(payload, LogsPayload):
            record = containers.get(payload.container)
            entries = read_logs(containers.log_path(record), tail=payload.tail,
                                since=payload.since)
            return [{"stream": e.stream, "time": e.timestamp,
                     "text": e.data.decode(errors="replace")} for e in entries]
        if isinstance(payload, ListPayload):
            return [_summary(r) for r in containers.list_containers()
                    if payload.all or r.state.status.value == "running"]
        return await self._images(payload, images)

    async def _images(self, payload: Any, images: Any) -> Any:
        if isinstance(payload, PullPayload):
            last: dict[str, Any] = {}
            async for message in images.pull(payload.image, "", None, None):
                last = message
            return {"status": last.get("status", "")}
        if isinstance(payload, RemoveImagePayload):
            removal = images.remove(payload.image, force=payload.force, prune=True)
            return {"untagged": removal.untagged, "deleted": removal.deleted}
        if isinstance(payload, ImagesPayload):
            return [{"id": r.id, "tags": r.tags, "size": r.size} for r in images.list_images()]
        raise Internal(f"command type {payload.type!r} is not handled by this daemon yet")


def _summary(record: ContainerRecord) -> dict[str, Any]:
    return {"Id": record.id, "Name": record.name, "Image": record.image,
            "State": record.state.status.value, "ExitCode": record.state.exit_code,
            "Created": record.created_at}
