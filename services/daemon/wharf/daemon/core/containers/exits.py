"""Exit watching and restart policies: one asyncio task per running container waits for its
conmon to end (a pidfd on the loop; polling conmon's exit file where there is none), reads the
exit file, records the exit (its health check stops), applies ``--rm`` and the restart policy,
and wakes the waiters (``wait``, ``stop``); after a daemon (re)start, ``restore`` reconciles the
records (live-restore) and resumes the health checks of the running containers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from typing import Protocol

from wharf.daemon.core.containers import health
from wharf.daemon.core.containers.context import ContainerContext, now
from wharf.daemon.core.containers.lifecycle import Status
from wharf.daemon.core.containers.networking import ContainerNetworking
from wharf.daemon.core.containers.probes import HealthMonitors
from wharf.daemon.core.containers.records import ContainerRecord
from wharf.daemon.core.runtime.monitor import ExitStatus, alive
from wharf.errors import Conflict, Internal, NotFound, WharfError

log = logging.getLogger("wharf.containers")


class LifecycleOps(Protocol):
    """What exit handling calls back into: ``--rm`` and the restart of an exited container."""

    async def remove(self, text: str, *, force: bool = False, volumes: bool = False) -> None:
        ...

    async def start_locked(self, record: ContainerRecord) -> None:
        """Start a container whose lock the caller holds."""
        ...


class ExitWatcher:
    """The exit watchers, the restart policy and the waiters of the containers in ``ctx``."""

    def __init__(self, ctx: ContainerContext, networking: ContainerNetworking,
                 ops: LifecycleOps, checks: HealthMonitors) -> None:
        self.ctx = ctx
        self.networking = networking
        self.ops = ops
        self.checks = checks
        self._watchers: dict[str, asyncio.Task[None]] = {}
        self._exited: defaultdict[str, list[asyncio.Future[int]]] = defaultdict(list)
        self._removed: defaultdict[str, list[asyncio.Future[int]]] = defaultdict(list)

    # --- watching -------------------------------------------------------------------------------

    def watch(self, container_id: str) -> None:
        task = asyncio.get_running_loop().create_task(self._watch_exit(container_id))
        self._watchers[container_id] = task
        task.add_done_callback(lambda _t: self._watchers.pop(container_id, None))

    async def _watch_exit(self, container_id: str) -> None:
        """Wait for the container's conmon to end and record the exit its exit file holds
        (255 when conmon died without writing one)."""
        conmon_pid = self.ctx.records.get(container_id).state.conmon_pid
        began = time.perf_counter()
        status = await self._conmon_ended(container_id, conmon_pid)
        if status is None:  # no pidfd: poll the exit file
            status = await self._poll_exit(container_id, conmon_pid)
        self.ctx.phases.add("exit.detect", time.perf_counter() - began)
        await self._on_exit(container_id, status)

    async def _conmon_ended(self, container_id: str, conmon_pid: int) -> ExitStatus | None:
        """The exit, once conmon (which writes the exit file, then ends) has ended: its pidfd
        on the loop wakes this at once, with nothing polled while the container runs. None
        when conmon cannot be watched so (no pid recorded, no pidfd on this kernel)."""
        if not conmon_pid:
            return None
        try:
            fd = os.pidfd_open(conmon_pid)
        except ProcessLookupError:  # gone already
            fd = -1
        except OSError:
            return None
        try:
            if fd >= 0 and self.ctx.runtime.exit_status(container_id) is None:
                loop = asyncio.get_running_loop()
                ended: asyncio.Future[None] = loop.create_future()
                loop.add_reader(fd, _settle, ended)
                try:
                    await ended
                finally:
                    loop.remove_reader(fd)
            return self.ctx.runtime.exit_status(container_id) or ExitStatus(255, False, 0)
        finally:
            if fd >= 0:
                os.close(fd)

    async def _poll_exit(self, container_id: str, conmon_pid: int) -> ExitStatus:
        """Poll the exit file (2 ms backing off to 100 ms); a conmon that died without writing
        one is checked about once a second and recorded as exit 255."""
        delay, polls = 0.002, 0
        while (status := self.ctx.runtime.exit_status(container_id)) is None:
            polls += 1
            if conmon_pid and polls % 10 == 0 and not alive(conmon_pid):
                return self.ctx.runtime.exit_status(container_id) or ExitStatus(255, False, 0)
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 0.1)
        return status

    async def _on_exit(self, container_id: str, status: ExitStatus) -> None:
        async with self.ctx.locks[container_id], self._recording():
            try:
                record = self.ctx.records.get(container_id)
            except NotFound:
                return
            if record.state.status not in (Status.RUNNING, Status.PAUSED):
                return
            self.checks.stop(container_id)
            checked = record.state.health
            record.state = record.state.model_copy(update={
                "status": Status.EXITED, "pid": 0, "exit_code": status.code,
                "oom_killed": status.oom_killed, "finished_at": now(),
                # dockerd: "unhealthy when the monitor has stopped for compatibility reasons"
                "health": health.on_stop(checked) if checked is not None else None,
            })
            self.ctx.records.save(record)
            if status.oom_killed:
                self.ctx.event(record, "oom")
            self.ctx.event(record, "die", exitCode=str(status.code))
            # the waiters first: what they do next (start, rm) takes the lock held here
            for future in self._exited.pop(container_id, []):
                if not future.done():
                    future.set_result(status.code)
            await asyncio.to_thread(self.ctx.rt(record).delete, container_id, True)
            self.networking.schedule_teardown(container_id)
        if record.auto_remove:  # --rm takes the anonymous volumes along, as in dockerd
            with contextlib.suppress(NotFound, Conflict):
                await self.ops.remove(container_id, force=True, volumes=True)
        elif self._should_restart(record):
            await self._restart_after_exit(record)

    @contextlib.asynccontextmanager
    async def _recording(self) -> AsyncIterator[None]:
        with self.ctx.phases.span("exit.record"):
            yield

    def _should_restart(self, record: ContainerRecord) -> bool:
        policy = record.restart_policy
        if record.state.stopped_by_user or policy.name in ("", "no"):
            return False
        if policy.name == "on-failure":
            limit = policy.max_retries
            return record.state.exit_code != 0 and (
                limit == 0 or record.state.restart_count < limit)
        return True  # always, unless-stopped

    async def _restart_after_exit(self, record: ContainerRecord) -> None:
        delay = min(0.1 * 2 ** record.state.restart_count, 10.0)  # dockerd's doubling backoff
        await asyncio.sleep(delay)
        async with self.ctx.locks[record.id]:
            try:
                current = self.ctx.records.get(record.id)
            except NotFound:
                return
            if current.state.status is not Status.EXITED or current.state.stopped_by_user:
                return
            current.state.restart_count += 1
            self.ctx.records.save(current)
            try:
                await self.ops.start_locked(current)
            except WharfError as exc:
                log.warning("restart of %s failed: %s", current.name, exc)

    async def wait_recorded(self, container_id: str) -> None:
        """Let the container's watcher (unless that is the caller) record the exit (and the
        die event) first."""
        watcher = self._watchers.get(container_id)
        if watcher is not None and watcher is not asyncio.current_task():
            with contextlib.suppress(asyncio.CancelledError):
                await watcher

    # --- waiters --------------------------------------------------------------------------------

    def exit_future(self, container_id: str) -> asyncio.Future[int]:
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._exited[container_id].append(future)
        return future

    def removal_future(self, container_id: str) -> asyncio.Future[int]:
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._removed[container_id].append(future)
        return future

    def wake_removed(self, container_id: str, exit_code: int) -> None:
        for future in self._removed.pop(container_id, []):
            if not future.done():
                future.set_result(exit_code)

    def fail_waiters(self, container_id: str) -> None:
        for future in self._exited.pop(container_id, []):
            if not future.done():
                future.set_exception(Internal("context canceled"))

    # --- daemon start-up: live-restore ---------------------------------------------------------

    async def restore(self) -> None:
        """Reconcile records with conmon and the exit files after a daemon (re)start."""
        for record in self.ctx.records.all():
            if record.state.status in (Status.RUNNING, Status.PAUSED):
                status = self.ctx.runtime.exit_status(record.id)
                if status is not None or not alive(record.state.conmon_pid):
                    await self._on_exit(record.id, status or ExitStatus(255, False, 0))
                else:
                    self.watch(record.id)
                    if record.state.status is Status.RUNNING:  # a paused one's check is off
                        self.checks.start(record)
            elif (record.state.status is Status.EXITED and self._should_restart(record)
                  and record.restart_policy.name in ("always", "unless-stopped")):
                asyncio.get_running_loop().create_task(self._restart_after_exit(record))

    async def close(self) -> None:
        """Stop watching and checking (containers keep running: live-restore)."""
        for task in list(self._watchers.values()):
            task.cancel()
        await self.checks.close()


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
