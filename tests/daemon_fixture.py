"""Start a real wharfd on a private data root and socket, for integration and e2e tests."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

WHARFD = str(Path(sys.executable).parent / "wharfd")


class UnixConnection(http.client.HTTPConnection):
    """HTTP/1.1 over AF_UNIX; keep-alive as long as every response is read to the end."""

    def __init__(self, path: Path, timeout: float = 120) -> None:
        super().__init__("localhost", timeout=timeout)
        self.unix_path = str(path)

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.unix_path)
        self.sock = sock


@dataclass
class Daemon:
    data_root: Path
    run_dir: Path
    socket: Path
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def host(self) -> str:
        return f"unix://{self.socket}"

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        conn = UnixConnection(self.socket)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def created_events(self) -> dict[str, int]:
        """Container name → how many ``create`` events the daemon recorded for it so far:
        how a test counts the commands a node really executed."""
        query = urllib.parse.quote(json.dumps({"type": ["container"], "event": ["create"]}))
        status, body = self.request("GET", f"/events?since=0&until={int(time.time()) + 1}"
                                    f"&filters={query}")
        assert status == 200
        counts: dict[str, int] = {}
        for line in body.decode().splitlines():
            if line.strip():
                name = json.loads(line)["Actor"]["Attributes"]["name"]
                counts[name] = counts.get(name, 0) + 1
        return counts


@contextmanager
def running_daemon(base: Path, *, mirrors: list[str] | None = None,
                   extra_args: list[str] | None = None,
                   env: dict[str, str] | None = None) -> Iterator[Daemon]:
    """wharfd under ``base`` (data root, run dir, socket); stopped with SIGTERM at the end."""
    data_root, run_dir = base / "data", base / "run"
    sock = run_dir / "wharfd.sock"
    base.mkdir(parents=True, exist_ok=True)
    log = base / "wharfd.log"
    args = [WHARFD, "--data-root", str(data_root), "--run-dir", str(run_dir),
            "-H", f"unix://{sock}", "--config-file", str(base / "no-daemon.json")]
    for mirror in mirrors or []:
        args += ["--registry-mirror", mirror]
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("WHARF_")},
           **(env or {})}
    # its own default bridge (and so its own subnet, iptables chains and veth names)
    env.setdefault("WHARF_BRIDGE", _bridge_name())
    with log.open("ab") as out:
        process = subprocess.Popen([*args, *(extra_args or [])], stdout=out, stderr=out, env=env)
    daemon = Daemon(data_root, run_dir, sock, process, log)
    try:
        _wait_ready(daemon)
        yield daemon
    finally:
        stop_daemon(daemon)
        remove_bridge(env["WHARF_BRIDGE"])


@contextmanager
def busybox_daemon(base: Path, mirror: str) -> Iterator[Daemon]:
    """wharfd with busybox pulled from ``mirror``; every container it ran is removed at the end."""
    with running_daemon(base, mirrors=[mirror]) as running:
        status, _ = running.request("POST", "/images/create?fromImage=busybox&tag=latest")
        assert status == 200
        yield running
        for record in json.loads(running.request("GET", "/containers/json?all=1")[1]):
            running.request("DELETE", f"/containers/{record['Id']}?force=1")


def _bridge_name() -> str:
    """A bridge name no other test daemon on this host uses (pid + a counter)."""
    global _bridges  # noqa: PLW0603
    _bridges += 1
    return f"wt{os.getpid() % 100000}x{_bridges}"


_bridges = 0


def remove_bridge(bridge: str) -> None:
    """Delete a test daemon's default bridge and its iptables chains (best effort)."""
    from wharf.daemon.core.network.portmap import PortMapper  # noqa: PLC0415

    subprocess.run(["ip", "link", "del", bridge], capture_output=True, check=False)
    with contextlib.suppress(Exception):  # cleanup must not mask the test's own outcome
        PortMapper("WHARF-" + bridge.upper()[:9]).remove_chains()


def stop_daemon(daemon: Daemon, timeout: float = 15) -> int:
    if daemon.process.poll() is None:
        daemon.process.send_signal(signal.SIGTERM)
        try:
            daemon.process.wait(timeout)
        except subprocess.TimeoutExpired:
            daemon.process.kill()
            daemon.process.wait()
    return daemon.process.returncode


def _wait_ready(daemon: Daemon, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if daemon.process.poll() is not None:
            raise RuntimeError(f"wharfd exited with {daemon.process.returncode}:\n"
                               f"{daemon.log_text()}")
        if daemon.socket.exists():
            try:
                if daemon.request("GET", "/_ping") == (200, b"OK"):
                    return
            except OSError:
                pass
        time.sleep(0.05)
    raise RuntimeError(f"wharfd did not answer within {timeout}s:\n{daemon.log_text()}")


def wharf_cli(daemon: Daemon, *args: str, check: bool = True, timeout: float = 120
              ) -> subprocess.CompletedProcess[str]:
    """Run the ``wharf`` CLI against ``daemon`` (its own client config, no WHARF_/DOCKER_
    variables from the caller); with ``check`` a non-zero exit fails with the output."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WHARF_", "DOCKER_"))}
    env["WHARF_CONFIG"] = str(daemon.data_root.parent / "client")
    result = subprocess.run([str(Path(WHARFD).parent / "wharf"), "-H", daemon.host, *args],
                            capture_output=True, text=True, check=False, env=env,
                            timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"wharf {' '.join(args)} exited {result.returncode}:\n"
                             f"{result.stdout}{result.stderr}")
    return result
