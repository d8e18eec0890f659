"""The health-check monitors over fakes: a clock that jumps instead of sleeping, a probe runner
fed results one by one, ContainerService on a real state store with a fake runtime. Checks the
schedule, the statuses and events, timeouts, the output cap, the last five, and that the check
stops with the container, pauses with it and resumes after a daemon restart."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.unit.test_container_service import FakeBundles, FakeImages, FakeRuntime
from wharf.daemon.core.containers import health
from wharf.daemon.core.containers.health import HealthStatus, OutputBuffer
from wharf.daemon.core.containers.records import ContainerRecords
from wharf.daemon.core.containers.service import ContainerService
from wharf.daemon.core.events import EventLog
from wharf.daemon.core.state import StateStore
from wharf.errors import Conflict, Internal

pytestmark = pytest.mark.anyio
S = health.SECOND
CHECK = {"Test": ["CMD-SHELL", "test -f /tmp/ok"], "Interval": S, "Retries": 2}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class FakeClock:
    """Real time plus what the sleeps skipped: a container's StartedAt (real) stays in the
    past, and the schedule is what the sleeps were asked for."""

    def __init__(self) -> None:
        self.offset = 0
        self.sleeps: list[float] = []

    def time_ns(self) -> int:
        return time.time_ns() + self.offset

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.offset += int(seconds * S)
        await asyncio.sleep(0)


@dataclass
class Outcome:
    code: int = 0
    output: bytes = b""
    took: float = 0.01  # seconds; past the timeout the runner reports a kill (None)
    error: Exception | None = None


@dataclass
class FakeRunner:
    """Each probe waits for the test to feed its outcome."""

    clock: FakeClock
    calls: list[tuple[str, list[str], float]] = field(default_factory=list)
    queue: asyncio.Queue[Outcome] = field(default_factory=asyncio.Queue)

    async def run_probe(self, container_id: str, argv: list[str], output: OutputBuffer,
                        timeout: float) -> int | None:
        self.calls.append((container_id, argv, timeout))
        outcome = await self.queue.get()
        self.clock.offset += int(outcome.took * S)
        if outcome.error is not None:
            raise outcome.error
        output.write(outcome.output)
        return None if outcome.took > timeout else outcome.code

    async def feed(self, *outcomes: Outcome) -> None:
        """Hand over ``outcomes`` and wait until each has been applied (the next probe waits)."""
        target = len(self.calls) + len(outcomes)
        for outcome in outcomes:
            self.queue.put_nowait(outcome)
        for _ in range(2000):
            if len(self.calls) >= target and self.queue.empty():
                return
            await asyncio.sleep(0.001)
        raise AssertionError(f"{len(self.calls)} probes, wanted {target}")


@dataclass
class Setup:
    service: ContainerService
    runner: FakeRunner
    clock: FakeClock
    state: StateStore

    def health(self, cid: str) -> Any:
        return self.service.get(cid).state.health

    def actions(self) -> list[str]:
        return [e.action for e in self.service.events.history(None, None)]


def _service(state: StateStore, runtime: FakeRuntime) -> tuple[ContainerService, FakeRunner,
                                                                FakeClock]:
    service = ContainerService(ContainerRecords(state), FakeImages(), runtime,  # type: ignore[arg-type]
                               FakeBundles(), EventLog(state))  # type: ignore[arg-type]
    clock = FakeClock()
    runner = FakeRunner(clock)
    service._ops.health.clock = clock
    service.use_prober(runner)
    return service, runner, clock


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    state = StateStore(tmp_path / "s.db")
    state.open()
    service, runner, clock = _service(state, FakeRuntime())
    yield Setup(service, runner, clock, state)


async def _running(setup: Setup, check: dict[str, Any] | None = None) -> str:
    """A running container (the fake runtime keeps it up) with ``check`` as its Healthcheck."""
    body: dict[str, Any] = {"Image": "img", "Cmd": ["run", "-1"]}
    if check is not None:
        body["Healthcheck"] = check
    record = setup.service.create(body, None)
    setup.service.runtime.args[record.id] = ["run", "-1"]  # type: ignore[attr-defined]
    await setup.service.start(record.id)
    return record.id


async def _settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0.005)


async def test_starting_then_unhealthy_after_the_retries_then_healthy(setup: Setup) -> None:
    cid = await _running(setup, CHECK)
    assert setup.health(cid).status is HealthStatus.STARTING
    await setup.runner.feed(Outcome(1, b"no\n"))
    assert (setup.health(cid).status, setup.health(cid).failing_streak) == (
        HealthStatus.STARTING, 1)
    await setup.runner.feed(Outcome(1))
    state = setup.health(cid)
    assert (state.status, state.failing_streak) == (HealthStatus.UNHEALTHY, 2)
    assert [(r.exit_code, r.output) for r in state.log] == [(1, "no\n"), (1, "")]
    await setup.runner.feed(Outcome(0, b"fine"))
    assert (setup.health(cid).status, setup.health(cid).failing_streak) == (
        HealthStatus.HEALTHY, 0)
    assert [a for a in setup.actions() if a.startswith("health_status")] == [
        "health_status: unhealthy", "health_status: healthy"]
    assert setup.runner.calls[0] == (cid, ["/bin/sh", "-c", "test -f /tmp/ok"], 30.0)
    assert setup.clock.sleeps[:3] == [1.0, 1.0, 1.0]
    event = next(e for e in setup.service.events.history(None, None)
                 if e.action == "health_status: healthy")
    assert (event.type, event.actor_id, event.attributes["image"]) == ("container", cid, "img")


async def test_the_defaults_30s_interval_and_timeout_3_retries(setup: Setup) -> None:
    cid = await _running(setup, {"Test": ["CMD", "check"]})
    await setup.runner.feed(Outcome(1), Outcome(1))
    assert setup.health(cid).status is HealthStatus.STARTING
    await setup.runner.feed(Outcome(1))
    assert setup.health(cid).status is HealthStatus.UNHEALTHY
    assert setup.clock.sleeps[:3] == [30.0, 30.0, 30.0]
    assert setup.runner.calls[0][1:] == (["check"], 30.0)


async def test_the_start_period_and_its_interval(setup: Setup) -> None:
    check = {"Test": ["CMD", "check"], "Interval": 3 * S, "StartPeriod": 4500 * 10**6,
             "StartInterval": S, "Retries": 1}
    cid = await _running(setup, check)
    await setup.runner.feed(*[Outcome(1, took=0)] * 2)  # at 1 and 2 s: in the period
    state = setup.health(cid)
    assert (state.status, state.failing_streak, len(state.log)) == (
        HealthStatus.STARTING, 0, 2)
    # 2.5 s left, less than an interval: dockerd probes next at the period's end
    await setup.runner.feed(Outcome(1, took=0))
    assert setup.health(cid).status is HealthStatus.UNHEALTHY
    sleeps = setup.clock.sleeps
    assert sleeps[:2] == [1.0, 1.0] and 2.4 < sleeps[2] <= 2.5 and sleeps[3] == 3.0


async def test_a_probe_past_its_timeout_fails_with_dockers_message(setup: Setup) -> None:
    cid = await _running(setup, {**CHECK, "Timeout": S, "Retries": 1})
    await setup.runner.feed(Outcome(0, b"partial", took=2))
    result = setup.health(cid).log[-1]
    assert (result.exit_code, result.output) == (
        -1, "Health check exceeded timeout (1s): partial")
    assert setup.health(cid).status is HealthStatus.UNHEALTHY
    assert setup.runner.calls[0][2] == 1.0


async def test_output_is_capped_and_five_results_kept(setup: Setup) -> None:
    cid = await _running(setup, CHECK)
    await setup.runner.feed(Outcome(0, b"x" * 5000))
    assert setup.health(cid).log[0].output == "x" * 4096 + "..."
    await setup.runner.feed(*[Outcome(0, str(n).encode()) for n in range(6)])
    assert [r.output for r in setup.health(cid).log] == ["1", "2", "3", "4", "5"]
    result = setup.health(cid).log[-1]
    assert result.start.endswith("Z") and result.start <= result.end


async def test_a_probe_that_cannot_start_is_a_failure_with_the_reason(setup: Setup) -> None:
    cid = await _running(setup, CHECK)
    message = ('OCI runtime exec failed: exec failed: unable to start container process: '
               'exec: "nope": executable file not found in $PATH: unknown')
    await setup.runner.feed(Outcome(error=Internal(message)))
    assert [(r.exit_code, r.output) for r in setup.health(cid).log] == [(-1, message)]
    # the container stopping under a probe is no result at all
    await setup.runner.feed(Outcome(error=Conflict(f"Container {cid} is not running")))
    assert len(setup.health(cid).log) == 1


async def test_the_check_stops_with_the_container_which_ends_unhealthy(setup: Setup) -> None:
    cid = await _running(setup, CHECK)
    await setup.runner.feed(Outcome(0))
    assert setup.health(cid).status is HealthStatus.HEALTHY
    await setup.service.kill(cid, "KILL")
    await setup.service.wait(cid)
    await _settle()
    assert not setup.service._ops.health.running(cid)
    state = setup.health(cid)
    assert (state.status, len(state.log)) == (HealthStatus.UNHEALTHY, 1)
    assert setup.service.get(cid).state.status.value == "exited"
    # a new start begins again: starting, streak 0, the log kept
    await setup.service.start(cid)
    assert (setup.health(cid).status, len(setup.health(cid).log)) == (HealthStatus.STARTING, 1)
    assert setup.service._ops.health.running(cid)
    await setup.service.remove(cid, force=True)
    await _settle()
    assert not setup.service._ops.health.running(cid)


async def test_pause_stops_the_check_and_unpause_resumes_it(setup: Setup) -> None:
    cid = await _running(setup, CHECK)
    await setup.runner.feed(Outcome(0))
    await setup.service.pause(cid)
    assert not setup.service._ops.health.running(cid)
    assert setup.health(cid).status is HealthStatus.UNHEALTHY
    await setup.service.pause(cid, resume=True)
    assert setup.service._ops.health.running(cid)
    assert setup.health(cid).status is HealthStatus.UNHEALTHY  # until the next probe says
    await setup.runner.feed(Outcome(0), Outcome(0))
    assert setup.health(cid).status is HealthStatus.HEALTHY


async def test_no_health_without_a_check(setup: Setup) -> None:
    plain = await _running(setup)
    disabled = await _running(setup, {"Test": ["NONE"]})
    created = setup.service.create({"Image": "img", "Healthcheck": CHECK}, None)
    await _settle()
    for cid in (plain, disabled, created.id):
        assert setup.health(cid) is None
        assert not setup.service._ops.health.running(cid)
    assert setup.runner.calls == []


async def test_the_check_goes_on_after_a_daemon_restart(setup: Setup) -> None:
    cid = await _running(setup, CHECK)
    await setup.runner.feed(Outcome(1), Outcome(1))
    assert setup.health(cid).status is HealthStatus.UNHEALTHY
    await setup.service.close()  # wharfd stops; the container keeps running
    assert not setup.service._ops.health.running(cid)
    record = setup.service.get(cid)
    record.state.conmon_pid = os.getpid()  # a conmon that is still alive
    setup.service.records.save(record)
    again, runner, _clock = _service(setup.state, setup.service.runtime)  # type: ignore[arg-type]
    await again.restore()
    await runner.feed(Outcome(0))
    state = again.get(cid).state.health
    assert state is not None
    assert (state.status, [r.exit_code for r in state.log]) == (HealthStatus.HEALTHY, [1, 1, 0])
    await again.close()


async def test_no_runner_no_checks(tmp_path: Path) -> None:
    state = StateStore(tmp_path / "s.db")
    state.open()
    service = ContainerService(ContainerRecords(state), FakeImages(), FakeRuntime(),  # type: ignore[arg-type]
                               FakeBundles(), EventLog(state))  # type: ignore[arg-type]
    record = service.create({"Image": "img", "Cmd": ["run", "-1"], "Healthcheck": CHECK}, None)
    service.runtime.args[record.id] = ["run", "-1"]  # type: ignore[attr-defined]
    await service.start(record.id)
    assert service.get(record.id).state.health is not None  # shown as starting, never probed
    assert not service._ops.health.running(record.id)
    await service.kill(record.id, "KILL")
