"""wharfd's /metrics without a runtime: the collector over fake container states and pull
counts, the phases' histogram, the request middleware's route templates (a fake network
manager behind the real API app), the pull counter of ImageService, and the --metrics-addr
listener on a real loopback socket. Every exposition is read back with prometheus-client's
own parser."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import ExitStack
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.metrics_samples import parse, value
from wharf.daemon.adapters.api import metrics
from wharf.daemon.adapters.api.metrics import DaemonMetrics
from wharf.daemon.adapters.api.server import create_app
from wharf.daemon.core.images import service as image_service
from wharf.daemon.core.images.service import ImageService
from wharf.daemon.core.phases import Phases
from wharf.daemon.listen import ListenAddress
from wharf.daemon.settings import DaemonSettings
from wharf.errors import InvalidArgument, NotFound, Unavailable


class FakeStates:
    def __init__(self, *states: str) -> None:
        self.now = list(states)

    def states(self) -> list[str]:
        return self.now


def test_the_collector_reads_container_states_and_pulls_at_each_scrape() -> None:
    states, pulls = FakeStates("running", "running", "exited"), Counter({"ok": 2})
    measured = DaemonMetrics(states, pulls)
    first = parse(measured.render().decode())
    assert value(first, "wharfd_containers", state="running") == 2
    assert value(first, "wharfd_containers", state="exited") == 1
    assert value(first, "wharfd_containers", state="paused") == 0  # every state, always
    assert value(first, "wharfd_image_pulls_total", outcome="ok") == 2
    states.now = ["created"]
    pulls["not_found"] += 1
    second = parse(measured.render().decode())
    assert value(second, "wharfd_containers", state="running") == 0
    assert value(second, "wharfd_containers", state="created") == 1
    assert value(second, "wharfd_image_pulls_total", outcome="not_found") == 1
    assert any(name == "process_open_fds" for name, _ in second)


def test_every_phase_sample_reaches_the_histogram_and_clear_does_not_reset_it() -> None:
    phases = Phases()
    engine = SimpleNamespace(containers=SimpleNamespace(phases=phases,
                                                        list_containers=lambda: []),
                             images=SimpleNamespace(pulls=Counter()))
    measured = DaemonMetrics.for_engine(engine)
    with phases.span("create"):
        pass
    phases.add("start", 0.3)
    phases.add("start", 0.02)
    phases.clear()  # DELETE /system/phases: the summary's samples go, the histogram stays
    samples = parse(measured.render().decode())
    assert value(samples, "wharfd_run_phase_duration_seconds_count", phase="create") == 1
    assert value(samples, "wharfd_run_phase_duration_seconds_count", phase="start") == 2
    assert value(samples, "wharfd_run_phase_duration_seconds_bucket", phase="start",
                 le="0.025") == 1
    assert value(samples, "wharfd_run_phase_duration_seconds_sum",
                 phase="start") == pytest.approx(0.32)


class FakeNetworks:
    def inspect(self, ref: str) -> dict[str, Any]:
        raise NotFound(f"network {ref} not found")


def test_requests_count_by_route_template_not_by_path() -> None:
    measured = DaemonMetrics(FakeStates(), Counter())
    engine = SimpleNamespace(networks=FakeNetworks())
    with TestClient(create_app(engine, measured)) as client:  # type: ignore[arg-type]
        assert client.get("/v1.41/_ping").status_code == 200
        assert client.get("/_ping").status_code == 200
        for name in ("a", "b", "c"):
            assert client.get(f"/v1.41/networks/{name}").status_code == 404
        assert client.get("/no/such/thing").status_code == 404
        answer = client.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    samples = parse(answer.text)
    requests = "wharfd_api_requests_total"
    assert value(samples, requests, method="GET", route="/_ping", status="200") == 2
    assert value(samples, requests, method="GET", route="/networks/{ref}",
                 status="404") == 3
    assert value(samples, requests, method="GET", route="unmatched", status="404") == 1
    assert not [labels for name, labels in samples
                if name == requests and ("route", "/networks/a") in labels]


def test_without_metrics_the_api_has_no_metrics_route() -> None:
    with TestClient(create_app(SimpleNamespace())) as client:  # type: ignore[arg-type]
        assert client.get("/metrics").status_code == 404


def test_image_pulls_are_counted_by_outcome(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    failures: list[Exception] = []

    async def fake_pull(ref: Any, **_: Any) -> AsyncIterator[dict[str, Any]]:
        yield {"status": f"Pulling from {ref.familiar}"}
        if failures:
            raise failures.pop()
        yield {"status": "Downloaded newer image"}

    monkeypatch.setattr(image_service, "pull", fake_pull)
    images = ImageService(store=None, registry=None, tmp_dir=tmp_path)  # type: ignore[arg-type]

    async def drain(name: str) -> None:
        async for _ in images.pull(name, "", None, None):
            pass

    async def scenario() -> None:
        await drain("busybox")
        failures.append(Unavailable("registry down"))
        with pytest.raises(Unavailable):
            await drain("busybox")
        with pytest.raises(InvalidArgument):
            await drain("NOT A NAME")
        stream = images.pull("busybox", "", None, None)
        await anext(stream)
        await stream.aclose()  # the client went away mid-pull

    asyncio.run(scenario())
    assert images.pulls == {"ok": 1, "unavailable": 1, "invalid_argument": 1, "cancelled": 1}


def test_the_metrics_listener_serves_metrics_and_nothing_else() -> None:
    measured = DaemonMetrics(FakeStates("running"), Counter())

    async def scenario() -> list[httpx.Response]:
        with ExitStack() as stack:
            server = await metrics.listen(ListenAddress("tcp", host="127.0.0.1", port=0),
                                          measured, stack)
            assert server is not None
            port = server.sockets[0].getsockname()[1]
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
                answers = [await client.get("/metrics"), await client.get("/containers/json"),
                           await client.post("/metrics"), await client.head("/metrics")]
            server.close()
            await server.wait_closed()
            return answers

    got, other, post, head = asyncio.run(scenario())
    assert got.status_code == 200 and got.headers["content-type"].startswith("text/plain")
    assert value(parse(got.text), "wharfd_containers", state="running") == 1
    assert other.status_code == 404 and post.status_code == 405
    assert head.status_code == 200 and head.content == b""
    assert asyncio.run(metrics.listen(None, measured, ExitStack())) is None


@pytest.mark.parametrize("address", ["9100", "127.0.0.1", "127.0.0.1:0", "127.0.0.1:70000",
                                     "http://127.0.0.1:9100", "a b:1"])
def test_a_bad_metrics_address_is_refused_at_start(address: str) -> None:
    with pytest.raises(ValueError, match=r"(metrics|listen) address"):
        DaemonSettings(metrics_addr=address, config_file=Path("/nonexistent"))


def test_a_metrics_address_is_a_tcp_listener() -> None:
    settings = DaemonSettings(metrics_addr="127.0.0.1:9323", config_file=Path("/nonexistent"))
    assert settings.metrics_address == ListenAddress("tcp", host="127.0.0.1", port=9323)
    assert DaemonSettings(config_file=Path("/nonexistent")).metrics_address is None
