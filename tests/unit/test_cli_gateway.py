"""The CLI through a gateway: a fake gateway behind httpx.MockTransport, the real commands."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
import pytest
from click.testing import CliRunner, Result

from wharf.cli.gateway import GatewayAPI, GatewayTransport, parse_gateway, relayed
from wharf.cli.hijack import HijackResult, RawStream, request_bytes
from wharf.cli.main import build_cli
from wharf.cli.session import Hooks
from wharf.cli.transport import Params, Reply
from wharf.errors import InvalidArgument

TOKEN = "wgt_test"
CID = "c" * 64
ENV = {"WHARF_GATEWAY": "http://127.0.0.1:8480", "WHARF_TOKEN": TOKEN}


@dataclass
class FakeGateway:
    routes: dict[tuple[str, str], Callable[[httpx.Request], httpx.Response]] = field(
        default_factory=dict)
    seen: list[httpx.Request] = field(default_factory=list)

    def route(self, method: str, path: str,
              reply: Callable[[httpx.Request], httpx.Response]) -> None:
        self.routes[(method, path)] = reply

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        if request.headers.get("authorization") != f"Bearer {TOKEN}":
            return httpx.Response(401, json={"message": "invalid token",
                                             "code": "unauthenticated"})
        handler = self.routes.get((request.method, request.url.path))
        if handler is None:
            return httpx.Response(404, json={"message": f"not found: {request.url.path}"})
        return handler(request)


@dataclass
class Hijacks:
    """The Hijacker seam: a socketpair whose far end holds the node's output."""

    output: bytes
    paths: list[str] = field(default_factory=list)
    peers: list[socket.socket] = field(default_factory=list)

    def open(self, path: str, params: Params, body: object = None) -> HijackResult:
        self.paths.append(path)
        ours, theirs = socket.socketpair()
        theirs.sendall(self.output)
        theirs.shutdown(socket.SHUT_WR)
        self.peers.append(theirs)
        return HijackResult(Reply(101, {}, b""), RawStream(ours))


def run(gateway: FakeGateway, *args: str, env: dict[str, str] | None = None,
        hijacker: Hijacks | None = None) -> Result:
    hooks = Hooks(wire=httpx.MockTransport(gateway), stdout_tty=False, stdin_tty=False,
                  hijacker=hijacker)
    return CliRunner().invoke(build_cli(), list(args), obj=hooks,
                              env=ENV if env is None else env)


NODES = [
    {"Name": "node1", "Status": "ready", "LastSeen": time.time(), "Labels": {"zone": "a"},
     "Load": {"memory_available": 2 << 30, "load1": 0.5}, "Containers": 2, "Running": 1},
    {"Name": "node2", "Status": "down", "LastSeen": time.time() - 30, "Labels": {},
     "Load": {}, "Containers": 0, "Running": 0},
]


def test_node_ls_and_inspect() -> None:
    gateway = FakeGateway()
    gateway.route("GET", "/v1/nodes", lambda r: httpx.Response(200, json=NODES))
    gateway.route("GET", "/v1/nodes/node1", lambda r: httpx.Response(200, json=NODES[0]))
    result = run(gateway, "node", "ls")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split()[:2] == ["NAME", "STATUS"]
    assert lines[1].split()[:2] == ["node1", "ready"] and "zone=a" in lines[1]
    assert lines[2].split()[:2] == ["node2", "down"]
    assert run(gateway, "node", "ls", "-q").output == "node1\nnode2\n"
    inspected = run(gateway, "node", "inspect", "node1")
    assert json.loads(inspected.output)[0]["Name"] == "node1"


def test_a_bad_token_and_a_missing_gateway_are_clear_errors() -> None:
    gateway = FakeGateway()
    result = run(gateway, "node", "ls", env={**ENV, "WHARF_TOKEN": "wrong"})
    assert result.exit_code != 0 and "invalid token" in result.output
    missing = run(gateway, "--node", "node1", "ps", env={})
    assert missing.exit_code != 0 and "WHARF_GATEWAY" in missing.output
    bad_host = run(gateway, "-H", "node://", "ps")
    assert bad_host.exit_code != 0 and "node://NAME" in bad_host.output


def test_commands_go_to_the_nodes_docker_paths_and_mutations_wait() -> None:
    gateway = FakeGateway()
    gateway.route("GET", "/v1/nodes/node2/containers/json", lambda r: httpx.Response(200, json=[
        {"Id": CID, "Names": ["/web"], "Image": "busybox", "Command": "sleep 300",
         "Created": int(time.time()), "State": "running", "Status": "Up 2 seconds"}]))
    gateway.route("POST", f"/v1/nodes/node2/containers/{'web'}/stop",
                  lambda r: httpx.Response(204))
    listed = run(gateway, "-H", "node://node2", "ps")
    assert listed.exit_code == 0, listed.output
    assert "web" in listed.output.splitlines()[1]
    stopped = run(gateway, "--node", "node2", "stop", "web")
    assert stopped.exit_code == 0, stopped.output
    stop = gateway.seen[-1]
    assert stop.url.params["wait"] == "true"


def test_run_detached_through_the_gateway_and_placement() -> None:
    gateway = FakeGateway()
    created: list[dict[str, object]] = []

    def create(request: httpx.Request) -> httpx.Response:
        created.append(json.loads(request.content))
        return httpx.Response(201, json={"Id": CID, "Warnings": []})

    gateway.route("GET", "/v1/placement", lambda r: httpx.Response(200, json={"Node": "node3"}))
    gateway.route("POST", "/v1/nodes/node3/containers/create", create)
    gateway.route("POST", f"/v1/nodes/node3/containers/{CID}/start",
                  lambda r: httpx.Response(204))
    result = run(gateway, "run", "--node", "any", "-d", "busybox", "sleep", "300")
    assert result.exit_code == 0, result.output
    assert result.output.strip() == CID
    assert created[0]["Image"] == "busybox" and created[0]["Cmd"] == ["sleep", "300"]
    paths = [r.url.path for r in gateway.seen]
    assert paths == ["/v1/placement", "/v1/nodes/node3/containers/create",
                     f"/v1/nodes/node3/containers/{CID}/start"]


def test_run_in_the_foreground_attaches_through_the_gateway_as_to_a_daemon() -> None:
    gateway = FakeGateway()
    bodies: list[dict[str, object]] = []

    def create(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        return httpx.Response(201, json={"Id": CID, "Warnings": []})

    base = f"/v1/nodes/node1/containers/{CID}"
    gateway.route("POST", "/v1/nodes/node1/containers/create", create)
    gateway.route("POST", base + "/start", lambda r: httpx.Response(204))
    gateway.route("POST", base + "/wait", lambda r: httpx.Response(
        200, json={"StatusCode": 3, "Error": None}))
    hijacks = Hijacks(b"\x01\x00\x00\x00\x00\x00\x00\x03hi\n")
    result = run(gateway, "--node", "node1", "run", "--rm", "-i", "busybox", "sh",
                 hijacker=hijacks)
    assert result.exit_code == 3 and result.output == "hi\n", result.output
    assert bodies[0]["HostConfig"]["AutoRemove"] is True  # type: ignore[index]
    assert hijacks.paths == [f"/containers/{CID}/attach"]
    wait = next(r for r in gateway.seen if r.url.path == base + "/wait")
    # relayed to the node as it is: no ?wait=true (that is for commands)
    assert wait.url.params.get("condition") == "removed" and "wait" not in wait.url.params


def test_the_gateway_hijacker_names_the_node_and_carries_the_token() -> None:
    host = parse_gateway("http://127.0.0.1:8480")
    through = GatewayTransport(GatewayAPI(httpx.MockTransport(FakeGateway()),  # type: ignore[arg-type]
                                          TOKEN), "node2")
    hijacker = through.hijacker(host)
    assert hijacker.prefix == "/v1/nodes/node2"
    head = request_bytes(hijacker.prefix + "/exec/e1/start", {}, {"Tty": True},
                         hijacker.headers).decode()
    assert head.startswith("POST /v1/nodes/node2/exec/e1/start HTTP/1.1\r\n")
    assert f"Authorization: Bearer {TOKEN}\r\n" in head and "Upgrade: tcp\r\n" in head


def test_ps_all_nodes_has_a_node_column() -> None:
    gateway = FakeGateway()
    now = int(time.time())
    gateway.route("GET", "/v1/containers", lambda r: httpx.Response(200, json=[
        {"Id": "a" * 64, "Names": ["/one"], "Image": "busybox", "Command": "sleep 1",
         "Created": now - 5, "State": "running", "Status": "Up 5 seconds", "Node": "node1"},
        {"Id": "b" * 64, "Names": ["/two"], "Image": "busybox", "Command": "sleep 1",
         "Created": now, "State": "running", "Status": "Up 1 second", "Node": "node2"}]))
    result = run(gateway, "ps", "--all-nodes", "-f", "status=running")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split()[-1] == "NODE"
    assert lines[1].split()[-2:] == ["two", "node2"] and lines[2].split()[-2:] == ["one", "node1"]
    request = gateway.seen[-1]
    assert json.loads(request.url.params["filters"]) == {"status": {"running": True}}


def test_what_the_gateway_does_not_relay_is_refused_with_a_reason() -> None:
    assert relayed("POST", "/containers/create") and relayed("DELETE", "/images/a/b:c")
    assert relayed("POST", "/containers/x/attach") and relayed("POST", "/exec/e/resize")
    assert not relayed("GET", "/info") and not relayed("POST", "/containers/x/attach/more")
    result = run(FakeGateway(), "--node", "node1", "top", "web")
    assert result.exit_code != 0 and "not relayed" in result.output


def test_gateway_addresses() -> None:
    assert parse_gateway("http://10.0.0.1:8480").netloc == "10.0.0.1:8480"
    assert parse_gateway("https://gw.example").tls is not None
    for bad in ("tcp://x:1", "http://", "http://h:99999", "http://h:1/path"):
        with pytest.raises(InvalidArgument):
            parse_gateway(bad)
