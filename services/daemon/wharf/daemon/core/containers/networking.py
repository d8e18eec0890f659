"""A container's networks: checked at create, set up before the runtime creates it, torn down
after it stops (in the background, off ``run --rm``'s path), and ``network connect`` /
``network disconnect`` of a created or running container."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from wharf.daemon.core.containers.context import ContainerContext
from wharf.daemon.core.containers.lifecycle import Status
from wharf.daemon.core.containers.options import ContainerOptions
from wharf.daemon.core.containers.records import ContainerRecord
from wharf.daemon.core.network import attach
from wharf.daemon.core.network.service import ContainerNet, NetworkService
from wharf.errors import Conflict, InvalidArgument, NotFound, WharfError

log = logging.getLogger("wharf.containers")


class ContainerNetworking:
    """Network attach and detach of the containers in ``ctx`` (through ``ctx.network``)."""

    def __init__(self, ctx: ContainerContext) -> None:
        self.ctx = ctx
        self._teardowns: dict[str, asyncio.Task[None]] = {}

    # --- create: check the settings --------------------------------------------------------------

    def check(self, options: ContainerOptions, body: dict[str, Any]
              ) -> tuple[ContainerOptions, dict[str, dict[str, Any]]]:
        """Validate the network mode and endpoint settings at create (ports come parsed in
        ``options``); returns the options, a ``container:`` mode recorded with the full ID,
        and the endpoint settings."""
        endpoints = attach.endpoints_config(body)
        mode = options.network
        if mode.startswith("container:"):
            if options.ports or options.publish_all:
                raise InvalidArgument("conflicting options: port publishing and the container "
                                      "type network mode")
            other = self.ctx.records.resolve(mode.removeprefix("container:"))
            return options.model_copy(update={"network_mode": f"container:{other.id}"}), {}
        if mode in ("host", "none"):
            if endpoints.get(mode, {}).get("ip") or endpoints.get(mode, {}).get("aliases"):
                raise InvalidArgument(f"--ip and --network-alias need a user-defined network, "
                                      f"not {mode}")
            return options, {}
        if self.ctx.network is None:
            if mode != "bridge":
                raise NotFound(f"network {mode} not found")
            return options, endpoints
        for ref in {mode, *endpoints}:
            if ref not in ("bridge", "default"):
                try:
                    self.ctx.network.find(ref)
                except NotFound:
                    raise NotFound(f"network {ref} not found") from None
        primary = endpoints.get(mode) or endpoints.get(options.network_mode)
        if mode == "bridge" and primary and (primary["ip"] or primary["aliases"]):
            raise InvalidArgument("user specified IP address and aliases are supported only "
                                  "on user defined networks")
        return options, endpoints

    # --- start: set up; exit and rm: tear down ---------------------------------------------------

    async def setup(self, record: ContainerRecord) -> str:
        """The container's network, set up before the runtime creates it; returns the OCI
        spec's network namespace ("host", "private" or a netns path). Records NetworkSettings
        and writes /etc/hosts and resolv.conf."""
        await self.settle(record.id)  # a previous run's teardown, if still pending
        mode = record.options.network
        if self.ctx.network is None or mode == "host":
            record.network = {"Networks": {mode: attach.network_entry("", "", "", 0, "", "", ())},
                              "Ports": {}} if mode == "host" else {}
            return "host" if mode == "host" else "private"
        ctr = await asyncio.to_thread(self._setup_sync, record, mode)
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
        self.ctx.records.save(record)
        first = endpoints[0] if endpoints else None
        nameserver = None
        if first is not None and first.network != "bridge":
            nameserver = first.gateway
        await asyncio.to_thread(self.ctx.bundles.write_network_files, record,
                                [ep.ip for ep in endpoints], nameserver)
        return str(ctr.netns_path)

    def _setup_sync(self, record: ContainerRecord, mode: str) -> ContainerNet:
        net = self._net()
        if mode.startswith("container:"):
            other = self.ctx.records.resolve(mode.removeprefix("container:"))
            if other.state.status not in (Status.RUNNING, Status.PAUSED):
                raise Conflict(f"cannot join network of a non running container: {other.id}")
            owner = other.options.network
            if owner == "host":
                raise Conflict(f"container {other.short_id} uses the host network: use "
                               "--network host instead")
            if owner.startswith("container:"):
                return net.setup_container(record.id, owner)
            return net.setup_container(record.id, f"container:{other.id}")
        primary = (record.endpoints.get(mode) or
                   record.endpoints.get(record.options.network_mode) or {})
        ports = [] if mode == "none" else record.options.port_requests()
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
        if self.ctx.network is None:
            raise InvalidArgument("networks are not available on this wharfd")
        return self.ctx.network

    def _net_event(self, action: str, network_id: str, network: str, container_id: str) -> None:
        self.ctx.events.emit("network", action, network_id, container=container_id,
                             name=network, type="bridge")

    def schedule_teardown(self, container_id: str) -> None:
        """Tear a stopped container's network down in the background (off ``run --rm``'s
        path); ``start`` and ``remove`` wait for it."""
        if self.ctx.network is None or container_id in self._teardowns:
            return
        task = asyncio.get_running_loop().create_task(self.teardown(container_id))
        self._teardowns[container_id] = task
        task.add_done_callback(lambda _t: self._teardowns.pop(container_id, None))

    async def settle(self, container_id: str) -> None:
        task = self._teardowns.get(container_id)
        if task is not None and task is not asyncio.current_task():
            with contextlib.suppress(WharfError, OSError):
                await asyncio.shield(task)

    async def teardown(self, container_id: str) -> None:
        """Undo the network set-up (idempotent): rules, ports, veths, addresses, netns."""
        if self.ctx.network is None:
            return
        pending = self._teardowns.get(container_id)
        if pending is not None and pending is not asyncio.current_task():
            await self.settle(container_id)
        net = self.ctx.network
        endpoints = await asyncio.to_thread(net.endpoints, container_id)
        try:
            await asyncio.to_thread(net.teardown_container, container_id)
        except (WharfError, OSError) as exc:
            log.warning("network teardown of %s failed: %s", container_id[:12], exc)
            return
        for ep in endpoints:
            self._net_event("disconnect", ep.network_id, ep.network, container_id)
        with contextlib.suppress(NotFound):
            record = self.ctx.records.get(container_id)
            if record.state.status not in (Status.RUNNING, Status.PAUSED) and record.network:
                record.network = {}
                self.ctx.records.save(record)

    # --- network connect / disconnect -----------------------------------------------------------

    async def connect(self, network_ref: str, text: str, ip: str | None,
                      aliases: list[str]) -> None:
        """``network connect``: now when the container runs, else at its next start."""
        net = self._net()
        network = net.find(network_ref)
        record = self.ctx.records.resolve(text)
        async with self.ctx.locks[record.id]:
            record = self.ctx.records.get(record.id)
            mode = record.options.network
            if mode == "none" and record.detached_from and \
                    record.state.status not in (Status.RUNNING, Status.PAUSED):
                self._reattach(record, network.name, ip, aliases)
                return
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
            self.ctx.records.save(record)

    def _reattach(self, record: ContainerRecord, network: str, ip: str | None,
                  aliases: list[str]) -> None:
        """A stopped container whose own network was disconnected gets ``network`` as its own
        (its mode), with the address and aliases asked for, at its next start."""
        mode = "bridge" if network == "bridge" else network
        record.options = record.options.model_copy(update={"network_mode": mode})
        record.host_config = {**record.host_config, "NetworkMode": mode}
        record.endpoints = {**record.endpoints, network: {"ip": ip, "aliases": list(aliases)}}
        record.detached_from = ""
        self.ctx.records.save(record)

    async def disconnect(self, network_ref: str, text: str, force: bool = False) -> None:
        """``network disconnect``: detach now (running) and forget it for the next start."""
        net = self._net()
        network = net.find(network_ref)
        record = self.ctx.records.resolve(text)
        async with self.ctx.locks[record.id]:
            record = self.ctx.records.get(record.id)
            running = record.state.status in (Status.RUNNING, Status.PAUSED)
            mode = record.options.network
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
            if network.id == primary:  # inspect shows the change too
                record.options = record.options.model_copy(update={"network_mode": "none"})
                record.host_config = {**record.host_config, "NetworkMode": "none"}
                record.detached_from = "" if running else network.name
            self.ctx.records.save(record)
