"""The lifecycle operations: create, start, stop, kill, restart, wait, remove, pause, rename and
prune. Operations on one container are serialised by its lock (``ContainerContext.locks``);
the state machine (``lifecycle``) decides what is allowed.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal as signals
from typing import Any

from wharf import ids
from wharf.daemon.core.containers import config as cfg
from wharf.daemon.core.containers import health, names
from wharf.daemon.core.containers import options as opts
from wharf.daemon.core.containers.containerio import ContainerIO
from wharf.daemon.core.containers.context import ContainerContext, now
from wharf.daemon.core.containers.exits import ExitWatcher
from wharf.daemon.core.containers.lifecycle import Op, Status, next_status
from wharf.daemon.core.containers.networking import ContainerNetworking
from wharf.daemon.core.containers.options import parse_signal
from wharf.daemon.core.containers.probes import HealthMonitors
from wharf.daemon.core.containers.records import ContainerRecord
from wharf.daemon.core.diskusage import container_size
from wharf.daemon.core.prunefilter import PruneFilter
from wharf.daemon.core.runtime.monitor import CreateRequest
from wharf.daemon.core.volumes import mountspec
from wharf.errors import Conflict, InvalidArgument, NotFound, NotModified, WharfError

__all__ = ["Operations", "parse_signal"]  # parse_signal: Docker's signal names (options)


class Operations:
    """Create, start, stop, remove (and the rest) the containers in ``ctx``; owns their exit
    watcher, which calls back here for ``--rm`` and restarts, and their health checks."""

    def __init__(self, ctx: ContainerContext, networking: ContainerNetworking,
                 io: ContainerIO) -> None:
        self.ctx = ctx
        self.networking = networking
        self.io = io
        self.health = HealthMonitors(ctx)
        self.exits = ExitWatcher(ctx, networking, self, self.health)

    # --- create ---------------------------------------------------------------------------

    def create(self, body: dict[str, Any], name: str | None) -> ContainerRecord:
        """Record a new container from a Docker create body; nothing runs yet."""
        with self.ctx.phases.span("create"):
            return self._create(body, name)

    def _create(self, body: dict[str, Any], name: str | None) -> ContainerRecord:
        image_ref = str(body.get("Image") or "")
        if not image_ref:
            raise InvalidArgument("Config.Image is required")
        try:
            image = self.ctx.images.resolve(image_ref)
        except NotFound:
            raise NotFound(f"No such image: {image_ref}") from None
        host = body.get("HostConfig") or {}
        if not isinstance(host, dict):
            raise InvalidArgument("HostConfig must be an object")
        container_id = ids.new_id()
        config = cfg.merge_config(body, image.config, container_id[:12])
        argv = cfg.command_line(config)
        options = opts.parse(host, config)
        options.check_host(self.ctx.bundles.host)
        options, endpoints = self.networking.check(options, body)
        # kept as sent for inspect, with the network mode as resolved
        host = {**host, "NetworkMode": options.network_mode}
        taken = self.ctx.records.name_taken
        chosen = names.validate(name) if name else names.random_name(taken)
        mounts = mountspec.plan(host, config.get("Volumes"),
                                inherited=self._volumes_from(host.get("VolumesFrom")))
        record = ContainerRecord(
            id=container_id, name=chosen, image=image_ref, image_id=image.id, created_at=now(),
            path=argv[0], args=argv[1:], config=config, host_config=host, options=options,
            runtime=self.ctx.runtime_name(host), mounts=mounts, endpoints=endpoints,
        )
        with self.ctx.phases.span("create.record"), self.ctx.records.state.tx():
            self.ctx.records.insert(record)  # the record and its use of volumes, or neither
            if mounts:
                record.mounts = self.ctx.volume_service().attach(record.id, mounts)
                self.ctx.records.save(record)
        try:
            with self.ctx.phases.span("create.bundle"):
                self.ctx.bundles.prepare(record)
        except BaseException:
            self.ctx.records.delete(container_id)
            self.ctx.bundles.remove(container_id)
            raise
        self.ctx.event(record, "create")
        return record

    def _volumes_from(self, entries: Any) -> list[mountspec.MountPoint]:
        """The mounts of each ``--volumes-from container[:ro|rw]``."""
        if entries is not None and not isinstance(entries, list):
            raise InvalidArgument("HostConfig.VolumesFrom must be a list")
        out: list[mountspec.MountPoint] = []
        for entry in entries or []:
            name, _, mode = str(entry).partition(":")
            out += mountspec.from_volumes_from(self.ctx.records.resolve(name).mounts, mode)
        return out

    # --- start ----------------------------------------------------------------------------

    async def start(self, text: str) -> None:
        record = self.ctx.records.resolve(text)
        try:
            async with self.ctx.locks[record.id]:
                record = self.ctx.records.get(record.id)
                next_status(record.state.status, Op.START, name=text)
                with self.ctx.phases.span("start"):
                    await self.start_locked(record)
        except WharfError as exc:
            if record.auto_remove and not isinstance(exc, NotModified):
                with contextlib.suppress(WharfError):  # dockerd removes a --rm that never ran
                    await self.remove(record.id, force=True, volumes=True)
            raise

    async def start_locked(self, record: ContainerRecord) -> None:
        """Start a created or exited container whose lock the caller holds."""
        image = self.ctx.images.get(record.image_id)
        lowers = [self.ctx.images.layers.diff_path(c) for c in reversed(image.chain_ids)]
        try:
            if record.options.refused:  # an older wharfd's record this one cannot run
                raise InvalidArgument(record.options.refused)
            span = self.ctx.phases.span
            with span("start.cleanup"):  # a previous run
                await asyncio.to_thread(self.ctx.rt(record).delete, record.id, True)
            with span("start.mount"):
                merged = await asyncio.to_thread(self.ctx.bundles.mount, record, lowers)
                if record.mounts:
                    await asyncio.to_thread(self.ctx.volume_service().prepare, record.mounts,
                                            merged)
            with span("start.network"):
                netns = await self.networking.setup(record)
            with span("start.config"):
                await asyncio.to_thread(self.ctx.bundles.write_config, record, merged,
                                        self.ctx.rt(record).oci.takes_seccomp_bpf, netns)
            process = record.options.process
            request = CreateRequest(record.id, record.name, terminal=process.tty,
                                    stdin=process.open_stdin,
                                    leave_stdin_open=process.open_stdin and not process.stdin_once)
            with span("start.create"):
                pid = await asyncio.to_thread(self.ctx.rt(record).create, request)
            await self.io.let_attachers_in(record.id)
            with span("start.start"):
                await asyncio.to_thread(self.ctx.rt(record).start, record.id)
        except WharfError as exc:
            self.io.release_attachers(record.id)  # they find no socket and hang up
            await asyncio.to_thread(self.ctx.rt(record).delete, record.id, True)
            await self.networking.teardown(record.id)
            record.state.error = exc.message
            record.network = {}
            self.ctx.records.save(record)
            self.exits.fail_waiters(record.id)
            raise _start_error(exc) from exc
        checked = record.healthcheck is not None and record.healthcheck.command() is not None
        record.state = record.state.model_copy(update={
            "status": Status.RUNNING, "pid": pid, "exit_code": 0, "error": "",
            "oom_killed": False, "started_at": now(), "stopped_by_user": False,
            "conmon_pid": self.ctx.runtime.conmon_pid(record.id) or 0,
            "health": health.on_start(record.state.health) if checked else record.state.health,
        })
        with self.ctx.phases.span("start.record"):
            self.ctx.records.save(record)
        self.ctx.event(record, "start")
        self.exits.watch(record.id)
        self.health.start(record)

    # --- stop, kill, wait, remove ------------------------------------------------------------

    async def stop(self, text: str, timeout: int | None = None,
                   signal: str | None = None) -> None:
        record = self.ctx.records.resolve(text)
        if record.state.status not in (Status.RUNNING, Status.PAUSED, Status.RESTARTING):
            raise NotModified(f"container {text} is already stopped")
        record.state.stopped_by_user = True
        self.ctx.records.save(record)
        exited = self.exits.exit_future(record.id)
        stop_signal = (parse_signal(signal) if signal
                       else record.options.process.stop_signal)
        grace = 10 if timeout is None else timeout
        with contextlib.suppress(WharfError):
            self.ctx.event(record, "kill", signal=str(stop_signal))
            await asyncio.to_thread(self.ctx.rt(record).kill, record.id, stop_signal)
        if grace < 0:
            await exited
        else:
            try:
                await asyncio.wait_for(asyncio.shield(exited), grace)
            except TimeoutError:
                self.ctx.event(record, "kill", signal=str(int(signals.SIGKILL)))
                with contextlib.suppress(WharfError):
                    await asyncio.to_thread(self.ctx.rt(record).kill, record.id,
                                            signals.SIGKILL, True)
                await exited
        self.ctx.event(self.ctx.records.get(record.id), "stop")

    async def kill(self, text: str, signal: str | None = None) -> None:
        record = self.ctx.records.resolve(text)
        next_status(record.state.status, Op.KILL, name=text)
        number = parse_signal(signal)
        if number in (signals.SIGKILL, signals.SIGTERM, signals.SIGINT):
            record.state.stopped_by_user = True  # dockerd: kill counts as a manual stop
            self.ctx.records.save(record)
        self.ctx.event(record, "kill", signal=str(number))
        await asyncio.to_thread(self.ctx.rt(record).kill, record.id, number)

    async def restart(self, text: str, timeout: int | None = None) -> None:
        with contextlib.suppress(NotModified):
            await self.stop(text, timeout)
        await self.start(text)
        self.ctx.event(self.ctx.records.resolve(text), "restart")

    async def wait(self, text: str, condition: str = "not-running") -> int:
        """Docker's wait: not-running (default), next-exit or removed; returns the exit code."""
        record = self.ctx.records.resolve(text)
        if condition in ("", "not-running") and record.state.status in (
                Status.CREATED, Status.EXITED, Status.DEAD):
            return record.state.exit_code
        if condition not in ("", "not-running", "next-exit", "removed"):
            raise InvalidArgument(f"invalid condition: {condition!r}")
        if condition == "removed":
            return await self.exits.removal_future(record.id)
        return await self.exits.exit_future(record.id)

    async def remove(self, text: str, *, force: bool = False, volumes: bool = False) -> None:
        """Remove a container (``force``: kill it first); ``volumes``: its anonymous volumes
        too (``rm -v``). Its use of volumes ends with its record."""
        record = self.ctx.records.resolve(text)
        async with self.ctx.locks[record.id]:
            record = self.ctx.records.get(record.id)
            next_status(record.state.status, Op.REMOVE, name=text, force=force)
            if record.state.status in (Status.RUNNING, Status.PAUSED):
                record.state.stopped_by_user = True
                self.ctx.records.save(record)
                with contextlib.suppress(WharfError):
                    await asyncio.to_thread(self.ctx.rt(record).kill, record.id,
                                            signals.SIGKILL, True)
        self.health.stop(record.id)
        await self.exits.wait_recorded(record.id)  # records the exit (and the die event) first
        span = self.ctx.phases.span
        async with self.ctx.locks[record.id]:
            with span("remove.runtime"):
                await asyncio.to_thread(self.ctx.rt(record).delete, record.id, True)
            with span("remove.bundle"):
                await asyncio.to_thread(self.ctx.bundles.remove, record.id)
            with span("remove.record"):
                self.ctx.records.delete(record.id)
            self.ctx.event(record, "destroy")
        self.ctx.locks.pop(record.id, None)
        if volumes and self.ctx.volumes is not None:
            await self.ctx.volumes.release(record.mounts)
        self.exits.wake_removed(record.id, record.state.exit_code)
        # after the waiters (run --rm is not held up), before rm returns: nothing left behind
        with span("remove.network"):
            await self.networking.teardown(record.id)

    async def pause(self, text: str, *, resume: bool = False) -> None:
        """Freeze (or thaw) every process of the container through the runtime's cgroup."""
        record = self.ctx.records.resolve(text)
        async with self.ctx.locks[record.id]:
            record = self.ctx.records.get(record.id)
            target = next_status(record.state.status, Op.UNPAUSE if resume else Op.PAUSE,
                                 name=text)
            await asyncio.to_thread(self.ctx.rt(record).oci.run,
                                    "resume" if resume else "pause", record.id)
            record = self.ctx.records.get(record.id)  # a health check may have saved meanwhile
            record.state.status = target
            if not resume and record.state.health is not None:
                self.health.stop(record.id)  # dockerd stops the check of a paused container
                record.state.health = health.on_stop(record.state.health)
            self.ctx.records.save(record)
            self.ctx.event(record, "unpause" if resume else "pause")
            if resume:
                self.health.start(record)

    def rename(self, text: str, new_name: str) -> None:
        record = self.ctx.records.resolve(text)
        new = names.validate(new_name)
        if new == record.name:
            raise InvalidArgument(f"Renaming a container with the same name as its current "
                                  f"name: {new}")
        if self.ctx.records.name_taken(new):
            raise Conflict(f'Conflict. The container name "/{new}" is already in use')
        old, record.name = record.name, new
        self.ctx.records.save(record)
        self.ctx.event(record, "rename", oldName="/" + old)

    async def prune(self, wanted: PruneFilter) -> tuple[list[str], int]:
        """Remove the stopped containers ``wanted`` matches (labels, created ``until``); the
        ids and, as dockerd reports it, the bytes their writable layers held."""
        removed: list[str] = []
        space = 0
        for record in self.ctx.records.all():
            if (record.state.status not in (Status.EXITED, Status.CREATED, Status.DEAD)
                    or not wanted.matches(record.config.get("Labels"), record.created_at)):
                continue
            size = await asyncio.to_thread(container_size, self.io.upper_dir(record))
            try:
                await self.remove(record.id)
            except (Conflict, NotFound):  # started or removed meanwhile: dockerd goes on
                continue
            removed.append(record.id)
            space += size
        return removed, space


def _start_error(exc: WharfError) -> WharfError:
    """Runtime failures in Docker's words, so clients map them to exit codes 126/127."""
    text = exc.message
    lowered = text.lower()
    if "not found" in lowered and ("executable" in lowered or "no such file" in lowered):
        return InvalidArgument(
            f"failed to create task: OCI runtime create failed: {text}: "
            "exec: executable file not found in $PATH: unknown")
    if "permission denied" in lowered:
        return InvalidArgument(f"failed to create task: OCI runtime create failed: {text}: "
                               "permission denied: unknown")
    return exc
