"""ContainerService over fakes: wait conditions, --rm, restart policies, stop, events."""

from __future__ import annotations

import asyncio
import json
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from wharf.daemon.core.containers.lifecycle import Status
from wharf.daemon.core.containers.records import ContainerRecords
from wharf.daemon.core.containers.service import ContainerService, parse_signal
from wharf.daemon.core.events import EventLog
from wharf.daemon.core.runtime.cgroups import CgroupManager, CgroupMode
from wharf.daemon.core.runtime.monitor import CreateRequest, ExitStatus, RuntimeState
from wharf.daemon.core.runtime.spec import HostInfo
from wharf.daemon.core.state import StateStore
from wharf.errors import Conflict, InvalidArgument, NotFound, NotModified


@dataclass
class FakeImage:
    id: str = "sha256:" + "1" * 64
    chain_ids: list[str] = field(default_factory=lambda: ["sha256:" + "2" * 64])
    config: dict[str, Any] = field(default_factory=lambda: {"config": {"Cmd": ["run"]}})


class FakeLayers:
    def diff_path(self, chain_id: str) -> Path:
        return Path("/layers") / chain_id


class FakeImages:
    layers = FakeLayers()
    users: Any = None

    def resolve(self, text: str) -> FakeImage:
        if text != "img":
            raise NotFound(f"No such image: {text}")
        return FakeImage()

    def get(self, image_id: str) -> FakeImage:
        return FakeImage()


class FakeOci:
    class kind:  # noqa: N801 - mirrors RuntimeKind's attribute
        value = "fake"

    takes_seccomp_bpf = False

    def run(self, *args: str) -> str:
        return ""


class FakeRuntime:
    """Processes 'run' for ``lifetime`` seconds, then exit with the code the args name."""

    oci = FakeOci()

    def __init__(self) -> None:
        self.exits: dict[str, ExitStatus] = {}
        self.args: dict[str, list[str]] = {}
        self.starts = 0

    def create(self, request: CreateRequest) -> int:
        self.exits.pop(request.container_id, None)
        return 4242

    def start(self, container_id: str) -> None:
        self.starts += 1
        code = int(self.args.get(container_id, ["0"])[-1])
        if code >= 0:
            self.exits[container_id] = ExitStatus(code, False, 0)

    def kill(self, container_id: str, sig: int = signal.SIGTERM, all_processes: bool = False
             ) -> None:
        self.exits[container_id] = ExitStatus(128 + sig, False, 0)

    def exit_status(self, container_id: str) -> ExitStatus | None:
        return self.exits.get(container_id)

    def delete(self, container_id: str, force: bool = False) -> None:
        pass

    def state(self, container_id: str) -> RuntimeState:
        return RuntimeState("running", 4242)

    def conmon_pid(self, container_id: str) -> int | None:
        return None

    def log_path(self, container_id: str) -> Path:
        return Path("/nonexistent")


class FakeBundles:
    host = HostInfo(CgroupMode.HYBRID, CgroupManager.CGROUPFS, frozenset(),
                    {"nofile": 20000}, True, 2)

    def dir(self, container_id: str) -> Path:
        return Path("/containers") / container_id

    def prepare(self, record: Any) -> None: ...
    def mount(self, record: Any, lowers: list[Path]) -> Path:
        return Path("/merged")
    def write_config(self, record: Any, merged: Path, takes_bpf: bool,
                     network: str = "private") -> None: ...
    def remove(self, container_id: str) -> None: ...


pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def service(tmp_path: Path) -> ContainerService:
    state = StateStore(tmp_path / "s.db")
    state.open()
    return ContainerService(ContainerRecords(state), FakeImages(), FakeRuntime(),  # type: ignore[arg-type]
                            FakeBundles(), EventLog(state))  # type: ignore[arg-type]


def _create(service: ContainerService, code: int, **host: Any) -> str:
    record = service.create({"Image": "img", "Cmd": ["run", str(code)], "HostConfig": host},
                            None)
    service.runtime.args[record.id] = ["run", str(code)]  # type: ignore[attr-defined]
    return record.id


def actions(service: ContainerService) -> list[str]:
    return [e.action for e in service.events.history(None, None)]


async def test_run_reports_the_exit_code_and_events(service: ContainerService) -> None:
    cid = _create(service, 3)
    waiter = asyncio.ensure_future(service.wait(cid, "next-exit"))
    await service.start(cid)
    assert await asyncio.wait_for(waiter, 2) == 3
    record = service.get(cid)
    assert (record.state.status, record.state.exit_code) == (Status.EXITED, 3)
    assert actions(service) == ["create", "start", "die"]
    with pytest.raises(NotModified):
        await service.stop(cid)
    assert await service.wait(cid) == 3  # not-running: answers at once


async def test_auto_remove_then_wait_removed(service: ContainerService) -> None:
    cid = _create(service, 0, AutoRemove=True)
    removed = asyncio.ensure_future(service.wait(cid, "removed"))
    await service.start(cid)
    assert await asyncio.wait_for(removed, 2) == 0
    with pytest.raises(NotFound):
        service.get(cid)
    assert actions(service)[-1] == "destroy"


async def test_on_failure_restarts_up_to_the_limit(service: ContainerService) -> None:
    cid = _create(service, 1, RestartPolicy={"Name": "on-failure", "MaximumRetryCount": 2})
    await service.start(cid)
    for _ in range(100):
        await asyncio.sleep(0.05)
        if service.runtime.starts == 3:  # type: ignore[attr-defined]
            break
    await asyncio.sleep(0.3)
    assert service.runtime.starts == 3  # type: ignore[attr-defined]
    assert service.get(cid).state.restart_count == 2


async def test_stop_of_a_running_container_kills_and_records(service: ContainerService) -> None:
    cid = _create(service, -1)  # never exits by itself
    await service.start(cid)
    assert service.get(cid).state.status is Status.RUNNING
    with pytest.raises(Conflict, match="You cannot remove a running container"):
        await service.remove(cid)
    await service.stop(cid, timeout=1)
    record = service.get(cid)
    assert record.state.exit_code == 128 + signal.SIGTERM and record.state.stopped_by_user
    await service.remove(cid)
    assert "destroy" in actions(service)


async def test_names_and_bad_requests(service: ContainerService) -> None:
    service.create({"Image": "img"}, "web")
    with pytest.raises(Conflict, match="already in use"):
        service.create({"Image": "img"}, "web")
    with pytest.raises(NotFound, match="No such image: nope"):
        service.create({"Image": "nope"}, None)
    with pytest.raises(InvalidArgument, match="Invalid signal"):
        parse_signal("SIGNOPE")
    assert parse_signal("kill") == signal.SIGKILL and parse_signal("15") == 15
    assert json.dumps(service.get("web").config["Cmd"]) == '["run"]'
