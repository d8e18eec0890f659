"""Executes one command envelope against the Engine, exactly once per command id."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from wharf.daemon.adapters.agent.journal import CommandJournal
from wharf.daemon.adapters.views import containers as shapes
from wharf.daemon.adapters.views.images import familiar_tag, image_summary
from wharf.daemon.core.containers.filters import ContainerFilter
from wharf.daemon.core.containers.records import ContainerRecord
from wharf.daemon.core.engine import Engine
from wharf.errors import Internal, NotFound, WharfError
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
    Snapshot,
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
            return self.error_result(envelope, Internal(
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
                result = self.error_result(envelope, exc)
        self.journal.finish(result)
        return result

    def error_result(self, envelope: CommandEnvelope, error: WharfError) -> CommandResult:
        return CommandResult(command_id=envelope.id, node=self.node, status=ResultStatus.ERROR,
                             error=ErrorInfo(code=error.code, message=error.message))

    def snapshot(self, labels: dict[str, str]) -> Snapshot:
        """The node's containers and images, with the event sequence they reflect (run it on
        the daemon's loop, where events are emitted, so no event falls between the two)."""
        seq = self.engine.events.last_seq()
        return Snapshot(node=self.node, seq=seq, engine_id=self.engine.daemon_id,
                        taken_at=datetime.now(UTC), labels=labels,
                        containers=[summary(r) for r in
                                    self.engine.containers.list_containers()],
                        images=self._image_list())

    def summary_of(self, container_id: str) -> dict[str, Any] | None:
        """The list entry of a container, or None once it is gone."""
        try:
            return summary(self.engine.containers.get(container_id))
        except NotFound:
            return None

    def _image_list(self) -> list[dict[str, Any]]:
        return [image_summary(r) for r in self.engine.images.list_images()]

    async def _execute(self, envelope: CommandEnvelope) -> Any:
        payload = envelope.payload
        if isinstance(payload, PullPayload | RemoveImagePayload | ImagesPayload):
            return await self._images(payload)
        return await self._containers(payload)

    async def _containers(self, payload: Any) -> Any:
        containers = self.engine.containers
        if isinstance(payload, RunPayload | CreatePayload):
            image = str(payload.create.get("Image") or "")
            if isinstance(payload, RunPayload) and payload.pull and image:
                await self._pull_if_missing(image)
            record = containers.create(dict(payload.create), payload.name)
            if isinstance(payload, RunPayload):
                await containers.start(record.id)
            return {"Id": record.id, "Name": record.name}
        if isinstance(payload, ContainerPayload):
            if payload.type == "start":
                await containers.start(payload.container)
                return None
            record = containers.get(payload.container)
            return shapes.container_inspect(record, str(containers.container_dir(record)),
                                            str(containers.log_path(record)))
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
        return self._read(payload)

    def _read(self, payload: Any) -> Any:
        containers = self.engine.containers
        if isinstance(payload, LogsPayload):
            record = containers.get(payload.container)
            entries = containers.read_logs(record, tail=payload.tail, since=payload.since)
            return [{"stream": e.stream, "time": e.timestamp,
                     "text": e.data.decode(errors="replace")} for e in entries]
        if isinstance(payload, ListPayload):
            records = containers.list_containers()
            if not payload.all and "status" not in payload.filters:
                records = [r for r in records
                           if r.state.status.value in ("running", "paused", "restarting")]
            if payload.filters:
                matcher = ContainerFilter.parse(payload.filters)
                records = [r for r in records if matcher.matches(r)]
            return [summary(r) for r in records]
        raise Internal(f"command type {payload.type!r} is not handled by this daemon yet")

    async def _pull_if_missing(self, image: str) -> None:
        try:
            self.engine.images.get(image)
        except NotFound:
            async for _message in self.engine.images.pull(image, "", None, None):
                pass

    async def _images(self, payload: Any) -> Any:
        images = self.engine.images
        if isinstance(payload, PullPayload):
            last: dict[str, Any] = {}
            async for message in images.pull(payload.image, "", None, None):
                last = message
            return {"status": last.get("status", "")}
        if isinstance(payload, RemoveImagePayload):
            removal = images.remove(payload.image, force=payload.force, prune=True)
            return {"untagged": [familiar_tag(t) for t in removal.untagged],
                    "deleted": removal.deleted}
        if isinstance(payload, ImagesPayload):
            return self._image_list()
        raise Internal(f"command type {payload.type!r} is not handled by this daemon yet")


def summary(record: ContainerRecord) -> dict[str, Any]:
    """Docker's list entry plus the times and exit code a gateway needs to word ``Status``."""
    state = record.state
    return {**shapes.container_summary(record), "StartedAt": state.started_at,
            "FinishedAt": state.finished_at, "ExitCode": state.exit_code}
