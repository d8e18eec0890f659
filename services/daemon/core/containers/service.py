"""ContainerService: create, start, stop, kill, remove, wait and restart containers.

Each container runs under its own conmon (so it outlives wharfd); the service watches conmon's
exit file with one asyncio task per running container, records the exit, applies ``--rm`` and
restart policies, and wakes waiters. Lifecycle operations on one container are serialised by a
per-container lock; the state machine (``lifecycle``) decides what is allowed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal as signals
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from wharf import ids
from wharf.daemon.core.containers import config as cfg
from wharf.daemon.core.containers import names
from wharf.daemon.core.containers.bundle import Bundles
from wharf.daemon.core.containers.lifecycle import Op, Status, next_status
from wharf.daemon.core.containers.records import ContainerRecord, ContainerRecords
from wharf.daemon.core.events import EventLog
from wharf.daemon.core.images.store import ImageStore
from wharf.daemon.core.runtime.monitor import ConmonRuntime, CreateRequest, ExitStatus, alive
from wharf.daemon.core.volumes import mountspec
from wharf.daemon.core.volumes.service import VolumeService
from wharf.errors import Conflict, Internal, InvalidArgument, NotFound, NotModified, WharfError

log = logging.getLogger("wharf.containers")
ATTACH_GRACE = 2.0  # seconds start() waits for announced attachers to connect


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def parse_signal(value: str | int | None, default: int = signals.SIGKILL) -> int:
    """Docker's signal argument: a name (KILL, SIGKILL) or a number."""
    if value in (None, ""):
        return default
    text = str(value).upper()
    if text.isdigit():
        number = int(text)
        if not 0 < number < 65:
            raise InvalidArgument(f"Invalid signal: {value}")
        return number
    try:
        return int(signals.Signals[text if text.startswith("SIG") else "SIG" + text])
    except KeyError:
        raise InvalidArgument(f"Invalid signal: {value}") from None


class ContainerService:
    """The container half of the engine."""

    def __init__(self, records: ContainerRecords, images: ImageStore, runtime: ConmonRuntime,
                 bundles: Bundles, events: EventLog,
                 others: dict[str, ConmonRuntime] | None = None,
                 volumes: VolumeService | None = None) -> None:
        self.records = records
        self.volumes = volumes
        self.images = images
        self.runtime = runtime  # the default; paths (logs, exit files, sockets) are shared
        self.runtimes = {runtime.oci.kind.value: runtime, **(others or {})}
        self.bundles = bundles
        self.events = events
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._watchers: dict[str, asyncio.Task[None]] = {}
        self._exited: defaultdict[str, list[asyncio.Future[int]]] = defaultdict(list)
        self._removed: defaultdict[str, list[asyncio.Future[int]]] = defaultdict(list)
        self._created: defaultdict[str, asyncio.Event] = defaultdict(asyncio.Event)
        self._attachers: defaultdict[str, list[asyncio.Event]] = defaultdict(list)
        images.users = records.using_image

    def _rt(self, record: ContainerRecord) -> ConmonRuntime:
        """The OCI runtime this container was created with (``--runtime``)."""
        return self.runtimes.get(record.runtime, self.runtime)

    def _runtime_name(self, host: dict[str, Any]) -> str:
        name = str(host.get("Runtime") or self.runtime.oci.kind.value)
        if name not in self.runtimes:
            raise InvalidArgument(f"unknown or invalid runtime name: {name}")
        return name

    # --- queries ------------------------------------------------------------------------------

    def get(self, text: str) -> ContainerRecord:
        return self.records.resolve(text)

    def list_containers(self) -> list[ContainerRecord]:
        return self.records.all()

    # --- create ---------------------------------------------------------------------------

    def create(self, body: dict[str, Any], name: str | None) -> ContainerRecord:
        """Record a new container from a Docker create body; nothing runs yet."""
        image_ref = str(body.get("Image") or "")
        if not image_ref:
            raise InvalidArgument("Config.Image is required")
        try:
            image = self.images.resolve(image_ref)
        except NotFound:
            raise NotFound(f"No such image: {image_ref}") from None
        host = cfg.check_host_config(dict(body.get("HostConfig") or {}))
        container_id = ids.new_id()
        config = cfg.merge_config(body, image.config, container_id[:12])
        argv = cfg.command_line(config)
        chosen = names.validate(name) if name else names.random_name(self.records.name_taken)
        mounts = mountspec.plan(host, config.get("Volumes"),
                                inherited=self._volumes_from(host.get("VolumesFrom")))
        record = ContainerRecord(
            id=container_id, name=chosen, image=image_ref, image_id=image.id, created_at=now(),
            path=argv[0], args=argv[1:], config=config, host_config=host,
            runtime=self._runtime_name(host), mounts=mounts,
        )
        with self.records.state.tx():  # the record and its use of volumes, or neither
            self.records.insert(record)
            if mounts:
                record.mounts = self._volumes().attach(record.id, mounts)
                self.records.save(record)
        try:
            self.bundles.prepare(record)
        except BaseException:
            self.records.delete(container_id)
            self.bundles.remove(container_id)
            raise
        self._event(record, "create")
        return record

    def _volumes(self) -> VolumeService:
        if self.volumes is None:
            raise InvalidArgument("volumes are not available on this wharfd")
        return self.volumes

    def _volumes_from(self, entries: Any) -> list[mountspec.MountPoint]:
        """The mounts of each ``--volumes-from container[:ro|rw]``."""
        if entries is not None and not isinstance(entries, list):
            raise InvalidArgument("HostConfig.VolumesFrom must be a list")
        out: list[mountspec.MountPoint] = []
        for entry in entries or []:
            name, _, mode = str(entry).partition(":")
            out += mountspec.from_volumes_from(self.records.resolve(name).mounts, mode)
        return out

    # --- start ----------------------------------------------------------------------------

    async def start(self, text: str) -> None:
        record = self.get(text)
        try:
            async with self._locks[record.id]:
                record = self.records.get(record.id)
                next_status(record.state.status, Op.START, name=text)
                await self._start_locked(record)
        except WharfError as exc:
            if record.auto_remove and not isinstance(exc, NotModified):
                with contextlib.suppress(WharfError):  # dockerd removes a --rm that never ran
                    await self.remove(record.id, force=True, volumes=True)
            raise

    async def _start_locked(self, record: ContainerRecord) -> None:
        image = self.images.get(record.image_id)
        lowers = [self.images.layers.diff_path(c) for c in reversed(image.chain_ids)]
        try:
            await asyncio.to_thread(self._rt(record).delete, record.id, True)  # a previous run
            merged = await asyncio.to_thread(self.bundles.mount, record, lowers)
            if record.mounts:
                await asyncio.to_thread(self._volumes().prepare, record.mounts, merged)
            await asyncio.to_thread(self.bundles.write_config, record, merged,
                                    self._rt(record).oci.takes_seccomp_bpf)
            stdin = bool(record.config.get("OpenStdin"))
            request = CreateRequest(record.id, record.name,
                                    terminal=bool(record.config.get("Tty")), stdin=stdin,
                                    leave_stdin_open=stdin and not record.config.get("StdinOnce"))
            pid = await asyncio.to_thread(self._rt(record).create, request)
            await self._let_attachers_in(record.id)
            await asyncio.to_thread(self._rt(record).start, record.id)
        except WharfError as exc:
            self._release_attachers(record.id)  # they find no socket and hang up
            await asyncio.to_thread(self._rt(record).delete, record.id, True)
            record.state.error = exc.message
            self.records.save(record)
            self._fail_waiters(record.id)
            raise _start_error(exc) from exc
        record.state = record.state.model_copy(update={
            "status": Status.RUNNING, "pid": pid, "exit_code": 0, "error": "",
            "oom_killed": False, "started_at": now(), "stopped_by_user": False,
            "conmon_pid": self.runtime.conmon_pid(record.id) or 0,
        })
        self.records.save(record)
        self._event(record, "start")
        self._watch(record.id)

    async def _let_attachers_in(self, container_id: str) -> None:
        """Wake attachers waiting for the attach socket; give them a moment to connect."""
        self._created[container_id].set()
        waiting = list(self._attachers.pop(container_id, []))
        if waiting:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*(e.wait() for e in waiting)),
                                       ATTACH_GRACE)
        self._created.pop(container_id, None)

    def _release_attachers(self, container_id: str) -> None:
        self._created.pop(container_id, asyncio.Event()).set()
        self._attachers.pop(container_id, None)

    def announce_attacher(self, container_id: str) -> tuple[asyncio.Event, asyncio.Event]:
        """For an attach before start: (socket ready, I am connected)."""
        connected = asyncio.Event()
        self._attachers[container_id].append(connected)
        return self._created[container_id], connected

    # --- exit handling ----------------------------------------------------------------------

    def _watch(self, container_id: str) -> None:
        task = asyncio.get_running_loop().create_task(self._watch_exit(container_id))
        self._watchers[container_id] = task
        task.add_done_callback(lambda _t: self._watchers.pop(container_id, None))

    async def _watch_exit(self, container_id: str) -> None:
        """Poll the exit file (2 ms backing off to 100 ms); a conmon that died without writing
        one is checked about once a second and recorded as exit 255."""
        conmon_pid = self.records.get(container_id).state.conmon_pid
        delay, polls = 0.002, 0
        while (status := self.runtime.exit_status(container_id)) is None:
            polls += 1
            if conmon_pid and polls % 10 == 0 and not alive(conmon_pid):
                status = self.runtime.exit_status(container_id) or ExitStatus(255, False, 0)
                break
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 0.1)
        await self._on_exit(container_id, status)

    async def _on_exit(self, container_id: str, status: ExitStatus) -> None:
        async with self._locks[container_id]:
            try:
                record = self.records.get(container_id)
            except NotFound:
                return
            if record.state.status not in (Status.RUNNING, Status.PAUSED):
                return
            record.state = record.state.model_copy(update={
                "status": Status.EXITED, "pid": 0, "exit_code": status.code,
                "oom_killed": status.oom_killed, "finished_at": now(),
            })
            self.records.save(record)
            if status.oom_killed:
                self._event(record, "oom")
            self._event(record, "die", exitCode=str(status.code))
            await asyncio.to_thread(self._rt(record).delete, container_id, True)
            for future in self._exited.pop(container_id, []):
                if not future.done():
                    future.set_result(status.code)
        if record.auto_remove:  # --rm takes the anonymous volumes along, as in dockerd
            with contextlib.suppress(NotFound, Conflict):
                await self.remove(container_id, force=True, volumes=True)
        elif self._should_restart(record):
            await self._restart_after_exit(record)

    def _should_restart(self, record: ContainerRecord) -> bool:
        policy = record.restart_policy
        if record.state.stopped_by_user or policy.Name in ("", "no"):
            return False
        if policy.Name == "on-failure":
            limit = policy.MaximumRetryCount
            return record.state.exit_code != 0 and (
                limit == 0 or record.state.restart_count < limit)
        return True  # always, unless-stopped

    async def _restart_after_exit(self, record: ContainerRecord) -> None:
        delay = min(0.1 * 2 ** record.state.restart_count, 10.0)  # dockerd's doubling backoff
        await asyncio.sleep(delay)
        async with self._locks[record.id]:
            try:
                current = self.records.get(record.id)
            except NotFound:
                return
            if current.state.status is not Status.EXITED or current.state.stopped_by_user:
                return
            current.state.restart_count += 1
            self.records.save(current)
            try:
                await self._start_locked(current)
            except WharfError as exc:
                log.warning("restart of %s failed: %s", current.name, exc)

    def _fail_waiters(self, container_id: str) -> None:
        for future in self._exited.pop(container_id, []):
            if not future.done():
                future.set_exception(Internal("context canceled"))

    # --- stop, kill, wait, remove ------------------------------------------------------------

    async def stop(self, text: str, timeout: int | None = None,
                   signal: str | None = None) -> None:
        record = self.get(text)
        if record.state.status not in (Status.RUNNING, Status.PAUSED, Status.RESTARTING):
            raise NotModified(f"container {text} is already stopped")
        record.state.stopped_by_user = True
        self.records.save(record)
        exited = self._exit_future(record.id)
        stop_signal = parse_signal(signal or record.config.get("StopSignal"), signals.SIGTERM)
        grace = 10 if timeout is None else timeout
        with contextlib.suppress(WharfError):
            self._event(record, "kill", signal=str(stop_signal))
            await asyncio.to_thread(self._rt(record).kill, record.id, stop_signal)
        if grace < 0:
            await exited
        else:
            try:
                await asyncio.wait_for(asyncio.shield(exited), grace)
            except TimeoutError:
                self._event(record, "kill", signal=str(int(signals.SIGKILL)))
                with contextlib.suppress(WharfError):
                    await asyncio.to_thread(self._rt(record).kill, record.id, signals.SIGKILL, True)
                await exited
        self._event(self.records.get(record.id), "stop")

    async def kill(self, text: str, signal: str | None = None) -> None:
        record = self.get(text)
        next_status(record.state.status, Op.KILL, name=text)
        number = parse_signal(signal)
        if number in (signals.SIGKILL, signals.SIGTERM, signals.SIGINT):
            record.state.stopped_by_user = True  # dockerd: kill counts as a manual stop
            self.records.save(record)
        self._event(record, "kill", signal=str(number))
        await asyncio.to_thread(self._rt(record).kill, record.id, number)

    async def restart(self, text: str, timeout: int | None = None) -> None:
        with contextlib.suppress(NotModified):
            await self.stop(text, timeout)
        await self.start(text)
        self._event(self.get(text), "restart")

    def _exit_future(self, container_id: str) -> asyncio.Future[int]:
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._exited[container_id].append(future)
        return future

    async def wait(self, text: str, condition: str = "not-running") -> int:
        """Docker's wait: not-running (default), next-exit or removed; returns the exit code."""
        record = self.get(text)
        if condition in ("", "not-running") and record.state.status in (
                Status.CREATED, Status.EXITED, Status.DEAD):
            return record.state.exit_code
        if condition not in ("", "not-running", "next-exit", "removed"):
            raise InvalidArgument(f"invalid condition: {condition!r}")
        if condition == "removed":
            future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
            self._removed[record.id].append(future)
            return await future
        return await self._exit_future(record.id)

    async def remove(self, text: str, *, force: bool = False, volumes: bool = False) -> None:
        """Remove a container (``force``: kill it first); ``volumes``: its anonymous volumes
        too (``rm -v``). Its use of volumes ends with its record."""
        record = self.get(text)
        async with self._locks[record.id]:
            record = self.records.get(record.id)
            next_status(record.state.status, Op.REMOVE, name=text, force=force)
            if record.state.status in (Status.RUNNING, Status.PAUSED):
                record.state.stopped_by_user = True
                self.records.save(record)
                with contextlib.suppress(WharfError):
                    await asyncio.to_thread(self._rt(record).kill, record.id, signals.SIGKILL, True)
        watcher = self._watchers.get(record.id)
        if watcher is not None and watcher is not asyncio.current_task():
            with contextlib.suppress(asyncio.CancelledError):
                await watcher  # records the exit (and the die event) first
        async with self._locks[record.id]:
            await asyncio.to_thread(self._rt(record).delete, record.id, True)
            await asyncio.to_thread(self.bundles.remove, record.id)
            self.records.delete(record.id)
            self._event(record, "destroy")
        self._locks.pop(record.id, None)
        if volumes and self.volumes is not None:
            await self.volumes.release(record.mounts)
        for future in self._removed.pop(record.id, []):
            if not future.done():
                future.set_result(record.state.exit_code)

    async def pause(self, text: str, *, resume: bool = False) -> None:
        """Freeze (or thaw) every process of the container through the runtime's cgroup."""
        record = self.get(text)
        async with self._locks[record.id]:
            record = self.records.get(record.id)
            target = next_status(record.state.status, Op.UNPAUSE if resume else Op.PAUSE,
                                 name=text)
            await asyncio.to_thread(self._rt(record).oci.run, "resume" if resume else "pause",
                                    record.id)
            record.state.status = target
            self.records.save(record)
            self._event(record, "unpause" if resume else "pause")

    def rename(self, text: str, new_name: str) -> None:
        record = self.get(text)
        new = names.validate(new_name)
        if new == record.name:
            raise InvalidArgument(f"Renaming a container with the same name as its current "
                                  f"name: {new}")
        if self.records.name_taken(new):
            raise Conflict(f'Conflict. The container name "/{new}" is already in use')
        old, record.name = record.name, new
        self.records.save(record)
        self._event(record, "rename", oldName="/" + old)

    async def prune(self) -> tuple[list[str], int]:
        removed: list[str] = []
        for record in self.records.all():
            if record.state.status in (Status.EXITED, Status.CREATED, Status.DEAD):
                await self.remove(record.id)
                removed.append(record.id)
        return removed, 0

    # --- daemon start-up: live-restore ---------------------------------------------------------

    async def restore(self) -> None:
        """Reconcile records with conmon and the exit files after a daemon (re)start."""
        for record in self.records.all():
            if record.state.status in (Status.RUNNING, Status.PAUSED):
                status = self.runtime.exit_status(record.id)
                if status is not None or not alive(record.state.conmon_pid):
                    await self._on_exit(record.id, status or ExitStatus(255, False, 0))
                else:
                    self._watch(record.id)
            elif (record.state.status is Status.EXITED and self._should_restart(record)
                  and record.restart_policy.Name in ("always", "unless-stopped")):
                asyncio.get_running_loop().create_task(self._restart_after_exit(record))

    async def close(self) -> None:
        """Stop watching (containers keep running: live-restore)."""
        for task in list(self._watchers.values()):
            task.cancel()

    # --- helpers ------------------------------------------------------------------------------

    def _event(self, record: ContainerRecord, action: str, **extra: str) -> None:
        labels = {str(k): str(v) for k, v in (record.config.get("Labels") or {}).items()}
        self.events.emit("container", action, record.id, image=record.image,
                         name=record.name, **labels, **extra)

    def log_path(self, record: ContainerRecord) -> Path:
        return self.runtime.log_path(record.id)

    def is_running(self, container_id: str) -> Callable[[], bool]:
        def running() -> bool:
            try:
                return self.records.get(container_id).state.status in (
                    Status.RUNNING, Status.PAUSED, Status.RESTARTING)
            except NotFound:
                return False
        return running


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
