"""The async side of networks for the engine: the NetworkService (sync, run in threads) plus
the embedded DNS listeners (on the daemon's loop) and network events."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from wharf.daemon.core.events import EventLog
from wharf.daemon.core.network.dns import DnsServer
from wharf.daemon.core.network.ipam import Network
from wharf.daemon.core.network.service import PREDEFINED, NetworkService
from wharf.daemon.core.prunefilter import PruneFilter
from wharf.errors import Conflict, NotFound

log = logging.getLogger("wharf.network")


class Networks:
    """What the API calls for ``/networks`` (containers use :attr:`service` from the core)."""

    def __init__(self, service: NetworkService, events: EventLog,
                 dns: DnsServer | None = None) -> None:
        self.service = service
        self.events = events
        self.dns = dns or DnsServer(service.dns)

    def list_networks(self) -> list[dict[str, Any]]:
        """Every user-defined network, as ``docker network inspect`` shows it."""
        return [self.service.inspect(n.id) for n in self.service.list()]

    def inspect(self, ref: str) -> dict[str, Any]:
        return self.service.inspect(ref)

    def exists(self, name: str) -> bool:
        try:
            self.service.find(name)
        except NotFound:
            return False
        return True

    async def restore(self, running: Iterable[str]) -> None:
        """At daemon start: bridges, rules, DNS records and listeners back."""
        await asyncio.to_thread(self.service.restore, list(running))
        for network in self.service.dns_networks():
            await self._listen(network)

    async def _listen(self, network: Network) -> None:
        """The network's DNS listener on its gateway, answering its own subnet alone."""
        try:
            await self.dns.listen(network.id, str(network.gateway), subnet=network.subnet)
        except OSError as exc:
            log.warning("no embedded DNS for network %s on %s:53: %s", network.name,
                        network.gateway, exc)

    async def create(self, name: str, subnet: str | None, gateway: str | None, internal: bool,
                     labels: Mapping[str, str], options: Mapping[str, str]) -> Network:
        network = await asyncio.to_thread(self.service.create_network, name, subnet, gateway,
                                          internal, labels, options)
        await self._listen(network)
        self.events.emit("network", "create", network.id, name=network.name, type="bridge")
        return network

    async def remove(self, ref: str) -> None:
        network = self.service.find(ref)
        if network.name in PREDEFINED:
            raise Conflict(f"{network.name} is a pre-defined network and cannot be removed")
        try:
            await asyncio.to_thread(self.service.remove_network, network.id)
        except Conflict as exc:  # dockerd's words, with the name the user typed
            raise Conflict(f"error while removing network: network {network.name} id "
                           f"{network.id} has active endpoints ({exc.message})") from exc
        await self.dns.stop(network.id)
        self.events.emit("network", "destroy", network.id, name=network.name, type="bridge")

    async def prune(self, wanted: PruneFilter) -> list[str]:
        """Remove the unused user networks ``wanted`` matches; their names."""
        before = {n.name: n.id for n in self.service.list()}
        removed = await asyncio.to_thread(self.service.prune, wanted)
        for name in removed:
            await self.dns.stop(before[name])
            self.events.emit("network", "destroy", before[name], name=name, type="bridge")
        return removed

    async def close(self) -> None:
        await self.dns.close()
