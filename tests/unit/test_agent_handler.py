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
    COMMANDS,
    MUTATING,
    CommandEnvelope,
    ContainerPayload,
    ImagesPayload,
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


def test_every_command_of_the_table_has_a_handler_and_only_changes_are_journalled(
        tmp_path: Path) -> None:
    handler, _, _ = _handler(tmp_path)
    assert set(handler._run_type) == set(COMMANDS)
    assert {"run", "create", "start", "stop", "restart", "kill", "rm", "pull",
                        "rmi"} == MUTATING
    for spec in COMMANDS.values():  # each payload model answers to its table type
        assert spec.name in spec.payload.model_fields["type"].annotation.__args__  # type: ignore[union-attr]


async def test_a_read_is_not_journalled(tmp_path: Path) -> None:
    handler, _, state = _handler(tmp_path)
    handler.engine.images.list_images = lambda: []  # type: ignore[attr-defined]
    read = CommandEnvelope.new("node-1", ImagesPayload())
    assert (await handler.handle(read)).status is ResultStatus.OK
    with state.tx() as db:
        assert db.execute("SELECT COUNT(*) FROM command_journal").fetchone()[0] == 0


def test_the_journal_is_pruned_by_age_and_count_but_not_within_a_deadline(
        tmp_path: Path) -> None:
    state = StateStore(tmp_path / "state.db")
    state.open()
    journal = CommandJournal(state)
    with state.tx() as db:
        for minutes in range(0, 300):  # one entry a minute over the last 5 hours
            db.execute("INSERT INTO command_journal (id, type, received_at) VALUES (?,?,?)",
                       (f"c{minutes}", "start",
                        (NOW - timedelta(minutes=minutes)).isoformat()))
    # older than 4 h go by age; beyond the newest 100 the rest go, but not the last hour's
    assert journal.prune(4 * 3600, 100, now=NOW) == 60 + 140
    with state.tx() as db:
        kept = sorted(int(r[0][1:]) for r in db.execute("SELECT id FROM command_journal"))
    assert kept == list(range(100))
    assert journal.prune(4 * 3600, 10, now=NOW) == 39  # the last hour (0..60 min) stays
