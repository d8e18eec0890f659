"""The gateway's ``GET /metrics``: Prometheus text format, behind a ``read`` token like any GET.

Two kinds of metric, each in this gateway's own registry (nothing global, nothing built at
import time):

- what happens, counted as it happens: each command's outcome and the time to it, told by the
  :class:`~wharf.gateway.dispatch.Dispatcher` through its ``observe`` hook
  (:meth:`GatewayMetrics.observe`);
- what is, read when scraped (:class:`ClusterCollector`): nodes by readiness and availability,
  containers by state (from the in-memory view, one pass over it), and the bus's own counts
  (events applied, messages dropped, broker connections). Nothing is hooked into the view's
  updates, so a scrape costs one pass and an idle gateway nothing.

Every label takes values from a closed set (command types of ``wharf.protocol``, outcomes,
Docker's container states, event types): what a node reports outside it is counted as
``other``, so no node can grow the number of series. docs/metrics.md lists every metric.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Protocol

from fastapi import Request
from fastapi.responses import Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from wharf.gateway.placement import Availability
from wharf.gateway.store import NodeRow
from wharf.gateway.view import Entry

# Seconds from a command's submission to its outcome: a read answers in milliseconds, a pull
# or a stop with a grace period in seconds to minutes (the longest deadline is an hour).
COMMAND_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                   300.0)
# Docker's container states (what wharfd reports); anything else is "other".
CONTAINER_STATES = ("created", "running", "paused", "restarting", "removing", "exited", "dead")
# The event types a node publishes (wharfd's event log); anything else is "other".
EVENT_TYPES = ("container", "image", "network", "volume", "builder", "daemon")


class ClusterView(Protocol):
    """What the collector reads of the store: its nodes and its containers."""

    def nodes(self) -> list[NodeRow]: ...

    def select(self, terms: dict[str, list[str]], every: bool = False,
               after: tuple[str, str] | None = None,
               limit: int | None = None) -> tuple[list[Entry], bool]: ...


class Readiness(Protocol):
    """Whether a node is up (the dispatcher's, from the heartbeats in memory)."""

    def node_ready(self, node: NodeRow) -> bool: ...


class BrokerStats(Protocol):
    @property
    def connections(self) -> int: ...


class BusStats(Protocol):
    """What the collector reads of the bus (:class:`~wharf.gateway.bus.Bus`)."""

    @property
    def connected(self) -> bool: ...

    @property
    def dropped(self) -> Mapping[str, int]: ...

    @property
    def events(self) -> Mapping[str, int]: ...

    @property
    def broker(self) -> BrokerStats: ...


class ClusterCollector(Collector):
    """Nodes, containers and the bus's counts, read at each scrape."""

    def __init__(self, view: ClusterView, readiness: Readiness, bus: BusStats) -> None:
        self.view, self.readiness, self.bus = view, readiness, bus

    def collect(self) -> Iterator[Metric]:
        yield self._nodes()
        yield self._containers()
        events = CounterMetricFamily(
            "wharf_gateway_events", "Events from the nodes applied to the cluster view, by "
            "type", labels=["type"])
        for kind, count in sorted(_bounded(self.bus.events, EVENT_TYPES).items()):
            events.add_metric([kind], count)
        yield events
        dropped = CounterMetricFamily(
            "wharf_gateway_broker_messages_dropped", "Messages from the broker not applied: "
            "forged (not from the node they name) or malformed", labels=["reason"])
        for reason in ("forged", "malformed"):
            dropped.add_metric([reason], self.bus.dropped.get(reason, 0))
        yield dropped
        yield GaugeMetricFamily("wharf_gateway_broker_connected",
                                "1 while the gateway is connected to RabbitMQ",
                                value=int(self.bus.connected))
        yield CounterMetricFamily(
            "wharf_gateway_broker_reconnects", "Connections to RabbitMQ made again after one "
            "was lost (the first is not counted)",
            value=max(0, self.bus.broker.connections - 1))

    def _nodes(self) -> GaugeMetricFamily:
        counts = {(state, a.value): 0 for state in ("ready", "down") for a in Availability}
        for node in self.view.nodes():
            counts["ready" if self.readiness.node_ready(node) else "down",
                   node.availability.value] += 1
        family = GaugeMetricFamily(
            "wharf_gateway_nodes", "Nodes this gateway knows, by state (ready: a heartbeat "
            "within --node-down-after) and availability", labels=["state", "availability"])
        for (state, availability), count in sorted(counts.items()):
            family.add_metric([state, availability], count)
        return family

    def _containers(self) -> GaugeMetricFamily:
        rows, _ = self.view.select({}, every=True)
        seen: dict[str, int] = {}
        for row in rows:
            seen[row.state] = seen.get(row.state, 0) + 1
        family = GaugeMetricFamily(
            "wharf_gateway_containers", "Containers on every node (the cluster view), by "
            "state", labels=["state"])
        for state, count in sorted(_bounded(seen, CONTAINER_STATES).items()):
            family.add_metric([state], count)
        return family


def _bounded(counts: Mapping[str, int], known: tuple[str, ...]) -> dict[str, int]:
    """``counts`` over ``known`` (each present, zero when unseen), the rest summed as
    ``other``."""
    out = dict.fromkeys(known, 0) | {"other": 0}
    for key, count in counts.items():
        out[key if key in known else "other"] += count
    return out


class GatewayMetrics:
    """This gateway's registry: the commands' counter and histogram, the cluster collector,
    and the process's own (CPU, memory, file descriptors)."""

    def __init__(self, view: ClusterView, readiness: Readiness, bus: BusStats) -> None:
        self.prometheus = CollectorRegistry()  # this program's own, not the global one
        self.commands = Counter(
            "wharf_gateway_commands", "Commands by type and outcome: a status of GET "
            "/v1/commands (ok, error, expired, unknown, partial) for a command a request "
            "waited for, refused (not sent: node down, unknown or drained, broker "
            "unavailable), accepted (sent, nobody waits)", ["type", "outcome"],
            registry=self.prometheus)
        self.duration = Histogram(
            "wharf_gateway_command_duration_seconds", "Seconds from a command's submission "
            "to its outcome, for the commands a request waited for", ["type"],
            buckets=COMMAND_BUCKETS, registry=self.prometheus)
        self.prometheus.register(ClusterCollector(view, readiness, bus))
        ProcessCollector(registry=self.prometheus)

    def observe(self, kind: str, outcome: str, seconds: float | None) -> None:
        """The dispatcher's hook (:data:`wharf.gateway.dispatch.Observer`)."""
        self.commands.labels(kind, outcome).inc()
        if seconds is not None:
            self.duration.labels(kind).observe(max(0.0, seconds))

    def render(self) -> bytes:
        return generate_latest(self.prometheus)


def install(state: Any, view: ClusterView, dispatcher: Any, bus: BusStats) -> None:
    """Make ``state.metrics`` (the app's) and point the dispatcher's hook at it."""
    state.metrics = GatewayMetrics(view, dispatcher, bus)
    dispatcher.observe = state.metrics.observe


async def metrics(request: Request) -> Response:
    """``GET /metrics``: every metric of this gateway, in the Prometheus text format."""
    found: GatewayMetrics = request.app.state.metrics
    return Response(found.render(), media_type=CONTENT_TYPE_LATEST)
