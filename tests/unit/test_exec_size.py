"""A TTY exec's window size on the daemon side: ``ConsoleSize`` in create and start, a resize
that arrives before the process exists (the docker and wharf CLIs send it right after the
hijacked start's 101, while the process is still being started), the OCI ``consoleSize``, and
runc's relay pty, against a fake exec service."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi.testclient import TestClient

from wharf.daemon.adapters.api.execs import console_size, set_console_size
from wharf.daemon.adapters.api.server import create_app
from wharf.daemon.adapters.api.streams import StreamDispatcher
from wharf.daemon.core.containers.execs import ExecRecord
from wharf.daemon.core.runtime.exec import ExecConfig, _spawn, process_spec
from wharf.daemon.core.runtime.users import UserIds
from wharf.errors import InvalidArgument, NotFound
from wharf.hijack import HijackRequest


class FakeProcess:
    """An exec that has ended: no output; records every resize."""

    def __init__(self) -> None:
        self.sizes: list[tuple[int, int]] = []
        self.start_error: str | None = None
        self.pid = 4242

    def resize(self, height: int, width: int) -> None:
        self.sizes.append((height, width))

    async def read(self) -> tuple[str, bytes] | None:
        return None

    async def write(self, data: bytes) -> None:
        pass

    async def close_stdin(self) -> None:
        pass


class FakeExecs:
    """ExecService's surface for the routes; ``during_start`` runs while a start is under way."""

    def __init__(self) -> None:
        self.records: dict[str, ExecRecord] = {}
        self.during_start: Callable[[ExecRecord], None] = lambda record: None

    def create(self, container: str, request: dict[str, Any]) -> ExecRecord:
        record = ExecRecord(f"e{len(self.records)}", container, dict(request))
        self.records[record.id] = record
        return record

    def get(self, exec_id: str) -> ExecRecord:
        if exec_id not in self.records:
            raise NotFound(f"No such exec instance: {exec_id}")
        return self.records[exec_id]

    def check_startable(self, exec_id: str) -> ExecRecord:
        return self.get(exec_id)

    async def start(self, exec_id: str, *, stdin: bool) -> ExecRecord:
        record = self.get(exec_id)
        await asyncio.sleep(0)  # the runtime is starting the process: other requests run
        self.during_start(record)
        record.process = FakeProcess()  # type: ignore[assignment]
        record.running = True
        return record

    async def finish(self, record: ExecRecord) -> int:
        record.running, record.exit_code = False, 0
        return 0


class FakeStream:
    def __init__(self) -> None:
        self.upgraded = False
        self.out = b""

    async def upgrade(self) -> None:
        self.upgraded = True

    async def write(self, data: bytes) -> None:
        self.out += data

    async def read(self, n: int = 65536) -> bytes:
        return b""


@pytest.fixture
def api() -> Iterator[tuple[TestClient, FakeExecs]]:
    execs = FakeExecs()
    with TestClient(create_app(SimpleNamespace(execs=execs))) as client:  # type: ignore[arg-type]
        yield client, execs


def _create(client: TestClient, **extra: Any) -> str:
    reply = client.post("/v1.41/containers/c1/exec", json={"Cmd": ["sh"], "Tty": True, **extra})
    assert reply.status_code == 201, reply.text
    return str(reply.json()["Id"])


def _hijacked_start(execs: FakeExecs, exec_id: str, body: bytes = b"") -> FakeProcess:
    dispatcher = StreamDispatcher(None, execs)  # type: ignore[arg-type]
    request = HijackRequest("POST", f"/exec/{exec_id}/start", {}, {}, body)
    asyncio.run(dispatcher.exec_start(exec_id, request, FakeStream()))  # type: ignore[arg-type]
    process = execs.get(exec_id).process
    assert isinstance(process, FakeProcess)
    return process


@pytest.mark.parametrize(("value", "size"), [
    (None, None), ([0, 0], None), ([40, 0], None), ([40, 120], (40, 120)),
])
def test_console_size_is_dockers_height_width_pair(value: object,
                                                   size: tuple[int, int] | None) -> None:
    assert console_size(value) == size


@pytest.mark.parametrize("value", [[40], [40, 120, 1], ["40", "120"], [-1, 80], [True, 80],
                                   {"h": 40}, "40x120"])
def test_a_malformed_console_size_is_refused(value: object) -> None:
    with pytest.raises(InvalidArgument, match="ConsoleSize"):
        console_size(value)


def test_a_resize_before_the_start_reaches_the_pty_when_it_starts(
        api: tuple[TestClient, FakeExecs]) -> None:
    # the bug: this resize was answered 200 and dropped, so the shell had no window size
    client, execs = api
    exec_id = _create(client)
    assert client.post(f"/v1.41/exec/{exec_id}/resize?h=40&w=120").status_code == 200
    assert _hijacked_start(execs, exec_id).sizes == [(40, 120)]


def test_a_resize_while_the_process_is_being_started_is_not_lost() -> None:
    execs = FakeExecs()
    record = execs.create("c1", {"Cmd": ["sh"], "Tty": True, "ConsoleSize": [40, 120]})
    execs.during_start = lambda r: set_console_size(r, (30, 100))  # what the route does
    assert _hijacked_start(execs, record.id).sizes == [(30, 100)]


def test_console_size_from_create_then_start_body_wins(
        api: tuple[TestClient, FakeExecs]) -> None:
    client, execs = api
    from_create = _create(client, ConsoleSize=[40, 120])
    assert execs.get(from_create).request["ConsoleSize"] == [40, 120]
    assert _hijacked_start(execs, from_create).sizes == [(40, 120)]
    no_size = _create(client, ConsoleSize=[0, 0])
    assert "ConsoleSize" not in execs.get(no_size).request
    overridden = _create(client, ConsoleSize=[40, 120])
    body = json.dumps({"Detach": False, "Tty": True, "ConsoleSize": [30, 100]}).encode()
    assert _hijacked_start(execs, overridden, body).sizes == [(30, 100)]


def test_a_resize_after_the_start_resizes_at_once(api: tuple[TestClient, FakeExecs]) -> None:
    client, execs = api
    exec_id = _create(client)
    process = _hijacked_start(execs, exec_id)
    assert process.sizes == []  # no size asked for: none set
    assert client.post(f"/v1.41/exec/{exec_id}/resize?h=30&w=100").status_code == 200
    assert process.sizes == [(30, 100)]


def test_without_a_tty_sizes_are_ignored(api: tuple[TestClient, FakeExecs]) -> None:
    client, execs = api
    exec_id = _create(client, Tty=False)
    assert client.post(f"/v1.41/exec/{exec_id}/resize?h=40&w=120").status_code == 200
    assert _hijacked_start(execs, exec_id).sizes == []


def test_size_requests_that_docker_refuses(api: tuple[TestClient, FakeExecs]) -> None:
    client, _ = api
    bad = client.post("/v1.41/containers/c1/exec", json={"Cmd": ["sh"], "ConsoleSize": [1]})
    assert bad.status_code == 400 and "ConsoleSize" in bad.json()["message"]
    exec_id = _create(client)
    assert client.post(f"/v1.41/exec/{exec_id}/resize?h=x&w=1").status_code == 400
    assert client.post("/v1.41/exec/nope/resize?h=40&w=120").status_code == 404


def test_a_hijacked_start_with_a_bad_body_is_refused_before_the_upgrade() -> None:
    execs = FakeExecs()
    record = execs.create("c1", {"Cmd": ["sh"], "Tty": True})
    dispatcher = StreamDispatcher(None, execs)  # type: ignore[arg-type]
    stream = FakeStream()
    request = HijackRequest("POST", f"/exec/{record.id}/start", {}, {}, b"{not json")
    with pytest.raises(InvalidArgument):
        asyncio.run(dispatcher.exec_start(record.id, request, stream))  # type: ignore[arg-type]
    assert not stream.upgraded and record.process is None


def test_a_detached_start_takes_the_size_of_its_body(api: tuple[TestClient, FakeExecs]) -> None:
    client, execs = api
    exec_id = _create(client)
    reply = client.post(f"/v1.41/exec/{exec_id}/start",
                        json={"Detach": True, "Tty": True, "ConsoleSize": [25, 80]})
    assert reply.status_code == 200, reply.text
    process = execs.get(exec_id).process
    assert isinstance(process, FakeProcess) and process.sizes == [(25, 80)]


def _config(*, terminal: bool, size: tuple[int, int] | None) -> ExecConfig:
    return ExecConfig(["sh"], [], "/", UserIds(0, 0), terminal, console_size=size)


def test_the_process_spec_carries_the_first_size_for_a_tty_only() -> None:
    assert process_spec(_config(terminal=True, size=(40, 120)))["consoleSize"] == {
        "height": 40, "width": 120}
    assert "consoleSize" not in process_spec(_config(terminal=True, size=None))
    assert "consoleSize" not in process_spec(_config(terminal=False, size=(40, 120)))


def test_runcs_relay_pty_has_the_size_before_the_runtime_starts() -> None:
    # runc copies its stdin terminal's size into the container's pty when it starts
    async def scenario() -> bytes:
        proc, master = await _spawn(["stty", "size"], stdin=False, relay=True, size=(40, 120))
        assert master is not None
        await proc.wait()
        try:
            return os.read(master, 1024)
        finally:
            os.close(master)

    assert asyncio.run(scenario()).strip() == b"40 120"
