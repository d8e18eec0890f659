"""The agent's command handler over the real state store and a fake engine."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from wharf.daemon.adapters.agent.handler import CommandHandler
from wharf.daemon.adapters.agent.journal import CommandJournal
from wharf.daemon.core.state import StateStore
from wharf.errors import NotFound
from wharf.protocol import (
    CommandEnvelope,
    ContainerPayload,
    ResultStatus,
    RunPayload,
)

pytestmark = pytest.mark.anyio
NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class FakeContainers:
    def __init__(self) -> None:
        self.started: list[str] = []

    def create(self, body: dict[str, Any], name: str | None) -> Any:
        return SimpleNamespace(id="c" * 64, name=name or "random_name")

    async def start(self, text: str) -> None:
        if text == "missing":
            raise NotFound("No such container: missing")
        self.started.append(text)


class FakeImages:
    """Knows ``busybox``; a pull of anything else records it and then knows it."""

    def __init__(self) -> None:
        self.known = {"busybox"}
        self.pulled: list[str] = []

    def get(self, name: str) -> Any:
        if name not in self.known:
            raise NotFound(f"No such image: {name}")
        return SimpleNamespace(id="sha256:" + "i" * 64)

    async def pull(self, text: str, tag: str, auth: Any, platform: Any
                   ) -> AsyncIterator[dict[str, Any]]:
        self.pulled.append(text)
        self.known.add(text)
        yield {"status": f"Downloaded newer image for {text}"}


def _handler(tmp_path: Path) -> tuple[CommandHandler, FakeContainers, StateStore]:
    state = StateStore(tmp_path / "state.db")
    state.open()
    containers = FakeContainers()
    engine = SimpleNamespace(containers=containers, images=FakeImages())
    return CommandHandler(engine, CommandJournal(state), "node-1"), containers, state  # type: ignore[arg-type]


async def test_a_redelivered_command_runs_once_and_gets_the_same_result(tmp_path: Path) -> None:
    handler, containers, _ = _handler(tmp_path)
    envelope = CommandEnvelope.new("node-1", RunPayload(create={"Image": "busybox"}, name="web"))
    first = await handler.handle(envelope)
    again = await handler.handle(envelope)
    assert first.status is ResultStatus.OK and first.result == {"Id": "c" * 64, "Name": "web"}
    assert again == first
    assert containers.started == ["c" * 64]


async def test_run_pulls_a_missing_image_first_unless_told_not_to(tmp_path: Path) -> None:
    handler, _, _ = _handler(tmp_path)
    images = handler.engine.images
    result = await handler.handle(CommandEnvelope.new(
        "node-1", RunPayload(create={"Image": "alpine"}, name="a")))
    assert result.status is ResultStatus.OK and images.pulled == ["alpine"]  # type: ignore[attr-defined]
    await handler.handle(CommandEnvelope.new(
        "node-1", RunPayload(create={"Image": "debian"}, name="b", pull=False)))
    assert images.pulled == ["alpine"]  # type: ignore[attr-defined]


async def test_errors_travel_as_kinds(tmp_path: Path) -> None:
    handler, _, _ = _handler(tmp_path)
    result = await handler.handle(CommandEnvelope.new(
        "node-1", ContainerPayload(type="start", container="missing")))
    assert result.status is ResultStatus.ERROR and result.error is not None
    assert isinstance(result.error.to_error(), NotFound)


async def test_an_expired_command_is_never_executed(tmp_path: Path) -> None:
    handler, containers, _ = _handler(tmp_path)
    envelope = CommandEnvelope.new("node-1", ContainerPayload(type="start", container="web"),
                                   deadline=timedelta(seconds=5), now=NOW)
    result = await handler.handle(envelope, now=NOW + timedelta(seconds=6))
    assert result.status is ResultStatus.EXPIRED and containers.started == []


async def test_the_journal_survives_a_restart_and_interrupted_commands_are_not_rerun(
        tmp_path: Path) -> None:
    handler, _, state = _handler(tmp_path)
    done = CommandEnvelope.new("node-1", ContainerPayload(type="start", container="a"))
    interrupted = CommandEnvelope.new("node-1", ContainerPayload(type="start", container="b"))
    await handler.handle(done)
    handler.journal.begin(interrupted)  # received, then the daemon died
    state.close()
    again, containers2, _ = _handler(tmp_path)
    assert (await again.handle(done)).status is ResultStatus.OK
    replay = await again.handle(interrupted)
    assert replay.status is ResultStatus.ERROR and "interrupted" in replay.error.message  # type: ignore[union-attr]
    assert containers2.started == []
