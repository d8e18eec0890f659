"""The development stack (docker-compose.dev.yml, docs/deploy.md §3) for real, on the Docker
engine `make test` starts (infra/dockerd.sh: no bridge, no NAT, no iptables of its own): its
images built from wharf's seeded Debian base with no Docker Hub (infra/images/dev/prepare.sh,
then `docker-compose build`), the stack up, `wharf node ls` through the gateway showing node1
and node2 ready, a container run on a node through the gateway from this host (the published
port), and `down -v` leaving no container, network or volume of the project (issue #16 item 2).

The images stay in dockerd afterwards (wharf-dev, wharf-dev-rabbitmq, wharf-dev-registry and the
base): Docker's layer cache makes the next run's build a few seconds; an image a rebuild
replaces is removed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration.gateway_fixture import free_port
from tests.layout import ROOT

DOCKERD_HOST = "unix:///var/run/docker.sock"  # the engine `make dockerd` starts, never DOCKER_HOST
COMPOSE_FILE = ROOT / "docker-compose.dev.yml"
IMAGE_LABEL = "wharf.dev-stack"  # on the stack's three images (infra/images/dev/*Dockerfile)
WHARF = str(Path(sys.executable).parent / "wharf")
# Inside the gateway's container: its own address, CA and the token its entrypoint made.
IN_GATEWAY = {"WHARF_GATEWAY": "https://localhost:8080",
              "WHARF_GATEWAY_CACERT": "/var/lib/wharf-gateway/tls/ca.pem",
              "WHARF_TOKEN_FILE": "/var/lib/wharf-gateway/dev-token"}

pytestmark = [pytest.mark.integration, pytest.mark.slow,
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root (the images' seed)"),
              pytest.mark.skipif(shutil.which("docker-compose") is None,
                                 reason="docker-compose is not installed (make setup installs it)"),
              pytest.mark.skipif(shutil.which("docker") is None,
                                 reason="no docker CLI (make dockerd installs it)")]


@dataclass(frozen=True)
class Stack:
    """A running dev stack: its compose project and the host port of its gateway."""

    env: dict[str, str]
    project: str
    port: int

    def compose(self, *args: str, timeout: float = 300,
                check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(["docker-compose", "--ansi", "never", "-f", str(COMPOSE_FILE), *args],
                              cwd=ROOT, env=self.env, capture_output=True, text=True,
                              timeout=timeout, check=False)
        if check:
            assert done.returncode == 0, \
                f"docker-compose {' '.join(args)}: {done.stdout[-2000:]}{done.stderr[-3000:]}"
        return done

    def in_gateway(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """``wharf ARGS`` run inside the gateway's container, on the stack's own network."""
        env = [f"-e{name}={value}" for name, value in IN_GATEWAY.items()]
        return self.compose("exec", "-T", *env, "gateway", "wharf", *args, timeout=60,
                            check=check)

    def docker(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["docker", "-H", DOCKERD_HOST, *args], env=self.env,
                              capture_output=True, text=True, timeout=120, check=False)


def _engine_env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCKER_", "COMPOSE_"))}
    return env | {"DOCKER_HOST": DOCKERD_HOST, "DOCKER_CONFIG": str(tmp / "docker-config")}


def _build(stack: Stack) -> None:
    """prepare.sh, then the build. The wharf image once (every wharf service names the same
    build), and what a rebuild left untagged is pruned: only images with the stack's label."""
    started = time.monotonic()
    prepared = subprocess.run([str(ROOT / "infra/images/dev/prepare.sh")], env=stack.env,
                              capture_output=True, text=True, timeout=600, check=False)
    assert prepared.returncode == 0, prepared.stderr[-3000:]
    stack.compose("build", "rabbitmq", "registry", "gateway", timeout=900)
    pruned = stack.docker("image", "prune", "-f", "--filter", f"label={IMAGE_LABEL}")
    assert pruned.returncode == 0, pruned.stderr
    print(f"dev stack images ready in {time.monotonic() - started:.0f}s", file=sys.stderr)


def _leftovers(stack: Stack) -> dict[str, list[str]]:
    label = f"label=com.docker.compose.project={stack.project}"
    listed = {"containers": stack.docker("ps", "-aq", "--filter", label),
              "networks": stack.docker("network", "ls", "-q", "--filter", label),
              "volumes": stack.docker("volume", "ls", "-q", "--filter", label)}
    return {what: done.stdout.split() for what, done in listed.items() if done.stdout.split()}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("dev-stack")
    env = _engine_env(tmp)
    if subprocess.run(["docker", "-H", DOCKERD_HOST, "info"], env=env, capture_output=True,
                      timeout=30, check=False).returncode != 0:
        pytest.skip(f"no Docker engine on {DOCKERD_HOST} (`make dockerd` starts one)")
    env_file = tmp / "stack.env"  # random passwords, by the script a developer runs
    subprocess.run([str(ROOT / "infra/dev-env.sh"), str(env_file)], check=True,
                   capture_output=True, timeout=30)
    port = free_port()
    project = f"wharfdev{uuid.uuid4().hex[:8]}"
    env |= dict(line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line)
    env |= {"COMPOSE_PROJECT_NAME": project, "WHARF_DEV_GATEWAY_PORT": str(port)}
    made = Stack(env, project, port)
    _build(made)
    try:
        made.compose("up", "-d", timeout=300)
        yield made
    finally:
        made.compose("down", "-v", "--remove-orphans", "--timeout", "10", timeout=180,
                     check=False)
    assert _leftovers(made) == {}


def _ready_nodes(stack: Stack, timeout: float = 120) -> list[dict[str, object]]:
    """The gateway's node list once both nodes report ready (heartbeats take a moment)."""
    deadline = time.monotonic() + timeout
    while True:
        done = stack.in_gateway("node", "ls", "--format", "json", check=False)
        nodes: list[dict[str, object]] = json.loads(done.stdout) if done.returncode == 0 else []
        if sorted((n.get("Name"), n.get("Status")) for n in nodes) == \
                [("node1", "ready"), ("node2", "ready")]:
            return nodes
        if time.monotonic() > deadline:
            logs = stack.compose("logs", "--tail", "40", check=False).stdout[-4000:]
            pytest.fail(f"nodes not ready: {done.stdout}{done.stderr}\n{logs}")
        time.sleep(2)


def _healthy(stack: Stack, timeout: float = 120) -> list[str]:
    """`docker-compose ps` once every long-running service reports healthy."""
    deadline = time.monotonic() + timeout
    while True:
        ps = stack.compose("ps").stdout.splitlines()
        if all(any(f"_{service}_1 " in line and "Up (healthy)" in line for line in ps)
               for service in ("rabbitmq", "registry", "gateway", "node1", "node2")):
            return ps
        assert time.monotonic() < deadline, "\n".join(ps)
        time.sleep(2)


@pytest.mark.timeout(1200)  # the first run builds the images (docs/deploy.md: minutes)
def test_wharf_node_ls_shows_the_two_nodes_ready(stack: Stack) -> None:
    nodes = _ready_nodes(stack)
    assert {str(n["Name"]): n["Labels"] for n in nodes} == {
        "node1": {"node": "node1", "zone": "a"}, "node2": {"node": "node2", "zone": "b"}}
    table = stack.in_gateway("node", "ls").stdout.splitlines()
    assert table[0].split()[:2] == ["NAME", "STATUS"]
    assert sorted(line.split()[:2] for line in table[1:]) == [["node1", "ready"],
                                                             ["node2", "ready"]]
    # Every service is up and healthy; the seed pushed busybox and exited 0.
    ps = _healthy(stack)
    assert any("_seed_1 " in line and "Exit 0" in line for line in ps), ps


@pytest.mark.timeout(600)
def test_a_container_runs_on_a_node_through_the_published_gateway(stack: Stack,
                                                                   tmp_path: Path) -> None:
    _ready_nodes(stack)
    # The host's wharf CLI on the published port, with the gateway's CA and the stack's token
    # (`docker cp`: docker-compose 1.29 has no `cp`).
    gateway = stack.compose("ps", "-q", "gateway").stdout.strip()
    cacert = tmp_path / "ca.pem"
    copied = stack.docker("cp", f"{gateway}:{IN_GATEWAY['WHARF_GATEWAY_CACERT']}", str(cacert))
    assert copied.returncode == 0, copied.stderr
    token = tmp_path / "token"
    token.write_text(stack.compose("exec", "-T", "gateway", "cat",
                                   IN_GATEWAY["WHARF_TOKEN_FILE"]).stdout)
    token.chmod(0o600)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WHARF_", "DOCKER_"))}
    env |= {"WHARF_GATEWAY": f"https://127.0.0.1:{stack.port}",
            "WHARF_GATEWAY_CACERT": str(cacert), "WHARF_TOKEN_FILE": str(token)}

    def wharf(*args: str) -> str:
        done = subprocess.run([WHARF, *args], env=env, capture_output=True, text=True,
                              timeout=120, check=False)
        assert done.returncode == 0, f"wharf {' '.join(args)}: {done.stdout}{done.stderr}"
        return done.stdout

    # busybox comes from the stack's registry (the seed pushed it), the node's docker.io mirror;
    # the output comes back through the gateway's relay to the node (mutual TLS, certs service).
    assert wharf("--node", "node2", "run", "--rm", "busybox", "echo", "hi") == "hi\n"
    name = f"hi-{uuid.uuid4().hex[:8]}"
    wharf("--node", "node2", "run", "-d", "--name", name, "busybox", "sh", "-c",
          "echo hi from $(hostname)")
    try:
        assert wharf("--node", "node2", "wait", name) == "0\n"
        state = json.loads(wharf("--node", "node2", "inspect", name))[0]
        assert wharf("--node", "node2", "logs", name) == f"hi from {state['Id'][:12]}\n"
        table = wharf("ps", "-a", "--all-nodes").splitlines()  # ... NAMES NODE
        assert [line.split()[-2:] for line in table if name in line] == [[name, "node2"]], table
    finally:
        wharf("--node", "node2", "rm", "-f", name)
    # --rm removed its container: only the named one was on node2, and it is gone too
    assert wharf("--node", "node2", "ps", "-aq") == ""


def test_run_rm_inside_the_stack(stack: Stack) -> None:
    """`wharf --node node1 run --rm` from the gateway's container, on the stack's network."""
    _ready_nodes(stack)
    assert stack.in_gateway("--node", "node1", "run", "--rm", "busybox", "echo", "hi").stdout \
        == "hi\n"


def test_the_daemons_tcp_listeners_want_a_client_certificate(stack: Stack) -> None:
    """node1:2376 answers the gateway's client certificate and refuses a client without one."""
    tls = "/etc/wharf/node-tls"

    def ping(*cert: str) -> subprocess.CompletedProcess[str]:
        return stack.compose("exec", "-T", "gateway", "curl", "-s", "--max-time", "5",
                             "--cacert", f"{tls}/ca.pem", *cert, "https://node1:2376/_ping",
                             check=False, timeout=60)

    with_cert = ping("--cert", f"{tls}/cert.pem", "--key", f"{tls}/key.pem")
    assert (with_cert.returncode, with_cert.stdout) == (0, "OK"), with_cert.stderr
    assert ping().returncode != 0
