"""Interactive sessions through the gateway, end to end: a real gateway serving HTTPS, RabbitMQ
(a vhost of the test's own), and a real wharfd listening on mutual TLS, which it advertises in
its heartbeat; the wharf CLI with ``--node``, as a user runs it.

- ``run -i`` with a script on stdin prints what the shell printed and exits with its status
  (stdin's end crosses the gateway as a half-close, the output still flows after it);
- ``exec -it`` in a 120x40 tmux pane sees its size, and a resize; ``run -it`` detaches on
  ctrl-p ctrl-q and the container keeps running;
- ``attach`` and ``logs -f`` of a container printing 1,000 lines lose none;
- a ``read`` token cannot exec (403), no token is 401, on the hijacked routes too.

The node is ``st1`` (a broker account no other test uses). Everything is removed at the end.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.daemon_fixture import Daemon, running_daemon
from tests.integration.conftest import NodeAccount, SeededRegistry
from tests.integration.gateway_fixture import (
    Gateway,
    free_port,
    nodes,
    running_gateway,
    wait_for,
)
from tests.integration.test_exec_tty import Pane

pytestmark = [pytest.mark.integration, pytest.mark.slow]
WHARF = str(Path(sys.executable).parent / "wharf")
NODE = "st1"
LINES = "".join(f"line{i}\n" for i in range(1, 1001))


@dataclass
class Site:
    gateway: Gateway
    daemon: Daemon
    env: dict[str, str]

    def wharf(self, *args: str, stdin: str | None = None, timeout: float = 60,
              token_file: Path | None = None) -> subprocess.CompletedProcess[str]:
        env = self.env if token_file is None else {**self.env, "WHARF_TOKEN_FILE": str(token_file)}
        return subprocess.run([WHARF, "--node", NODE, *args], input=stdin, capture_output=True,
                              text=True, timeout=timeout, env=env, check=False)

    def containers(self) -> list[dict[str, object]]:
        return list(json.loads(self.daemon.request("GET", "/containers/json?all=1")[1]))


@pytest.fixture
def site(amqp_url: str, node_account: NodeAccount, seeded_registry: SeededRegistry,
         certs: Path, tmp_path: Path) -> Iterator[Site]:
    base = tmp_path / "site"
    port = free_port()
    tcp = ["-H", f"tcp://127.0.0.1:{port}", "--tlsverify", "--tlscacert", str(certs / "ca.pem"),
           "--tlscert", str(certs / "server-cert.pem"), "--tlskey", str(certs / "server-key.pem")]
    env = {"WHARF_AMQP_URL": node_account(NODE), "WHARF_NODE_NAME": NODE,
           "WHARF_HEARTBEAT_INTERVAL": "0.5", "WHARF_SNAPSHOT_INTERVAL": "2"}
    with running_gateway(base / "gateway", amqp_url, tls=certs) as gateway, \
            running_daemon(base / NODE, mirrors=[seeded_registry.registry.url], extra_args=tcp,
                           env=env) as daemon:
        with gateway.client() as client:
            node = wait_for(lambda: nodes(client).get(NODE, {}).get("Status") == "ready"
                            and nodes(client)[NODE])
            assert node["Address"] == f"127.0.0.1:{port}"  # advertised: its -H tcp://
            pulled = client.post(f"/v1/nodes/{NODE}/images/create?fromImage=busybox&tag=latest")
            assert pulled.status_code == 200, pulled.text
        token_file = base / "token"
        token_file.write_text(gateway.token + "\n")
        token_file.chmod(0o600)
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("WHARF_", "TMUX"))}
        site = Site(gateway, daemon, {**clean, "WHARF_GATEWAY": gateway.url,
                                      "WHARF_GATEWAY_CACERT": str(certs / "ca.pem"),
                                      "WHARF_TOKEN_FILE": str(token_file),
                                      "WHARF_CONFIG": str(base / "wharf-config")})
        try:
            yield site
        finally:
            for container in site.containers():
                daemon.request("DELETE", f"/containers/{container['Id']}?force=1")


def test_run_i_through_the_gateway_reads_stdin_and_exits_with_the_status(site: Site) -> None:
    done = site.wharf("run", "-i", "--rm", "busybox", "sh", stdin="echo $((6*7))\nexit 3\n")
    assert (done.returncode, done.stdout) == (3, "42\n"), done.stderr
    plain = site.wharf("run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2; exit 5")
    assert (plain.returncode, plain.stdout, plain.stderr) == (5, "out\n", "err\n")
    wait_for(lambda: site.containers() == [])  # --rm: the node removed both


def test_attach_and_logs_follow_lose_no_line(site: Site) -> None:
    # start -a attaches before it starts (no line can come before the attach); logs -f
    # begins while the container runs
    script = "sleep 2; i=1; while [ $i -le 1000 ]; do echo line$i; i=$((i+1)); done"
    made = site.wharf("create", "--name", "talker", "busybox", "sh", "-c", script)
    assert made.returncode == 0, made.stderr
    env = site.env
    attach = subprocess.Popen([WHARF, "--node", NODE, "start", "-a", "talker"], env=env,
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True)
    wait_for(lambda: json.loads(site.daemon.request("GET", "/containers/talker/json")[1])
             ["State"]["Status"] != "created")
    follow = subprocess.Popen([WHARF, "--node", NODE, "logs", "-f", "talker"], env=env,
                              stdout=subprocess.PIPE, text=True)
    attached, _ = attach.communicate(timeout=60)
    followed, _ = follow.communicate(timeout=60)
    assert attached == LINES and attach.returncode == 0
    assert followed == LINES and follow.returncode == 0
    assert site.wharf("rm", "talker").returncode == 0


def test_exec_it_and_run_it_in_a_terminal(site: Site, tmp_path: Path) -> None:
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed")
    made = site.wharf("run", "-d", "--name", "shell", "busybox", "sleep", "300")
    assert made.returncode == 0, made.stderr
    pane = Pane(tmp_path / "tmux.sock", [WHARF, "--node", NODE, "exec", "-it", "shell", "sh"],
                site.env, 120, 40)
    try:
        pane.wait_for("/ #")
        pane.type("stty size")
        pane.wait_for("40 120")
        pane.tmux("resize-window", "-t", "t", "-x", "100", "-y", "30")
        # the resize travels beside the keystrokes (its own request, as docker's): a shell
        # asked at once may still answer the old size, so ask until the new one shows
        wait_for(lambda: _asked(pane, "stty size", "30 100"))
        pane.type("exit 7")
        pane.wait_for("exited 7")
    finally:
        pane.kill()
    pane = Pane(tmp_path / "tmux2.sock", [WHARF, "--node", NODE, "run", "-it", "--name",
                                          "detached", "busybox", "sh"], site.env, 120, 40)
    try:
        pane.wait_for("/ #")
        pane.tmux("send-keys", "-t", "t", "C-p", "C-q")
        # the prompt stays on its line, the CLI's exit status follows it
        wait_for(lambda: any(line.endswith("exited 0") for line in pane.screen()))
    finally:
        pane.kill()
    state = json.loads(site.daemon.request("GET", "/containers/detached/json")[1])["State"]
    assert state["Running"] is True  # detached, not stopped
    assert site.wharf("rm", "-f", "shell", "detached").returncode == 0


def _asked(pane: Pane, line: str, answer: str) -> bool:
    pane.type(line)
    time.sleep(0.5)
    return answer in pane.screen()


def test_the_hijacked_routes_check_the_token_and_its_scope(site: Site, tmp_path: Path) -> None:
    made = site.wharf("run", "-d", "--name", "guarded", "busybox", "sleep", "300")
    assert made.returncode == 0, made.stderr
    reader = tmp_path / "read-token"
    reader.write_text(site.gateway.add_token("viewer", "read") + "\n")
    reader.chmod(0o600)
    refused = site.wharf("exec", "guarded", "true", token_file=reader)
    assert refused.returncode != 0 and "scope 'operate'" in refused.stderr
    attach = site.wharf("attach", "guarded", token_file=reader, timeout=20)
    assert attach.returncode != 0 and "scope 'operate'" in attach.stderr
    with httpx.Client(base_url=site.gateway.url, verify=site.gateway.verify(),
                      timeout=20) as anonymous:
        answer = anonymous.post(f"/v1/nodes/{NODE}/containers/guarded/attach?stream=1",
                                headers={"Connection": "Upgrade", "Upgrade": "tcp"})
        assert answer.status_code == 401 and answer.json()["code"] == "unauthenticated"
    with site.gateway.client() as client:  # a node that is not there: 404, at once
        missing = client.post("/v1/nodes/nowhere/containers/guarded/exec",
                              json={"Cmd": ["true"]})
        assert missing.status_code == 404, missing.text
    deadline = time.monotonic() + 10
    while site.wharf("rm", "-f", "guarded").returncode != 0 and time.monotonic() < deadline:
        time.sleep(0.2)


def test_the_cli_proxies_signals_through_the_gateway(site: Site) -> None:
    """Without a terminal ``run`` forwards the user's signals (``kill?signal=``); one that
    arrives while the CLI reads the TLS stream must not end the session."""
    script = ("trap 'echo got-usr1' USR1; trap 'echo bye; exit 9' TERM; echo ready; "
              "while :; do sleep 0.1; done")
    proc = subprocess.Popen([WHARF, "--node", NODE, "run", "--rm", "busybox", "sh", "-c",
                             script], env=site.env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "ready\n"
        proc.send_signal(signal.SIGUSR1)
        assert proc.stdout.readline() == "got-usr1\n"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert (proc.returncode, out) == (9, "bye\n"), err
