"""The cluster path end to end: HTTP → gateway → RabbitMQ → real wharfd daemons → back.

Two daemons (nodes ``n1`` and ``n2``, labelled by zone) and a gateway run as processes against
a per-test RabbitMQ vhost; containers are busybox from the seeded local registry.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.daemon_fixture import Daemon, running_daemon
from tests.integration.conftest import NodeAccount, SeededRegistry
from tests.integration.gateway_fixture import (
    Gateway,
    daemon_names,
    nodes,
    running_gateway,
    start_gateway,
    stop_gateway,
    wait_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]
SLEEPER = {"Image": "busybox", "Cmd": ["sleep", "300"]}


@dataclass
class Cluster:
    gateway: Gateway
    daemons: dict[str, Daemon]
    base: Path
    amqp_url: str
    mirror: str
    account: NodeAccount  # a node's own broker account (the gateway heeds no other)

    def start_daemon(self, name: str) -> Daemon:
        if name not in self._urls:
            self._urls[name] = self.account(name)
        env = {"WHARF_AMQP_URL": self._urls[name], "WHARF_NODE_NAME": name,
               "WHARF_NODE_LABELS": json.dumps({"zone": "a" if name == "n1" else "b"}),
               "WHARF_HEARTBEAT_INTERVAL": "0.5", "WHARF_SNAPSHOT_INTERVAL": "2"}
        stack = ExitStack()
        daemon = stack.enter_context(running_daemon(self.base / name, mirrors=[self.mirror],
                                                    env=env))
        self._stacks.append(stack)
        self.daemons[name] = daemon
        return daemon

    def __post_init__(self) -> None:
        self._stacks: list[ExitStack] = []
        self._urls: dict[str, str] = {}

    def close(self) -> None:
        # A test that failed early may leave a command in flight that creates a container
        # after a first sweep: sweep until two sweeps half a second apart find nothing.
        quiet = 0
        deadline = time.monotonic() + 10
        while quiet < 2 and time.monotonic() < deadline:
            found = 0
            for daemon in self.daemons.values():
                if daemon.process.poll() is None:
                    for c in json.loads(daemon.request("GET", "/containers/json?all=1")[1]):
                        daemon.request("DELETE", f"/containers/{c['Id']}?force=1")
                        found += 1
            quiet = quiet + 1 if found == 0 else 0
            time.sleep(0.5 if quiet < 2 else 0)
        for stack in reversed(self._stacks):
            stack.close()


@pytest.fixture
def cluster(amqp_url: str, node_account: NodeAccount, seeded_registry: SeededRegistry,
            tmp_path: Path) -> Iterator[Cluster]:
    with running_gateway(tmp_path / "gateway", amqp_url) as gateway:
        cluster = Cluster(gateway, {}, tmp_path, amqp_url, seeded_registry.registry.url,
                          node_account)
        try:
            for name in ("n1", "n2"):
                cluster.start_daemon(name)
            with gateway.client() as client:
                wait_for(lambda: all(n.get("Status") == "ready" and n["EngineID"]
                                     for n in nodes(client).values())
                         and len(nodes(client)) == 2)
            yield cluster
        finally:
            cluster.close()


def test_token_required_and_nodes_listed(cluster: Cluster) -> None:
    with cluster.gateway.client(anonymous=True) as anonymous:
        assert anonymous.get("/healthz").status_code == 200
        refused = anonymous.get("/v1/nodes")
        assert refused.status_code == 401 and "Bearer" in refused.json()["message"]
    with cluster.gateway.client(token="wgt_not-a-token") as wrong:
        assert wrong.get("/v1/containers").status_code == 401
    with cluster.gateway.client() as client:
        listed = nodes(client)
        assert set(listed) == {"n1", "n2"}
        assert listed["n2"]["Labels"] == {"zone": "b"} and listed["n2"]["Load"]["cpus"] >= 1
        assert client.get("/v1/nodes/n3").status_code == 404


def test_run_on_a_node_and_see_it_everywhere(cluster: Cluster) -> None:
    with cluster.gateway.client() as client:
        made = client.post("/v1/nodes/n2/containers/run?wait=true&name=web", json=SLEEPER)
        assert made.status_code == 201, made.text
        container_id = made.json()["Id"]
        # the node's own daemon runs it; the other does not
        assert daemon_names(cluster.daemons["n2"].request) == ["web"]
        assert daemon_names(cluster.daemons["n1"].request) == []
        inspected = client.get("/v1/nodes/n2/containers/web/json").json()
        assert inspected["Id"] == container_id and inspected["State"]["Running"]
        # the cluster view learns it from the node's events
        rows = wait_for(lambda: [r for r in client.get("/v1/containers").json()
                                 if r["Id"] == container_id])
        assert rows[0]["Node"] == "n2" and rows[0]["Status"].startswith("Up")
        by_node = client.get("/v1/containers", params={
            "filters": json.dumps({"node": ["n1"]})}).json()
        assert by_node == []
        # stop without waiting: 202 and a command to follow
        accepted = client.post("/v1/nodes/n2/containers/web/stop?t=0")
        assert accepted.status_code == 202
        command = accepted.json()
        assert accepted.headers["location"] == f"/v1/commands/{command['Id']}"
        done = wait_for(lambda: (c := client.get(f"/v1/commands/{command['Id']}").json())
                        ["Status"] != "pending" and c)
        assert done["Status"] == "ok" and done["Principal"] == "tester"
        listed = client.get("/v1/nodes/n2/containers/json?all=1").json()
        assert [c["State"] for c in listed] == ["exited"]
        # errors come back as their kinds
        missing = client.post("/v1/nodes/n2/containers/nope/start?wait=true")
        assert missing.status_code == 404 and "nope" in missing.json()["message"]
        bad = client.post("/v1/nodes/n2/containers/run?wait=true", json={"Cmd": ["x"]})
        assert bad.status_code == 400


def test_idempotency_key_runs_a_request_once(cluster: Cluster) -> None:
    with cluster.gateway.client() as client:
        pulled = client.post("/v1/nodes/n1/images/create?fromImage=busybox&tag=latest")
        assert pulled.status_code == 200, pulled.text  # pulls wait by default, like Docker's
        headers = {"Idempotency-Key": "create-once-1"}
        first = client.post("/v1/nodes/n1/containers/create?wait=true&name=once",
                            json=SLEEPER, headers=headers)
        second = client.post("/v1/nodes/n1/containers/create?wait=true&name=once",
                             json=SLEEPER, headers=headers)
        assert first.status_code == second.status_code == 201
        assert first.headers["x-wharf-command"] == second.headers["x-wharf-command"]
        assert first.json()["Id"] == second.json()["Id"]
        assert daemon_names(cluster.daemons["n1"].request) == ["once"]


def test_placement_and_constraints(cluster: Cluster) -> None:
    with cluster.gateway.client() as client:
        placed = client.post("/v1/containers", params={
            "constraint": "node.labels.zone==b", "wait": "true", "name": "placed"}, json=SLEEPER)
        assert placed.status_code == 201 and placed.json()["Node"] == "n2"
        # n2 now runs one more container, so an unconstrained run goes to n1
        wait_for(lambda: any(r["Node"] == "n2" for r in client.get("/v1/containers").json()))
        other = client.post("/v1/containers?wait=true", json=SLEEPER)
        assert other.json()["Node"] == "n1"
        impossible = client.post("/v1/containers", params={"constraint": "node.labels.zone==z"},
                                 json=SLEEPER)
        assert impossible.status_code == 503
        garbled = client.post("/v1/containers", params={"constraint": "zone=b"}, json=SLEEPER)
        assert garbled.status_code == 400


def test_logs_images_and_events(cluster: Cluster) -> None:
    with cluster.gateway.client() as client:
        run = client.post("/v1/nodes/n1/containers/run?wait=true&name=talker",
                          json={"Image": "busybox", "Cmd": ["sh", "-c", "echo out; echo err >&2"]})
        assert run.status_code == 201
        wait_for(lambda: not client.get("/v1/nodes/n1/containers/talker/json").json()
                 ["State"]["Running"])
        body = client.get("/v1/nodes/n1/containers/talker/logs?stdout=1&stderr=1").content
        # Docker's multiplexed frames: 1 = stdout, 2 = stderr
        assert body == b"\x01\x00\x00\x00\x00\x00\x00\x04out\n\x02\x00\x00\x00\x00\x00\x00\x04err\n"
        with client.stream("GET", "/v1/nodes/n1/containers/talker/logs?follow=1&stdout=1") as r:
            assert b"".join(r.iter_bytes()).endswith(b"out\n")  # ends: the container exited
        images = client.get("/v1/nodes/n1/images/json").json()
        assert any("busybox:latest" in (i["RepoTags"] or []) for i in images)
        pulled = client.post("/v1/images/pull?image=busybox&wait=true")
        assert pulled.status_code == 200, pulled.text
        assert pulled.json()["Status"] == "ok" and set(pulled.json()["Nodes"]) == {"n1", "n2"}
        with client.stream("GET", "/v1/events?since=0&follow=false") as stream:
            seen = [json.loads(line) for line in stream.iter_lines()]
        actions = {(e["node"], e["Type"], e["Action"]) for e in seen}
        assert ("n1", "container", "start") in actions and ("n1", "container", "die") in actions
        assert [e["id"] for e in seen] == sorted(e["id"] for e in seen)
        sse = client.get("/v1/events", params={"since": seen[-2]["id"], "follow": "false"},
                         headers={"Accept": "text/event-stream"})
        assert sse.headers["content-type"].startswith("text/event-stream")
        assert sse.text == f"id: {seen[-1]['id']}\ndata: {json.dumps(seen[-1])}\n\n"
        # live: a follower sees an event that happens after it subscribed
        with client.stream("GET", f"/v1/events?since={seen[-1]['id']}") as live:
            assert client.delete("/v1/nodes/n1/containers/talker?wait=true").status_code == 204
            first = json.loads(next(live.iter_lines()))
            assert (first["Action"], first["node"]) == ("destroy", "n1")


def test_a_killed_node_is_down_fast_and_comes_back_with_its_containers(
        cluster: Cluster) -> None:
    with cluster.gateway.client() as client:
        made = client.post("/v1/nodes/n2/containers/run?wait=true&name=survivor", json=SLEEPER)
        assert made.status_code == 201
        daemon = cluster.daemons["n2"]
        os.kill(daemon.process.pid, signal.SIGKILL)
        daemon.process.wait()
        killed = time.monotonic()
        wait_for(lambda: nodes(client)["n2"]["Status"] == "down", timeout=5, interval=0.05)
        assert time.monotonic() - killed < 3.0
        started = time.monotonic()
        refused = client.post("/v1/nodes/n2/containers/survivor/stop")
        assert refused.status_code == 503 and time.monotonic() - started < 1.0
        assert "down" in refused.json()["message"]
        cluster.start_daemon("n2")
        wait_for(lambda: nodes(client)["n2"]["Status"] == "ready")
        reply = client.get("/v1/nodes/n2/containers/survivor/json")
        assert reply.status_code == 200, reply.text
        inspected = reply.json()
        assert inspected["State"]["Running"]  # live-restored, never stopped

        def n2_node_events() -> list[str]:
            events = [json.loads(line) for line in
                      client.get("/v1/events?since=0&follow=false").text.splitlines()]
            return [e["Action"] for e in events if e["Type"] == "node" and e["node"] == "n2"]

        # joined, went down, came back
        wait_for(lambda: n2_node_events() == ["up", "down", "up"])


def test_the_gateway_rebuilds_its_view_after_a_restart(cluster: Cluster) -> None:
    with cluster.gateway.client() as client:
        assert client.post("/v1/nodes/n1/containers/run?wait=true&name=kept",
                           json=SLEEPER).status_code == 201
    gateway = cluster.gateway
    stop_gateway(gateway)
    (Path(gateway.args[gateway.args.index("--state-dir") + 1]) / "gateway.db").unlink()
    port = int(gateway.url.rsplit(":", 1)[1])
    fresh = start_gateway(gateway.log.parent, cluster.amqp_url, port=port)
    cluster.gateway = fresh
    try:
        with fresh.client() as client:
            # an empty store: the snapshot period (2 s here) makes the view whole again
            rows = wait_for(lambda: [r for r in client.get("/v1/containers").json()
                                     if r["Names"] == ["/kept"]], timeout=6)
            assert rows[0]["Node"] == "n1"
            assert set(nodes(client)) == {"n1", "n2"}
    finally:
        stop_gateway(fresh)


def test_the_view_filters_pages_and_comes_back_from_its_database_after_a_restart(
        cluster: Cluster) -> None:
    with cluster.gateway.client() as client:
        for node, name, tier in (("n1", "a1", "web"), ("n1", "a2", "db"), ("n2", "b1", "web")):
            made = client.post(f"/v1/nodes/{node}/containers/run?wait=true&name={name}",
                               json={**SLEEPER, "Labels": {"tier": tier}})
            assert made.status_code == 201, made.text
        wait_for(lambda: len(client.get("/v1/containers").json()) == 3)

        def names(**params: str) -> list[str]:
            listed = client.get("/v1/containers", params=params)
            assert listed.status_code == 200, listed.text
            return sorted(r["Names"][0] for r in listed.json())

        assert names(filters=json.dumps({"label": ["tier=web"]})) == ["/a1", "/b1"]
        assert names(filters=json.dumps({"node": ["n1"]})) == ["/a1", "/a2"]
        assert names(filters=json.dumps({"node": ["n2"], "label": ["tier=db"]})) == []
        pages, params = [], {"limit": "2", "fields": ["Names", "Node"]}
        while True:
            page = client.get("/v1/containers", params=params)
            pages += page.json()
            if "x-wharf-next-cursor" not in page.headers:
                break
            params["cursor"] = page.headers["x-wharf-next-cursor"]
        assert [r["Node"] for r in pages] == ["n1", "n1", "n2"]  # in (node, id) order
        assert sorted(r["Names"][0] for r in pages) == ["/a1", "/a2", "/b1"]
        assert set(pages[0]) == {"Names", "Node"}
        for bad in ({"limit": "0"}, {"fields": "Nope"}, {"cursor": "AAAA"}):
            assert client.get("/v1/containers", params=bad).status_code == 400
        shown = {"fields": ["Id", "Node", "Names", "State", "Labels", "Image"]}
        before = client.get("/v1/containers", params=shown).json()
        counts = {n: (d["Containers"], d["Running"]) for n, d in nodes(client).items()}
    # The daemons fall silent, so no snapshot can rebuild the view: after the restart it can
    # only come from gateway.db.
    for daemon in cluster.daemons.values():
        os.kill(daemon.process.pid, signal.SIGSTOP)
    gateway = cluster.gateway
    try:
        stop_gateway(gateway)
        port = int(gateway.url.rsplit(":", 1)[1])
        cluster.gateway = fresh = start_gateway(gateway.log.parent, cluster.amqp_url,
                                                port=port)
        try:
            with fresh.client() as client:
                assert client.get("/v1/containers", params=shown).json() == before
                assert {n: (d["Containers"], d["Running"])
                        for n, d in nodes(client).items()} == counts
        finally:
            stop_gateway(fresh)
    finally:
        for daemon in cluster.daemons.values():
            os.kill(daemon.process.pid, signal.SIGCONT)


def test_unknown_routes_and_bad_input_are_refused(cluster: Cluster) -> None:
    with cluster.gateway.client() as client:
        assert client.get("/v1/containers", params={"filters": "{"}).status_code == 400
        assert client.get("/v1/containers", params={
            "filters": json.dumps({"colour": ["red"]})}).status_code == 400
        assert client.post("/v1/nodes/n1/containers/x/stop?t=abc").status_code == 400
        assert client.get("/v1/commands/not-a-command").status_code == 404
        assert client.get("/v1/nodes/n1/containers/x/logs?tail=lots").status_code == 400
    with httpx.Client(base_url=cluster.gateway.url) as anonymous:
        assert anonymous.get("/docs").status_code == 200  # the OpenAPI page is public


def _db_bytes(path: Path) -> int:
    """A SQLite database's size as its readers see it (write-ahead log included; the log file
    itself is reused, not grown, by writes that replace rows, such as heartbeats). The
    gateway holds its database exclusively: measure it while no gateway runs."""
    with contextlib.closing(sqlite3.connect(path, timeout=10)) as db:
        count, size = (db.execute(f"PRAGMA {p}").fetchone()[0]
                       for p in ("page_count", "page_size"))
    return int(count * size)


def test_logs_follow_streams_every_line_and_stores_nothing_on_the_way(
        cluster: Cluster) -> None:
    # A container writing a line per millisecond (or as fast as busybox's usleep lets it) for
    # 10 s, followed through the gateway: every line arrives once, in order, and neither the
    # node's state.db nor the gateway's gateway.db grows by a MiB (reads are not journalled
    # or stored; the follower reads by cursor, not the whole log again).
    state_db = cluster.daemons["n1"].data_root / "state.db"
    gateway = cluster.gateway
    gateway_db = Path(gateway.args[gateway.args.index("--state-dir") + 1]) / "gateway.db"
    script = ('end=$(( $(date +%s) + 10 )); i=0; while [ "$(date +%s)" -lt "$end" ]; do '
              'echo "line $i"; i=$((i+1)); usleep 1000; done; echo "total $i"')
    with gateway.client() as client:
        made = client.post("/v1/nodes/n1/containers/run?wait=true&name=chatty",
                           json={"Image": "busybox", "Cmd": ["sh", "-c", script]})
        assert made.status_code == 201, made.text
    stop_gateway(gateway)
    before = _db_bytes(state_db), _db_bytes(gateway_db)
    port = int(gateway.url.rsplit(":", 1)[1])
    cluster.gateway = gateway = start_gateway(gateway.log.parent, cluster.amqp_url, port=port)
    try:
        with gateway.client() as client:
            wait_for(lambda: nodes(client)["n1"]["Status"] == "ready")
            started = time.monotonic()
            with client.stream("GET", "/v1/nodes/n1/containers/chatty/logs",
                               params={"follow": "1", "stdout": "1", "stderr": "1"}) as reply:
                assert reply.status_code == 200
                raw = b"".join(reply.iter_bytes())
            assert time.monotonic() - started < 60
    finally:
        stop_gateway(gateway)
    after = _db_bytes(state_db), _db_bytes(gateway_db)
    lines, pos = [], 0
    while pos < len(raw):  # Docker's frames: [stream, 0, 0, 0, size u32] + data
        size = int.from_bytes(raw[pos + 4:pos + 8], "big")
        assert raw[pos] == 1
        lines += raw[pos + 8:pos + 8 + size].decode().splitlines()
        pos += 8 + size
    total = int(lines[-1].split()[1])
    assert total > 2000  # the container really wrote for 10 s at speed
    assert lines[:-1] == [f"line {i}" for i in range(total)]  # none lost, none twice
    grown = after[0] - before[0], after[1] - before[1]
    print(f"logs -f: {total} lines; state.db +{grown[0]} B, gateway.db +{grown[1]} B")
    assert grown[0] < 1 << 20 and grown[1] < 1 << 20, grown
