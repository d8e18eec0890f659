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
from collections.abc import AsyncIterator, Callable
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
from wharf.daemon.core.network import attach
from wharf.daemon.core.network.service import ContainerNet, NetworkService
from wharf.daemon.core.runtime import logs
from wharf.daemon.core.runtime.attach import AttachConnection
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
                 volumes: VolumeService | None = None,
                 network: NetworkService | None = None) -> None:
        self.records = records
        self.volumes = volumes
        self.network = network
        self._teardowns: dict[str, asyncio.Task[None]] = {}
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
        endpoints = self._check_network(host, body)
        container_id = ids.new_id()
        config = cfg.merge_config(body, image.config, container_id[:12])
        argv = cfg.command_line(config)
        chosen = names.validate(name) if name else names.random_name(self.records.name_taken)
        mounts = mountspec.plan(host, config.get("Volumes"),
                                inherited=self._volumes_from(host.get("VolumesFrom")))
        record = ContainerRecord(
            id=container_id, name=chosen, image=image_ref, image_id=image.id, created_at=now(),
            path=argv[0], args=argv[1:], config=config, host_config=host,
            runtime=self._runtime_name(host), mounts=mounts, endpoints=endpoints,
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

    def _check_network(self, host: dict[str, Any], body: dict[str, Any]
                       ) -> dict[str, dict[str, Any]]:
        """Validate the network mode, ports and endpoint settings at create (in place: a
        ``container:`` mode is recorded with the full ID); returns the endpoint settings."""
        endpoints = attach.endpoints_config(body)
        attach.port_bindings(host.get("PortBindings"))
        attach.exposed_ports(body.get("ExposedPorts"))
        mode = attach.normal_mode(host.get("NetworkMode"))
        if mode.startswith("container:"):
            if host.get("PortBindings") or host.get("PublishAllPorts"):
                raise InvalidArgument("conflicting options: port publishing and the container "
                                      "type network mode")
            other = self.records.resolve(mode.removeprefix("container:"))
            host["NetworkMode"] = f"container:{other.id}"
            return {}
        if mode in ("host", "none"):
            if endpoints.get(mode, {}).get("ip") or endpoints.get(mode, {}).get("aliases"):
                raise InvalidArgument(f"--ip and --network-alias need a user-defined network, "
                                      f"not {mode}")
            return {}
        if self.network is None:
            if mode != "bridge":
                raise NotFound(f"network {mode} not found")
            return endpoints
        for ref in {mode, *endpoints}:
            if ref not in ("bridge", "default"):
                try:
                    self.network.find(ref)
                except NotFound:
                    raise NotFound(f"network {ref} not found") from None
        primary = endpoints.get(mode) or endpoints.get(str(host.get("NetworkMode") or ""))
        if mode == "bridge" and primary and (primary["ip"] or primary["aliases"]):
            raise InvalidArgument("user specified IP address and aliases are supported only "
                                  "on user defined networks")
        return endpoints

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
            netns = await self._setup_network(record)
            await asyncio.to_thread(self.bundles.write_config, record, merged,
                                    self._rt(record).oci.takes_seccomp_bpf, netns)
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
            await self._teardown_network(record.id)
            record.state.error = exc.message
            record.network = {}
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
            self._schedule_teardown(container_id)
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
        # after the waiters (run --rm is not held up), before rm returns: nothing left behind
        await self._teardown_network(record.id)

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

    # --- networking ---------------------------------------------------------------------------

    async def _setup_network(self, record: ContainerRecord) -> str:
        """The container's network, set up before the runtime creates it; returns the OCI
        spec's network namespace ("host", "private" or a netns path). Records NetworkSettings
        and writes /etc/hosts and resolv.conf."""
        await self._settle_network(record.id)  # a previous run's teardown, if still pending
        mode = attach.normal_mode(record.host_config.get("NetworkMode"))
        if self.network is None or mode == "host":
            record.network = {"Networks": {mode: attach.network_entry("", "", "", 0, "", "", ())},
                              "Ports": {}} if mode == "host" else {}
            return "host" if mode == "host" else "private"
        ctr = await asyncio.to_thread(self._setup_network_sync, record, mode)
        endpoints = ctr.endpoints
        networks: dict[str, Any] = {}
        for ep in endpoints:
            networks[ep.network] = attach.network_entry(ep.network_id, record.id, ep.ip,
                                                        ep.prefixlen, ep.gateway, ep.mac,
                                                        ep.aliases)
            self._net_event("connect", ep.network_id, ep.network, record.id)
        if mode == "none":
            networks["none"] = attach.network_entry("", "", "", 0, "", "", ())
        record.network = {
            "Networks": networks,
            "Ports": attach.ports_json(record.config.get("ExposedPorts"), ctr.ports),
            "NetnsPath": str(ctr.netns_path or ""),
        }
        self.records.save(record)
        first = endpoints[0] if endpoints else None
        nameserver = None
        if first is not None and first.network != "bridge":
            nameserver = first.gateway
        await asyncio.to_thread(self.bundles.write_network_files, record,
                                [ep.ip for ep in endpoints], nameserver)
        return str(ctr.netns_path)

    def _setup_network_sync(self, record: ContainerRecord, mode: str) -> ContainerNet:
        net = self._net()
        if mode.startswith("container:"):
            other = self.records.resolve(mode.removeprefix("container:"))
            if other.state.status not in (Status.RUNNING, Status.PAUSED):
                raise Conflict(f"cannot join network of a non running container: {other.id}")
            owner = attach.normal_mode(other.host_config.get("NetworkMode"))
            if owner == "host":
                raise Conflict(f"container {other.short_id} uses the host network: use "
                               "--network host instead")
            if owner.startswith("container:"):
                return net.setup_container(record.id, owner)
            return net.setup_container(record.id, f"container:{other.id}")
        primary = (record.endpoints.get(mode) or
                   record.endpoints.get(str(record.host_config.get("NetworkMode") or "")) or {})
        ports = [] if mode == "none" else attach.port_requests(
            record.host_config, record.config.get("ExposedPorts"))
        ctr = net.setup_container(record.id, mode, name=record.name, ip=primary.get("ip"),
                                  aliases=primary.get("aliases") or (), ports=ports)
        if mode == "none":
            return ctr
        own = {ep.network_id for ep in ctr.endpoints}
        extra = []
        try:
            for ref, cfg_ in record.endpoints.items():
                network = net.find("bridge" if ref == "default" else ref)
                if network.id in own:
                    continue
                extra.append(net.connect(record.id, network.id, name=record.name,
                                         ip=cfg_.get("ip"), aliases=cfg_.get("aliases") or ()))
                own.add(network.id)
        except BaseException:
            net.teardown_container(record.id)
            raise
        return ContainerNet(ctr.mode, ctr.netns_path, [*ctr.endpoints, *extra], ctr.ports)

    def _net(self) -> NetworkService:
        if self.network is None:
            raise InvalidArgument("networks are not available on this wharfd")
        return self.network

    def _net_event(self, action: str, network_id: str, network: str, container_id: str) -> None:
        self.events.emit("network", action, network_id, container=container_id, name=network,
                         type="bridge")

    def _schedule_teardown(self, container_id: str) -> None:
        """Tear a stopped container's network down in the background (off ``run --rm``'s
        path); ``start`` and ``remove`` wait for it."""
        if self.network is None or container_id in self._teardowns:
            return
        task = asyncio.get_running_loop().create_task(self._teardown_network(container_id))
        self._teardowns[container_id] = task
        task.add_done_callback(lambda _t: self._teardowns.pop(container_id, None))

    async def _settle_network(self, container_id: str) -> None:
        task = self._teardowns.get(container_id)
        if task is not None and task is not asyncio.current_task():
            with contextlib.suppress(WharfError, OSError):
                await asyncio.shield(task)

    async def _teardown_network(self, container_id: str) -> None:
        """Undo the network set-up (idempotent): rules, ports, veths, addresses, netns."""
        if self.network is None:
            return
        pending = self._teardowns.get(container_id)
        if pending is not None and pending is not asyncio.current_task():
            await self._settle_network(container_id)
        net = self.network
        endpoints = await asyncio.to_thread(net.endpoints, container_id)
        try:
            await asyncio.to_thread(net.teardown_container, container_id)
        except (WharfError, OSError) as exc:
            log.warning("network teardown of %s failed: %s", container_id[:12], exc)
            return
        for ep in endpoints:
            self._net_event("disconnect", ep.network_id, ep.network, container_id)
        with contextlib.suppress(NotFound):
            record = self.records.get(container_id)
            if record.state.status not in (Status.RUNNING, Status.PAUSED) and record.network:
                record.network = {}
                self.records.save(record)

    async def connect(self, network_ref: str, text: str, ip: str | None,
                      aliases: list[str]) -> None:
        """``network connect``: now when the container runs, else at its next start."""
        net = self._net()
        network = net.find(network_ref)
        record = self.get(text)
        async with self._locks[record.id]:
            record = self.records.get(record.id)
            mode = attach.normal_mode(record.host_config.get("NetworkMode"))
            if mode in ("host", "none") or mode.startswith("container:"):
                raise Conflict(f"container cannot be disconnected from host network or "
                               f"connected to host network (mode {mode})")
            if network.name in ("host", "none"):
                raise Conflict(f"container cannot be connected to network {network.name}")
            if network.name == "bridge" and (ip or aliases):
                raise InvalidArgument("user specified IP address and aliases are supported "
                                      "only on user defined networks")
            if record.state.status in (Status.RUNNING, Status.PAUSED):
                ep = await asyncio.to_thread(net.connect, record.id, network.id,
                                             name=record.name, ip=ip, aliases=aliases)
                networks = dict(record.network.get("Networks") or {})
                networks[ep.network] = attach.network_entry(
                    ep.network_id, record.id, ep.ip, ep.prefixlen, ep.gateway, ep.mac,
                    ep.aliases)
                record.network = {**record.network, "Networks": networks}
                self._net_event("connect", network.id, network.name, record.id)
            else:
                known = {net.find("bridge" if r == "default" else r).id
                         for r in record.endpoints} | (
                    {net.find(mode).id} if mode != "bridge" else {net.default_network().id})
                if network.id in known:
                    raise Conflict(f"endpoint with name {record.name} already exists in "
                                   f"network {network.name}")
            record.endpoints = {**record.endpoints,
                                network.name: {"ip": ip, "aliases": list(aliases)}}
            self.records.save(record)

    async def disconnect(self, network_ref: str, text: str, force: bool = False) -> None:
        """``network disconnect``: detach now (running) and forget it for the next start."""
        net = self._net()
        network = net.find(network_ref)
        record = self.get(text)
        async with self._locks[record.id]:
            record = self.records.get(record.id)
            running = record.state.status in (Status.RUNNING, Status.PAUSED)
            mode = attach.normal_mode(record.host_config.get("NetworkMode"))
            primary = net.default_network().id if mode == "bridge" else (
                net.find(mode).id if mode not in ("host", "none")
                and not mode.startswith("container:") else "")
            configured = {net.find("bridge" if r == "default" else r).id: r
                          for r in record.endpoints} if record.endpoints else {}
            if running:
                try:
                    await asyncio.to_thread(net.disconnect, record.id, network.id)
                except NotFound:
                    if not force:
                        raise
                networks = {k: v for k, v in (record.network.get("Networks") or {}).items()
                            if k != network.name}
                record.network = {**record.network, "Networks": networks}
                self._net_event("disconnect", network.id, network.name, record.id)
            elif network.id not in configured and network.id != primary and not force:
                raise NotFound(f"container {record.short_id} is not connected to network "
                               f"{network.name}")
            if network.id in configured:
                record.endpoints = {k: v for k, v in record.endpoints.items()
                                    if k != configured[network.id]}
            if network.id == primary:
                record.host_config = {**record.host_config, "NetworkMode": "none"}
            self.records.save(record)

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

    # --- container I/O: what the adapters use instead of reaching the runtime ---------------

    def log_path(self, record: ContainerRecord) -> Path:
        return self.runtime.log_path(record.id)

    def container_dir(self, record: ContainerRecord) -> Path:
        return self.bundles.dir(record.id)

    def read_logs(self, record: ContainerRecord, **options: Any) -> list[logs.LogEntry]:
        """The log's entries, oldest first (options: stdout, stderr, since, until, tail)."""
        return logs.read_logs(self.log_path(record), **options)

    def follow_logs(self, record: ContainerRecord, **options: Any
                    ) -> AsyncIterator[logs.LogEntry]:
        """The entries, then new ones as they come, until the container stops."""
        running = self.is_running(record.id)
        return logs.follow_logs(self.log_path(record), finished=lambda: not running(),
                                **options)

    def resize(self, record: ContainerRecord, height: int, width: int) -> None:
        self.runtime.resize(record.id, height, width)

    async def open_attach(self, record: ContainerRecord) -> AttachConnection:
        """A connection to the container's attach socket (conmon's)."""
        return await AttachConnection.open(self.runtime.attach_socket(record.id))

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
