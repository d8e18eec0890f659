"""Executes one command envelope against the Engine, exactly once per command id."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from wharf.daemon.adapters.agent.journal import CommandJournal
from wharf.daemon.adapters.views import containers as shapes
from wharf.daemon.adapters.views.images import familiar_tag, image_summary
from wharf.daemon.core.containers.filters import select
from wharf.daemon.core.containers.records import ContainerRecord
from wharf.daemon.core.engine import Engine
from wharf.errors import Internal, NotFound, WharfError
from wharf.protocol import (
    COMMANDS,
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
    """The same Engine calls the Docker API makes, one method per command type of the table
    (:data:`wharf.protocol.COMMANDS`). A mutating command is journalled first (run at most
    once per id); a read just runs."""

    def __init__(self, engine: Engine, journal: CommandJournal, node: str) -> None:
        self.engine = engine
        self.journal = journal
        self.node = node
        self._run_type: dict[str, Callable[[Any], Awaitable[Any]]] = {
            kind: getattr(self, "_" + kind) for kind in COMMANDS}

    async def handle(self, envelope: CommandEnvelope, now: datetime | None = None
                     ) -> CommandResult:
        if not envelope.mutating:
            return await self._result(envelope, now)
        first, recorded = self.journal.begin(envelope)
        if recorded is not None:
            return recorded
        if not first:  # received before, never finished: the daemon died while running it
            return self.error_result(envelope, Internal(
                f"command {envelope.id} was interrupted on {self.node}; not run again"))
        result = await self._result(envelope, now)
        self.journal.finish(result)
        return result

    async def _result(self, envelope: CommandEnvelope, now: datetime | None) -> CommandResult:
        if envelope.expired(now):
            return CommandResult(command_id=envelope.id, node=self.node,
                                 status=ResultStatus.EXPIRED)
        try:
            value = await self._run_type[envelope.type](envelope.payload)
        except WharfError as exc:
            return self.error_result(envelope, exc)
        return CommandResult(command_id=envelope.id, node=self.node, status=ResultStatus.OK,
                             result=value)

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

    # --- one method per command type ----------------------------------------------------

    async def _run(self, payload: RunPayload) -> dict[str, str]:
        image = str(payload.create.get("Image") or "")
        if payload.pull and image:
            await self._pull_if_missing(image)
        record = self.engine.containers.create(dict(payload.create), payload.name)
        await self.engine.containers.start(record.id)
        return {"Id": record.id, "Name": record.name}

    async def _create(self, payload: CreatePayload) -> dict[str, str]:
        record = self.engine.containers.create(dict(payload.create), payload.name)
        return {"Id": record.id, "Name": record.name}

    async def _start(self, payload: ContainerPayload) -> None:
        await self.engine.containers.start(payload.container)

    async def _stop(self, payload: StopPayload) -> None:
        await self.engine.containers.stop(payload.container, payload.timeout)

    async def _restart(self, payload: StopPayload) -> None:
        await self.engine.containers.restart(payload.container, payload.timeout)

    async def _kill(self, payload: KillPayload) -> None:
        await self.engine.containers.kill(payload.container, payload.signal)

    async def _rm(self, payload: RemovePayload) -> None:
        await self.engine.containers.remove(payload.container, force=payload.force)

    async def _inspect(self, payload: ContainerPayload) -> dict[str, Any]:
        containers = self.engine.containers
        record = containers.get(payload.container)
        return shapes.container_inspect(record, str(containers.container_dir(record)),
                                        str(containers.log_path(record)))

    async def _list(self, payload: ListPayload) -> list[dict[str, Any]]:
        records = select(self.engine.containers.list_containers(), all=payload.all,
                         filters=payload.filters)
        return [summary(r) for r in records]

    async def _logs(self, payload: LogsPayload) -> dict[str, Any]:
        containers = self.engine.containers
        record = containers.get(payload.container)
        running = containers.is_running(record.id)()  # before the read: nothing is missed
        page = await asyncio.to_thread(
            containers.log_page, record, payload.cursor, tail=payload.tail,
            since=payload.since, flush=not running)
        return {"Entries": [{"stream": e.stream, "time": e.timestamp,
                             "text": e.data.decode(errors="replace")} for e in page.entries],
                "Cursor": list(page.cursor), "Running": running, "More": page.more,
                "Done": not running and not page.more}

    async def _pull(self, payload: PullPayload) -> dict[str, str]:
        last: dict[str, Any] = {}
        async for message in self.engine.images.pull(payload.image, "", None, None):
            last = message
        return {"status": last.get("status", "")}

    async def _images(self, payload: ImagesPayload) -> list[dict[str, Any]]:
        del payload
        return self._image_list()

    async def _rmi(self, payload: RemoveImagePayload) -> dict[str, list[str]]:
        removal = self.engine.images.remove(payload.image, force=payload.force, prune=True)
        return {"untagged": [familiar_tag(t) for t in removal.untagged],
                "deleted": removal.deleted}

    async def _pull_if_missing(self, image: str) -> None:
        try:
            self.engine.images.get(image)
        except NotFound:
            async for _message in self.engine.images.pull(image, "", None, None):
                pass


def summary(record: ContainerRecord) -> dict[str, Any]:
    """Docker's list entry plus the times and exit code a gateway needs to word ``Status``."""
    state = record.state
    return {**shapes.container_summary(record), "StartedAt": state.started_at,
            "FinishedAt": state.finished_at, "ExitCode": state.exit_code}
