"""wharfd's ``GET /metrics`` (Prometheus text format): on the API itself, and with
``--metrics-addr`` on a plain-HTTP TCP listener of its own that answers nothing else.

On the API, ``/metrics`` is protected like every other route: the unix socket's mode, or
mutual TLS on TCP. Prometheus cannot scrape a unix socket, so ``--metrics-addr HOST:PORT``
serves the same exposition (and only it) without authentication: it holds counts, no names.

What is counted as it happens: the run path's phases (:mod:`wharf.daemon.core.phases`, a
histogram per phase, told through the phases' observers) and the API's requests, by method,
route template (``/containers/{name}/start``, never the path asked: the number of series
stays bounded) and status (:class:`RequestMetrics`). What is read at each scrape
(:class:`DaemonCollector`): containers by state and image pulls by outcome
(``ImageService.pulls``). docs/metrics.md lists every metric.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack
from typing import Any, Protocol

import h11
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
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from wharf.daemon.listen import ListenAddress, bind_tcp
from wharf.errors import InvalidArgument

log = logging.getLogger("wharf.api.metrics")

# Docker's container states, each exported (zero when none is in it).
CONTAINER_STATES = ("created", "running", "paused", "restarting", "removing", "exited", "dead")
# Seconds a phase of the run path takes: a record in milliseconds, a start in tens or hundreds
# of them, an exit seen up to a container's whole life.
PHASE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                 30.0)
UNMATCHED = "unmatched"  # the route label of a request no route took (a 404 or 405)
READ_TIMEOUT = 10.0  # seconds a --metrics-addr client may take to send its request


class ContainerStates(Protocol):
    """The containers' states as the collector reads them (the engine's)."""

    def states(self) -> list[str]: ...


class EngineStates:
    """:class:`ContainerStates` over the engine: each container record's status."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine

    def states(self) -> list[str]:
        return [str(r.state.status.value) for r in self.engine.containers.list_containers()]


class DaemonCollector(Collector):
    """Containers by state and image pulls by outcome, read at each scrape."""

    def __init__(self, containers: ContainerStates, pulls: Mapping[str, int]) -> None:
        self.containers, self.pulls = containers, pulls

    def collect(self) -> Iterator[Metric]:
        counts = dict.fromkeys(CONTAINER_STATES, 0)
        for state in self.containers.states():
            counts[state] = counts.get(state, 0) + 1
        family = GaugeMetricFamily("wharfd_containers", "Containers on this host, by state",
                                   labels=["state"])
        for state, count in sorted(counts.items()):
            family.add_metric([state], count)
        yield family
        pulls = CounterMetricFamily(
            "wharfd_image_pulls", "Image pulls (API, cluster commands, builds' FROM) by "
            "outcome: ok, an error kind's code, cancelled", labels=["outcome"])
        for outcome, count in sorted(self.pulls.items()):
            pulls.add_metric([outcome], count)
        yield pulls


class DaemonMetrics:
    """wharfd's registry: the run phases' histogram, the API's request counter, the daemon
    collector and the process's own (CPU, memory, file descriptors)."""

    def __init__(self, containers: ContainerStates, pulls: Mapping[str, int]) -> None:
        self.prometheus = CollectorRegistry()  # this program's own, not the global one
        self.phases = Histogram(
            "wharfd_run_phase_duration_seconds", "Seconds each phase of the run path took "
            "(GET /system/phases names them): create and start are a run's latency",
            ["phase"], buckets=PHASE_BUCKETS, registry=self.prometheus)
        self.requests = Counter(
            "wharfd_api_requests", "Docker API requests by method, route template and status",
            ["method", "route", "status"], registry=self.prometheus)
        self.prometheus.register(DaemonCollector(containers, pulls))
        ProcessCollector(registry=self.prometheus)

    @classmethod
    def for_engine(cls, engine: Any) -> DaemonMetrics:
        """The engine's metrics, told of every phase from now on."""
        made = cls(EngineStates(engine), engine.images.pulls)
        engine.containers.phases.observers.append(made.phase)
        return made

    def phase(self, name: str, seconds: float) -> None:
        self.phases.labels(name).observe(seconds)

    def request(self, method: str, route: str, status: int) -> None:
        self.requests.labels(method, route, str(status)).inc()

    def render(self) -> bytes:
        return generate_latest(self.prometheus)


class RequestMetrics:
    """ASGI middleware: count each HTTP request by method, route template and status, inside
    the version prefix's removal (the router's match is in the scope it is given). A request
    that raised is a 500, as the server answers it."""

    def __init__(self, app: ASGIApp, metrics: Callable[[], DaemonMetrics]) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or UNMATCHED
            self.metrics().request(scope["method"], template, status)


async def metrics(request: Request) -> Response:
    """``GET /metrics``: every metric of this daemon, in the Prometheus text format."""
    found: DaemonMetrics = request.app.state.metrics
    return Response(found.render(), media_type=CONTENT_TYPE_LATEST)


# --- --metrics-addr: /metrics alone, on a listener of its own ------------------------------


async def listen(address: ListenAddress | None, metrics: DaemonMetrics,
                 stack: ExitStack) -> asyncio.Server | None:
    """``--metrics-addr``: bind ``address`` (closed by ``stack``) and serve ``GET /metrics``
    on it (HTTP/1.1 by h11, one request per connection; any other path is a 404, any other
    method a 405); None without an address.

    Raises:
        InvalidArgument: the address cannot be bound.
    """
    if address is None:
        return None
    try:
        sock = bind_tcp(address)
    except OSError as exc:
        raise InvalidArgument(f"cannot serve metrics on {address.url}: {exc}") from exc
    stack.callback(sock.close)
    log.info("metrics on http://%s:%d/metrics (only it, plain HTTP, no authentication)",
             address.host, address.port)

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await asyncio.wait_for(_exchange(reader, writer, metrics), READ_TIMEOUT)
        except (TimeoutError, ConnectionError, h11.ProtocolError) as exc:
            log.debug("metrics client: %s", exc)
        finally:
            writer.close()

    return await asyncio.start_server(answer, sock=sock)


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    metrics: DaemonMetrics) -> None:
    connection = h11.Connection(h11.SERVER)
    event: Any = h11.NEED_DATA
    while event is h11.NEED_DATA:
        connection.receive_data(await reader.read(8192))
        event = connection.next_event()
    if not isinstance(event, h11.Request):
        return  # the client closed before a whole request
    path = event.target.split(b"?", 1)[0]
    status, body, kind = 200, b"", CONTENT_TYPE_LATEST
    if path != b"/metrics":
        status, body, kind = 404, b"only /metrics is served here\n", "text/plain"
    elif event.method not in (b"GET", b"HEAD"):
        status, body, kind = 405, b"GET /metrics\n", "text/plain"
    else:
        body = metrics.render()
    headers = [("content-type", kind), ("content-length", str(len(body))),
               ("connection", "close")]
    if status == 405:
        headers.append(("allow", "GET, HEAD"))
    writer.write(connection.send(h11.Response(status_code=status, headers=headers)) or b"")
    if event.method != b"HEAD":
        writer.write(connection.send(h11.Data(data=body)) or b"")
    writer.write(connection.send(h11.EndOfMessage()) or b"")
    await writer.drain()
