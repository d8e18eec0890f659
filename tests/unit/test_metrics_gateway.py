"""The gateway's /metrics without a broker: the cluster collector over fakes of the view, the
readiness and the bus; the dispatcher's hook for each outcome; the route behind a read token.
Every exposition is read back with prometheus-client's own parser."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.metrics_samples import parse, value
from wharf.errors import NotFound, Unavailable
from wharf.gateway import auth, metrics
from wharf.gateway.app import create_app
from wharf.gateway.bus import Bus
from wharf.gateway.dispatch import Dispatcher
from wharf.gateway.metrics import GatewayMetrics
from wharf.gateway.placement import Availability
from wharf.gateway.policy import Scope
from wharf.gateway.settings import GatewaySettings
from wharf.gateway.store import ClusterStore, NodeRow
from wharf.gateway.view import Entry, entry
from wharf.protocol import (
    CommandResult,
    ContainerPayload,
    Heartbeat,
    Load,
    PullPayload,
    ResultStatus,
)


def _node(name: str, availability: Availability = Availability.ACTIVE) -> NodeRow:
    return NodeRow(name=name, engine_id="e", labels={}, load={}, version="0.1.0",
                   first_seen=0.0, last_seen=0.0, seq=0, snapshot_at=0.0,
                   availability=availability)


class FakeView:
    def __init__(self, nodes: list[NodeRow], rows: list[Entry]) -> None:
        self._nodes, self.rows = nodes, rows
        self.asked: list[tuple[dict[str, list[str]], bool]] = []

    def nodes(self) -> list[NodeRow]:
        return self._nodes

    def select(self, terms: dict[str, list[str]], every: bool = False,
               after: tuple[str, str] | None = None,
               limit: int | None = None) -> tuple[list[Entry], bool]:
        self.asked.append((terms, every))
        return self.rows, False


class FakeReadiness:
    def __init__(self, ready: set[str]) -> None:
        self.ready = ready

    def node_ready(self, node: NodeRow) -> bool:
        return node.name in self.ready


class FakeBroker:
    connections = 0


class FakeBus:
    def __init__(self) -> None:
        self.connected = False
        self.dropped: Counter[str] = Counter()
        self.events: Counter[str] = Counter()
        self.broker = FakeBroker()


def _rows(*states: str) -> list[Entry]:
    return [entry("n1", {"Id": f"c{i}", "Names": [f"/c{i}"], "State": s})
            for i, s in enumerate(states)]


def test_the_cluster_collector_reads_nodes_containers_and_the_bus_at_each_scrape() -> None:
    view = FakeView([_node("n1"), _node("n2", Availability.DRAIN), _node("n3")],
                    _rows("running", "running", "exited", "bogus"))
    bus = FakeBus()
    gateway = GatewayMetrics(view, FakeReadiness({"n1", "n2"}), bus)
    first = parse(gateway.render().decode())
    assert view.asked == [({}, True)]  # every container, not only the running ones
    assert value(first, "wharf_gateway_nodes", state="ready", availability="active") == 1
    assert value(first, "wharf_gateway_nodes", state="ready", availability="drain") == 1
    assert value(first, "wharf_gateway_nodes", state="down", availability="active") == 1
    assert value(first, "wharf_gateway_nodes", state="down", availability="pause") == 0
    assert value(first, "wharf_gateway_containers", state="running") == 2
    assert value(first, "wharf_gateway_containers", state="exited") == 1
    assert value(first, "wharf_gateway_containers", state="paused") == 0
    assert value(first, "wharf_gateway_containers", state="other") == 1  # bounded labels
    assert value(first, "wharf_gateway_broker_connected") == 0
    assert value(first, "wharf_gateway_broker_reconnects_total") == 0

    # the next scrape reads what changed since, without any hook into the changes
    view.rows = _rows("running")
    bus.connected, bus.broker.connections = True, 3
    bus.events.update({"container": 5, "image": 1, "made-up": 2})
    bus.dropped.update({"forged": 4})
    second = parse(gateway.render().decode())
    assert value(second, "wharf_gateway_containers", state="running") == 1
    assert value(second, "wharf_gateway_containers", state="exited") == 0
    assert value(second, "wharf_gateway_broker_connected") == 1
    assert value(second, "wharf_gateway_broker_reconnects_total") == 2  # the first is not one
    assert value(second, "wharf_gateway_events_total", type="container") == 5
    assert value(second, "wharf_gateway_events_total", type="image") == 1
    assert value(second, "wharf_gateway_events_total", type="other") == 2
    assert value(second, "wharf_gateway_broker_messages_dropped_total", reason="forged") == 4
    assert value(second, "wharf_gateway_broker_messages_dropped_total",
                 reason="malformed") == 0
    assert any(name == "process_resident_memory_bytes" for name, _ in second)


def test_an_outcome_counts_and_only_a_waited_one_is_timed() -> None:
    gateway = GatewayMetrics(FakeView([], []), FakeReadiness(set()), FakeBus())
    gateway.observe("start", "ok", 0.2)
    gateway.observe("start", "ok", 0.3)
    gateway.observe("start", "refused", None)
    gateway.observe("stop", "accepted", None)
    samples = parse(gateway.render().decode())
    assert value(samples, "wharf_gateway_commands_total", type="start", outcome="ok") == 2
    assert value(samples, "wharf_gateway_commands_total", type="start",
                 outcome="refused") == 1
    assert value(samples, "wharf_gateway_commands_total", type="stop",
                 outcome="accepted") == 1
    assert value(samples, "wharf_gateway_command_duration_seconds_count", type="start") == 2
    assert value(samples, "wharf_gateway_command_duration_seconds_sum",
                 type="start") == pytest.approx(0.5)
    assert value(samples, "wharf_gateway_command_duration_seconds_bucket", type="start",
                 le="0.25") == 1
    assert ("wharf_gateway_command_duration_seconds_count",
            frozenset({("type", "stop")})) not in samples


# --- the dispatcher's hook --------------------------------------------------------------


class Publisher:
    def __init__(self) -> None:
        self.fail = False
        self.sent: list[Any] = []

    async def publish(self, envelope: Any) -> None:
        if self.fail:
            raise Unavailable("broker down")
        self.sent.append(envelope)


def _dispatcher(tmp_path: Path) -> tuple[Dispatcher, Publisher, list[tuple[Any, ...]]]:
    store = ClusterStore(tmp_path / "gw.db")
    store.heartbeat(Heartbeat(node="n1", seq=0, sent_at=datetime.now(UTC),
                              load=Load(cpus=1, memory_total=1, memory_available=1,
                                        containers=0, running=0, load1=0.0),
                              version="0.1.0"), now=time.time())
    publisher = Publisher()
    dispatcher = Dispatcher(store, publisher, gateway_id="gw", down_after=600)
    dispatcher.seen("n1", time.time())
    observed: list[tuple[Any, ...]] = []
    dispatcher.observe = lambda *args: observed.append(args)
    return dispatcher, publisher, observed


def test_the_dispatcher_tells_each_outcome_once(tmp_path: Path) -> None:
    dispatcher, publisher, observed = _dispatcher(tmp_path)
    bus = Bus("amqp://unused/", "gw", dispatcher.store, on_event=lambda: None,
              on_result=dispatcher.on_result, on_seen=dispatcher.seen,
              take_unstored=dispatcher.take_unstored)
    start = ContainerPayload(type="start", container="web")

    def answer(status: ResultStatus = ResultStatus.OK) -> None:
        error = None if status is ResultStatus.OK else {"code": "not_found",
                                                        "message": "no such container"}
        bus.handle("gw", CommandResult.model_validate({
            "command_id": publisher.sent[-1].id, "node": "n1", "status": status,
            "result": None, "error": error}).model_dump_json().encode(), "wharf-node-n1")

    async def scenario() -> None:
        with pytest.raises(NotFound):  # an unknown node: refused, never sent
            await dispatcher.submit("n9", start, principal="t", deadline=5)
        await dispatcher.submit("n1", start, principal="t", deadline=5)  # nobody waits
        row = await dispatcher.submit("n1", start, principal="t", deadline=5,
                                      idempotency_key="k", watch=True)
        answer()
        await dispatcher.wait(row.id)
        again = await dispatcher.submit("n1", start, principal="t", deadline=5,
                                        idempotency_key="k", watch=True)
        await dispatcher.wait(again.id)  # the same command asked again: told once
        inspect = asyncio.create_task(dispatcher.call(
            "n1", ContainerPayload(type="inspect", container="web"), principal="t",
            deadline=5))
        await asyncio.sleep(0.01)
        answer(ResultStatus.ERROR)
        with pytest.raises(NotFound):
            await inspect
        publisher.fail = True
        with pytest.raises(Unavailable):
            await dispatcher.call("n1", PullPayload(image="busybox"), principal="t",
                                  deadline=5)

    asyncio.run(scenario())
    assert [(kind, outcome) for kind, outcome, _ in observed] == [
        ("start", "refused"), ("start", "accepted"), ("start", "ok"), ("inspect", "error"),
        ("pull", "refused")]
    timed = [seconds for _, outcome, seconds in observed if outcome in ("ok", "error")]
    assert all(seconds is not None and 0 <= seconds < 5 for seconds in timed)
    assert [s for _, o, s in observed if o in ("refused", "accepted")] == [None] * 3
    dispatcher.store.close()


# --- the route -------------------------------------------------------------------------


def test_metrics_needs_a_read_token_and_parses(tmp_path: Path) -> None:
    settings = GatewaySettings(amqp_url="amqp://unused/", state_dir=tmp_path,
                               tokens_file=tmp_path / "tokens")
    reader = auth.create_token(settings.tokens_file, "watcher", Scope.READ)
    app = create_app(settings)
    dispatcher, _, _ = _dispatcher(tmp_path)
    bus = FakeBus()
    app.state.settings, app.state.dispatcher = settings, dispatcher
    metrics.install(app.state, dispatcher.store, dispatcher, bus)
    dispatcher.observe("start", "ok", 0.1)  # the hook is the metrics' now

    async def get(headers: dict[str, str]) -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
            return await client.get("/metrics", headers=headers)

    refused = asyncio.run(get({}))
    assert refused.status_code == 401
    assert asyncio.run(get({"Authorization": "Bearer nope"})).status_code == 401
    answer = asyncio.run(get({"Authorization": f"Bearer {reader}"}))
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    samples = parse(answer.text)
    assert value(samples, "wharf_gateway_nodes", state="ready", availability="active") == 1
    assert value(samples, "wharf_gateway_commands_total", type="start", outcome="ok") == 1
    dispatcher.store.close()
