"""The health-check monitors: one asyncio task per running container with a HEALTHCHECK, as
dockerd's ``monitor`` goroutine (``daemon/health.go``).

Lifecycle: ``start`` when the container starts, is unpaused or is found running after a daemon
restart (the state kept in its record goes on); ``stop`` when it exits, is paused or is removed;
``close`` when the daemon stops (containers keep running, their checks resume at the next
start-up). Each task sleeps (``health.next_delay``), runs the probe through the ``ProbeRunner``
(an exec in the container), applies the result (``health.record_result``), writes the state into
the container's record and emits ``health_status: <status>`` when the status changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Protocol

from wharf.daemon.core.containers import health
from wharf.daemon.core.containers.context import ContainerContext
from wharf.daemon.core.containers.health import HealthConfig, HealthResult, HealthState
from wharf.daemon.core.containers.lifecycle import Status
from wharf.daemon.core.containers.records import ContainerRecord
from wharf.dockerapi import parse_time
from wharf.errors import Conflict, NotFound, WharfError

log = logging.getLogger("wharf.containers")


class ProbeRunner(Protocol):
    """Runs one health probe in a running container (the exec service)."""

    async def run_probe(self, container_id: str, argv: list[str], output: health.OutputBuffer,
                        timeout: float) -> int | None:
        """Run ``argv`` in the container, its stdout and stderr into ``output``; its exit code,
        or None when it ran past ``timeout`` seconds (it has been killed then).

        Raises:
            Conflict: the container is not running.
            WharfError: the probe could not be started (the message says why).
        """
        ...


class Clock(Protocol):
    """Wall-clock time and sleeping (a fake one in tests)."""

    def time_ns(self) -> int:
        ...

    async def sleep(self, seconds: float) -> None:
        ...


class SystemClock:
    """The real clock."""

    def time_ns(self) -> int:
        return time.time_ns()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class HealthMonitors:
    """The running health checks of the containers in ``ctx`` (none until a ``runner`` is
    given: the composition root hands over the exec service)."""

    def __init__(self, ctx: ContainerContext, clock: Clock | None = None,
                 runner: ProbeRunner | None = None) -> None:
        self.ctx = ctx
        self.clock: Clock = clock or SystemClock()
        self.runner = runner
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def start(self, record: ContainerRecord) -> None:
        """Check ``record`` (running, its Health set) from now on; nothing without a probe,
        without a runner, or when its check already runs."""
        config = record.healthcheck
        argv = config.command() if config is not None else None
        if (config is None or argv is None or record.state.health is None
                or self.runner is None or record.id in self._tasks):
            return
        started = int(parse_time(record.state.started_at).timestamp() * health.SECOND)
        task = asyncio.get_running_loop().create_task(
            self._monitor(record.id, config, argv, started, record.state.health))
        self._tasks[record.id] = task
        task.add_done_callback(lambda done: self._forget(record.id, done))

    def stop(self, container_id: str) -> None:
        """Stop the container's check (a probe in flight is killed)."""
        task = self._tasks.pop(container_id, None)
        if task is not None:
            task.cancel()

    def running(self, container_id: str) -> bool:
        """Whether the container's check is running."""
        return container_id in self._tasks

    async def close(self) -> None:
        """Stop every check, leaving the recorded states as they are."""
        tasks = list(self._tasks.values())
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _forget(self, container_id: str, task: asyncio.Task[None]) -> None:
        if self._tasks.get(container_id) is task:
            del self._tasks[container_id]
        if not task.cancelled() and task.exception() is not None:
            log.error("health check of %s failed", container_id, exc_info=task.exception())

    async def _monitor(self, container_id: str, config: HealthConfig, argv: list[str],
                       started: int, state: HealthState) -> None:
        while True:
            elapsed = self.clock.time_ns() - started
            await self.clock.sleep(health.next_delay(config, elapsed, state.status)
                                   / health.SECOND)
            begun = self.clock.time_ns()
            result = await self._probe(container_id, argv, config, begun)
            if result is None:
                continue  # the container is stopping: its exit ends this task
            before = state.status
            state = health.record_result(state, result, config, begun - started)
            if not self._save(container_id, state, before):
                return

    async def _probe(self, container_id: str, argv: list[str], config: HealthConfig,
                     begun: int) -> HealthResult | None:
        """One probe's result: its exit code and output; -1 with dockerd's message when it
        timed out or could not run. None when the container turned out not to be running."""
        assert self.runner is not None
        output = health.OutputBuffer()
        try:
            code = await self.runner.run_probe(container_id, argv, output,
                                               config.probe_timeout / health.SECOND)
        except Conflict:
            return None
        except WharfError as exc:
            code, text = -1, exc.message
        except Exception as exc:  # a failed probe is a result, never the end of the checks
            log.warning("health check of %s: %s", container_id, exc)
            code, text = -1, str(exc)
        else:
            text = output.text()
            if code is None:
                code, text = -1, health.timeout_output(config.probe_timeout, text)
        return HealthResult(start=health.rfc3339_nano(begun),
                            end=health.rfc3339_nano(self.clock.time_ns()),
                            exit_code=code, output=text)

    def _save(self, container_id: str, state: HealthState, before: health.HealthStatus) -> bool:
        """Write ``state`` into the record (no await between read and write: nothing else
        changes it meanwhile) and announce a new status; False once the container is not
        running any more."""
        try:
            record = self.ctx.records.get(container_id)
        except NotFound:
            return False
        if record.state.status is not Status.RUNNING:
            return False
        record.state.health = state
        self.ctx.records.save(record)
        if state.status is not before:
            self.ctx.event(record, f"health_status: {state.status.value}")
        return True
