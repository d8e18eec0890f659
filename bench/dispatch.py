"""Control-plane dispatch: latency, throughput and scale of gateway → RabbitMQ → daemon → gateway.

    .venv/bin/python bench/dispatch.py [--requests 500] [--concurrency 16] [--duration 5]
                                       [--scale | --no-scale] [--scale-only] [--agents 50]
                                       [--containers 100] [--profile-gateway]

Sections (wall times; "ratio" is a p50 over the p50 of the same request sent straight to the
daemon's own API in the same run):

1. sequential round trips with 1 real node: ``GET /v1/nodes/n1/containers/json`` (a read: it
   always waits) and ``POST /v1/nodes/n1/containers/bench-n1/start?wait=true`` (the container
   runs, so the daemon answers 304: a full mutating round trip, journal included), beside the
   same two requests on wharfd's unix socket; and the floors of the path: the gateway alone
   (``GET /v1/nodes/n1``, no broker), one confirmed persistent publish to RabbitMQ, and the
   gateway with an in-process responder instead of wharfd (node ``sim-0``, simulated);
   then where a mutating round trip spends its time, from the gateway's own time stamps;
2. the same with 3 real nodes (requests spread round-robin);
3. throughput with ``--concurrency`` clients (asyncio + bench/rawhttp.py, a load generator
   cheap enough not to compete with the gateway for the cores) for ``--duration`` seconds per
   case, 1 and 3 nodes: wharfd direct, gateway with ``?wait=true`` (start → 304, list), and the
   ``202`` path (accepted = recorded + published + confirmed), with the time the nodes then need
   to execute the backlog, and the CPU each process spent per command; then (3c) section 1's
   mutating round trip again, after the gateway has recorded thousands more commands;
4. the control-plane scale run (``--scale``): ``--agents`` SIMULATED agents in this process
   (real protocol over the real broker: heartbeats, snapshots of ``--containers`` containers
   each, command answers; no wharfd, no containers) against a fresh gateway: view convergence,
   ``GET /v1/containers`` (running, ``all=1``, a first page, a node and a label filter; timed to
   the answer's last byte), ``GET /v1/nodes``, dispatch to simulated nodes, node-down
   detection, the idle gateway's CPU over one snapshot period; then whether each goal of issue
   #15 item 1 is met, from this run's figures.

Everything runs on a private RabbitMQ vhost (created and deleted with ``rabbitmqctl``) with its
own gateway process(es) and wharfd daemons (data roots under a temporary directory in
``--work-dir``, the registry as a mirror); all of it is stopped and removed at the end, also on
errors and Ctrl-C. Run from the repository root as root; needs RabbitMQ on 127.0.0.1:5672
(guest), crun/conmon and the registry seeded by ``make images`` (not for ``--scale-only``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import io
import itertools
import json
import os
import pstats
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `tests` and `bench` from any cwd

from bench.common import VENV_BIN, machine_lines, print_table
from bench.pull import BUSYBOX, git_head, registry_has
from bench.rawhttp import RawHTTPError, RawPool, RawResponse
from tests.daemon_fixture import Daemon, running_daemon
from wharf import topology
from wharf.errors import NotFound, NotModified, WharfError
from wharf.messaging import Broker, Delivery, declare_node_queues
from wharf.protocol import (
    CommandEnvelope,
    CommandResult,
    ContainerPayload,
    ErrorInfo,
    Heartbeat,
    ListPayload,
    Load,
    ResultStatus,
    Snapshot,
    parse_command,
)

GATEWAY_BIN = str(VENV_BIN / "wharf-gateway")
SLEEPER = {"Image": "busybox", "Cmd": ["sleep", "3600"], "HostConfig": {"NetworkMode": "none"}}
SIM_LABEL = "SIMULATED"
TARGET_P50, TARGET_P99 = 0.005, 0.025  # issue #5: dispatch round trip
TARGET_RATE = 1000.0                    # issue #5: commands/s per gateway
TARGET_DOWN = 3.0                       # issue #5: a dead node is marked down within 3 s
WARMUP = 20
POLL = 0.025


class BenchError(RuntimeError):
    """A request answered something the bench did not expect; the message says what."""


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("--requests", type=int, default=500, help="sequential requests per case (500)")
    add("--concurrency", type=int, default=16, help="concurrent clients for throughput (16)")
    add("--duration", type=float, default=5.0, help="seconds per throughput case (5)")
    add("--nodes", type=int, default=3, help="real nodes of the multi-node run (3)")
    add("--scale", action=argparse.BooleanOptionalAction, default=True,
        help="run the control-plane scale run with simulated agents (default: on)")
    add("--scale-only", action="store_true", help="only the scale run (no wharfd, no registry)")
    add("--agents", type=int, default=50, help="simulated agents in the scale run (50)")
    add("--containers", type=int, default=100, help="containers per simulated agent (100)")
    add("--scale-requests", type=int, default=30, help="GET /v1/containers samples (30)")
    add("--down-samples", type=int, default=3, help="node-down detection samples (3)")
    add("--node-down-after", type=float, default=2.5,
        help="the gateway's --node-down-after, seconds (2.5, its default)")
    add("--heartbeat-interval", type=float, default=1.0,
        help="daemons' and simulated agents' heartbeat interval, seconds (1.0, the default)")
    add("--profile-gateway", action="store_true",
        help="run the first gateway under cProfile (its event-loop thread) and print the top")
    add("--registry", default="127.0.0.1:5000", help="plain-HTTP registry used as a mirror")
    add("--work-dir", type=Path, default=Path("/var/tmp"), help="where the temporary tree goes")
    args = parser.parse_args()
    if min(args.requests, args.concurrency, args.nodes, args.agents, args.scale_requests,
           args.down_samples) < 1 or args.containers < 0 or args.duration <= 0:
        parser.error("counts must be at least 1 (--containers at least 0), --duration > 0")
    if args.scale_only and not args.scale:
        parser.error("--scale-only contradicts --no-scale")
    if args.down_samples > args.agents:
        parser.error("--down-samples cannot exceed --agents (one agent per sample)")
    return args


# ---- statistics ------------------------------------------------------------------------------

def quantile(ordered: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (inclusive); ``ordered`` is sorted."""
    pos = q * (len(ordered) - 1)
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


@dataclass(frozen=True)
class Dist:
    n: int
    p50: float
    p90: float
    p99: float
    max: float

    @classmethod
    def of(cls, samples: Sequence[float]) -> Dist:
        if not samples:
            raise BenchError("no samples")
        s = sorted(samples)
        return cls(len(s), quantile(s, 0.5), quantile(s, 0.9), quantile(s, 0.99), s[-1])


LAT_HEADER = ["", "n", "p50 ms", "p90 ms", "p99 ms", "max ms", "p50 ratio"]


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:.2f}" if seconds < 0.1 else f"{seconds * 1e3:.0f}"


def lat_row(label: str, samples: Sequence[float], reference: float | None = None) -> list[str]:
    d = Dist.of(samples)
    rel = f"{d.p50 / reference:.2f}x" if reference else "-"
    return [label, str(d.n), ms(d.p50), ms(d.p90), ms(d.p99), ms(d.max), rel]


# ---- processes: RabbitMQ vhost, gateway, daemons, CPU accounting -----------------------------

def rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True, timeout=60)


class Vhost:
    """A private vhost and its accounts: guest for the gateway (every right on it), each real
    node's own account (``node_url``, the rights of ``topology.node_rights``, as
    infra/amqp-accounts.sh grants them), and one account with RabbitMQ's ``impersonator`` tag
    for the simulated agents (``sim_url``): they publish in each simulated node's name, which
    the gateway checks as it checks real nodes."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.url = f"amqp://guest:guest@127.0.0.1:5672/{name}"
        self.users: list[str] = []
        self._sim_url: str | None = None

    def _user(self, user: str, *tags: str) -> str:
        password = uuid.uuid4().hex
        rabbitmqctl("add_user", user, password)
        self.users.append(user)
        if tags:
            rabbitmqctl("set_user_tags", user, *tags)
        return f"amqp://{user}:{password}@127.0.0.1:5672/{self.name}"

    @property
    def sim_url(self) -> str:
        if self._sim_url is None:
            self._sim_url = self._user(f"wharf-bench-sim-{self.name[-8:]}", "impersonator")
            rabbitmqctl("set_permissions", "-p", self.name, self.users[-1], ".*", ".*", ".*")
        return self._sim_url

    def node_url(self, node: str) -> str:
        url, rights = self._user(topology.node_user(node)), topology.node_rights(node)
        rabbitmqctl("set_permissions", "-p", self.name, topology.node_user(node),
                    rights["configure"], rights["write"], rights["read"])
        rabbitmqctl("set_topic_permissions", "-p", self.name, topology.node_user(node),
                    topology.EVENTS_EXCHANGE, rights["topic_write"], rights["topic_read"])
        return url


@contextmanager
def private_vhost(tag: str) -> Iterator[Vhost]:
    """A fresh vhost with its accounts (:class:`Vhost`); all deleted at the end."""
    vhost = Vhost(f"wharf-bench-{tag}-{uuid.uuid4().hex[:8]}")
    rabbitmqctl("add_vhost", vhost.name)
    try:
        rabbitmqctl("set_permissions", "-p", vhost.name, "guest", ".*", ".*", ".*")
        yield vhost
    finally:
        for argv in [("delete_user", user) for user in vhost.users] + [
                ("delete_vhost", vhost.name)]:
            try:
                rabbitmqctl(*argv)
            except (OSError, subprocess.SubprocessError) as exc:
                print(f"cleanup: `rabbitmqctl {' '.join(argv)}` failed: {exc!r}",
                      file=sys.stderr)


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("WHARF_")}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class GatewayProc:
    url: str
    token: str
    process: subprocess.Popen[bytes]
    log: Path
    profile: Path | None
    commands: int = 0  # requests this bench sent to /v1/nodes/{node}/...: each is a command

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def _count(self, request: httpx.Request) -> None:
        parts = request.url.path.split("/")
        if len(parts) > 4 and parts[2] == "nodes":
            self.commands += 1

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=self.headers, timeout=120,
                            event_hooks={"request": [self._count]})

    def raw_pool(self, connections: int) -> RawPool:
        """The load generator's connections (bench/rawhttp.py: cheap enough not to compete
        with the gateway for the two cores); callers count their commands themselves."""
        host, _, port = self.url.removeprefix("http://").rpartition(":")
        return RawPool(connections, host=host, port=int(port), headers=self.headers)

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""


@contextmanager
def running_gateway(base: Path, amqp_url: str, down_after: float,
                    profile: bool = False) -> Iterator[GatewayProc]:
    """``wharf-gateway serve`` on a free port (under ``python -m cProfile`` with ``profile``),
    stopped with a signal at the end."""
    base.mkdir(parents=True, exist_ok=True)
    tokens = base / "tokens"
    token = subprocess.run([GATEWAY_BIN, "token", "create", "bench", "--tokens-file",
                            str(tokens)], check=True, capture_output=True, text=True,
                           env=clean_env()).stdout.strip()
    port = free_port()
    argv = [GATEWAY_BIN, "serve", "--listen", f"127.0.0.1:{port}", "--amqp-url", amqp_url,
            "--state-dir", str(base / "state"), "--tokens-file", str(tokens),
            "--gateway-id", "gw-bench", "--node-down-after", str(down_after),
            # no per-token rate limit: the bench measures what the gateway can take
            "--rate", "0", "--log-level", "warning"]
    prof = base / "gateway.prof" if profile else None
    if prof is not None:
        argv = [sys.executable, "-m", "cProfile", "-o", str(prof), *argv]
    log = base / "gateway.log"
    with log.open("ab") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=out, env=clean_env())
    gateway = GatewayProc(f"http://127.0.0.1:{port}", token, process, log, prof)
    try:
        _wait_gateway(gateway)
        yield gateway
    finally:
        if process.poll() is None:
            # uvicorn re-raises the signal after its graceful shutdown: SIGTERM's default
            # action would end the process before cProfile writes; SIGINT's KeyboardInterrupt
            # goes through cProfile's `finally`, which writes the file
            process.send_signal(signal.SIGINT if prof is not None else signal.SIGTERM)
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_gateway(gateway: GatewayProc, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if gateway.process.poll() is not None:
            raise BenchError(f"wharf-gateway exited: {gateway.log_tail()}")
        with contextlib.suppress(httpx.HTTPError, ValueError):
            if httpx.get(gateway.url + "/healthz", timeout=1).json().get("broker") == \
                    "connected":
                return
        time.sleep(0.1)
    raise BenchError(f"wharf-gateway not ready within {timeout}s: {gateway.log_tail()}")


def wait_nodes(client: httpx.Client, names: Sequence[str], timeout: float = 60) -> float:
    """Seconds until every node in ``names`` is ready with a snapshot (EngineID) in the view."""
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        listed = {n["Name"]: n for n in client.get("/v1/nodes").json()}
        if all(listed.get(n, {}).get("Status") == "ready" and listed[n]["EngineID"]
               for n in names):
            return time.perf_counter() - start
        time.sleep(0.05)
    raise BenchError(f"nodes {list(names)} not ready within {timeout}s")


class RealNodes:
    """wharfd daemons attached to the control plane, each with a ``sleep`` container."""

    def __init__(self, base: Path, vhost: Vhost, registry: str, heartbeat: float) -> None:
        self.base, self.vhost, self.registry, self.heartbeat = base, vhost, registry, heartbeat
        self.daemons: dict[str, Daemon] = {}
        self.bridges: list[str] = []
        self._stack = ExitStack()
        self._tag = uuid.uuid4().hex[:6]

    def add(self, name: str) -> Daemon:
        index = len(self.daemons) + 1
        bridge = f"wb{index:02d}{self._tag[:4]}"
        self.bridges.append(bridge)
        env = {"WHARF_AMQP_URL": self.vhost.node_url(name), "WHARF_NODE_NAME": name,
               "WHARF_NODE_LABELS": json.dumps({"bench": "real"}),
               "WHARF_HEARTBEAT_INTERVAL": str(self.heartbeat),
               # daemons sharing a host (one network namespace) each need their own cgroup
               # parent, default bridge and subnet (the bench containers use --network none)
               "WHARF_CGROUP_PARENT": f"wharf-bench-{self._tag}-{name}",
               "WHARF_BRIDGE": bridge, "WHARF_BRIDGE_SUBNET": f"10.213.{index}.0/24"}
        daemon = self._stack.enter_context(running_daemon(
            self.base / name, mirrors=[f"http://{self.registry}"], env=env))
        self.daemons[name] = daemon
        return daemon

    def close(self) -> None:
        for name, daemon in self.daemons.items():
            if daemon.process.poll() is not None:
                continue
            try:
                status, body = daemon.request("GET", "/containers/json?all=1")
                for row in json.loads(body) if status == 200 else []:
                    daemon.request("DELETE", f"/containers/{row['Id']}?force=1")
            except (OSError, ValueError) as exc:
                print(f"cleanup: removing {name}'s containers failed: {exc!r}", file=sys.stderr)
        self._stack.close()
        for bridge in self.bridges:  # a daemon that stops keeps its bridge, as dockerd does
            if Path(f"/sys/class/net/{bridge}").exists():
                subprocess.run(["ip", "link", "del", bridge], check=False, capture_output=True)


def leftovers(base: Path) -> None:
    """Kill conmon processes and unmount mounts of this run that outlived the daemons."""
    marker = str(base).encode()
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            with contextlib.suppress(OSError):
                argv = (proc / "cmdline").read_bytes().split(b"\0")
                if argv[0].endswith(b"conmon") and marker in b" ".join(argv):
                    pids.append(int(proc.name))
    prefix = str(base.resolve()) + "/"
    mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()
              if line.split()[1].startswith(prefix)]
    print(f"\ncleanup check: conmon processes of this run: {pids or 'none'}; mounts under "
          f"{base}: {len(mounts) or 'none'}")
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    for mount in sorted(mounts, key=len, reverse=True):
        subprocess.run(["umount", "-l", mount], check=False)


def rabbit_pid() -> int | None:
    """The RabbitMQ server's pid (the beam.smp running ``rabbit``), if this machine runs one."""
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            with contextlib.suppress(OSError):
                argv = (proc / "cmdline").read_bytes().split(b"\0")
                if argv[0].endswith(b"beam.smp") and b"rabbit" in b" ".join(argv):
                    return int(proc.name)
    return None


def cpu_seconds(pid: int, tid: int | None = None) -> float:
    """utime + stime of ``pid`` (every thread; only thread ``tid`` when given), in seconds;
    0 when it is gone."""
    path = f"/proc/{pid}/stat" if tid is None else f"/proc/{pid}/task/{tid}/stat"
    try:
        fields = Path(path).read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


LOOP_THREAD = "gw loop thread"  # a part of the gateway's figure, not added to the total


class CpuMeter:
    """CPU seconds per named group of processes (``bench client`` = this process), and the
    gateway's main thread (uvicorn's event loop: HTTP, FastAPI, RabbitMQ, SQLite) on its own;
    what else the gateway spends is in threads asyncio or SQLite start."""

    def __init__(self, groups: dict[str, list[int]], gateway: int) -> None:
        self.groups, self.gateway = groups, gateway

    def sample(self) -> dict[str, float]:
        out = {name: sum(cpu_seconds(p) for p in pids) for name, pids in self.groups.items()}
        out[LOOP_THREAD] = cpu_seconds(self.gateway, self.gateway)
        out["bench client"] = time.process_time()
        return out

    @staticmethod
    def delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
        return {k: after[k] - before[k] for k in after}


# ---- simulated agents ------------------------------------------------------------------------

SIM_IMAGE_ID = "sha256:" + hashlib.sha256(b"wharf-bench-simulated-image").hexdigest()
SHARDS = 1000  # values of the label wharf.bench.shard: ~30 containers each at 1,000 x 30
SHARD_KEY = "wharf.bench.shard"
SIM_SNAPSHOT_INTERVAL = 30.0  # as wharfd's WHARF_SNAPSHOT_INTERVAL default


def sim_container(node: str, index: int, started: str) -> dict[str, Any]:
    """A container list entry shaped like wharfd's (handler.summary); 1 in 10 has exited.
    Each has a shard label (``wharf.bench.shard=sN``, N from a hash of node and index), so a
    label filter picks a few containers spread over many nodes."""
    running = index % 10 != 9
    digest = hashlib.sha256(f"{node}/{index}".encode()).hexdigest()
    return {
        "Id": digest,
        "Names": [f"/{node}-c{index}"], "Image": "busybox", "ImageID": SIM_IMAGE_ID,
        "Command": "sleep 3600", "Created": int(time.time()) - 60, "Ports": [],
        "Labels": {"wharf.bench": SIM_LABEL.lower(),
                   SHARD_KEY: f"s{int(digest[:8], 16) % SHARDS}"},
        "State": "running" if running else "exited",
        "Status": "Up About a minute" if running else "Exited (0) 30 seconds ago",
        "HostConfig": {"NetworkMode": "none"}, "NetworkSettings": {"Networks": {}},
        "Mounts": [], "StartedAt": started,
        "FinishedAt": "0001-01-01T00:00:00Z" if running else started,
        "ExitCode": 0,
    }


class SimFleet:
    """SIMULATED agents in this process, speaking the real protocol over the real broker.

    Two threads, each with its own pika connection (as the real agent): a reporter that sends
    every node's snapshot at start and every ``snapshot_interval`` and a heartbeat per node
    every ``heartbeat_interval`` (nodes can be silenced and resumed), and a responder that
    consumes every node's command queue and answers list/inspect/start from memory (start of
    a running container is 304 as on wharfd; other commands succeed doing nothing). No wharfd,
    no containers, no journal: only the gateway and the broker are real.
    """

    def __init__(self, url: str, nodes: Sequence[str], containers: int,
                 heartbeat_interval: float,
                 snapshot_interval: float = SIM_SNAPSHOT_INTERVAL) -> None:
        self.url, self.nodes = url, list(nodes)
        self.heartbeat_interval, self.snapshot_interval = heartbeat_interval, snapshot_interval
        started = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        self.containers = {n: [sim_container(n, i, started) for i in range(containers)]
                           for n in self.nodes}
        self._index = {n: {key: c for c in rows for key in (c["Id"], c["Names"][0][1:])}
                       for n, rows in self.containers.items()}
        self._silent: set[str] = set()
        self.last_beat: dict[str, float] = {}
        self.bursts = 0
        self.errors: list[BaseException] = []
        self._burst = threading.Condition()
        self._declared = threading.Event()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._respond, name="sim-responder",
                                          daemon=True),
                         threading.Thread(target=self._report, name="sim-reporter",
                                          daemon=True)]

    def start(self) -> None:
        self._threads[0].start()
        if not self._declared.wait(30) or self.errors:
            raise BenchError(f"simulated agents could not declare their queues: {self.errors}")
        self._threads[1].start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            if thread.is_alive():
                thread.join(10)

    def silence(self, node: str) -> float:
        """Stop ``node``'s heartbeats; returns the wall time of the last one it sent."""
        with self._burst:
            self._silent.add(node)
            seen = self.bursts
            # a burst in progress may still send this node's beat: wait for the next one
            self._burst.wait_for(lambda: self.bursts > seen + 1 or self._stop.is_set(),
                                 timeout=self.heartbeat_interval * 3 + 5)
            return self.last_beat[node]

    def resume(self, node: str) -> None:
        with self._burst:
            self._silent.discard(node)

    # --- the responder thread ---------------------------------------------------------------

    def _respond(self) -> None:
        broker = Broker(self.url)
        try:
            for node in self.nodes:
                declare_node_queues(broker.channel, node)
            self._declared.set()
            broker.consume([topology.command_queue(n) for n in self.nodes],
                           lambda d: self._answer(broker, d), stop=self._stop.is_set,
                           inactivity_timeout=0.2)
        except Exception as exc:  # reported by the bench
            self.errors.append(exc)
        finally:
            self._declared.set()
            broker.close()

    def _answer(self, broker: Broker, delivery: Delivery) -> bool:
        try:
            envelope = parse_command(delivery.body)
        except WharfError:
            return False
        try:
            result = CommandResult(command_id=envelope.id, node=envelope.node,
                                   status=ResultStatus.OK, result=self._execute(envelope))
        except WharfError as exc:
            result = CommandResult(command_id=envelope.id, node=envelope.node,
                                   status=ResultStatus.ERROR,
                                   error=ErrorInfo(code=exc.code, message=exc.message))
        if envelope.reply_to:
            broker.publish(topology.RESULTS_EXCHANGE, envelope.reply_to,
                           result.model_dump_json().encode(),
                           correlation_id=envelope.correlation_id or str(envelope.id),
                           user_id=topology.node_user(envelope.node))
        return True

    def _execute(self, envelope: CommandEnvelope) -> Any:
        payload, rows = envelope.payload, self.containers[envelope.node]
        if isinstance(payload, ListPayload):
            return rows if payload.all else [c for c in rows if c["State"] == "running"]
        if isinstance(payload, ContainerPayload):
            found = self._index[envelope.node].get(payload.container)
            if found is None:
                raise NotFound(f"No such container: {payload.container}")
            if payload.type == "start" and found["State"] == "running":
                raise NotModified(f"container {payload.container} is already running")
            return {"Id": found["Id"], "State": {"Running": found["State"] == "running"}}
        return None

    # --- the reporter thread ----------------------------------------------------------------

    def _report(self) -> None:
        broker = Broker(self.url)
        beat_seq, next_snapshot = 0, 0.0
        try:
            while not self._stop.is_set():
                began = time.monotonic()
                if began >= next_snapshot:
                    next_snapshot = began + self.snapshot_interval
                    for node in self.nodes:
                        self._publish(broker, node, "snapshot",
                                      self._snapshot(node).model_dump_json().encode())
                with self._burst:
                    beating = [n for n in self.nodes if n not in self._silent]
                for node in beating:
                    self._publish(broker, node, "heartbeat",
                                  self._heartbeat(node, beat_seq).model_dump_json().encode(),
                                  expiration_ms=int(self.heartbeat_interval * 3000))
                    self.last_beat[node] = time.time()
                beat_seq += 1
                with self._burst:
                    self.bursts += 1
                    self._burst.notify_all()
                self._stop.wait(max(0.0, began + self.heartbeat_interval - time.monotonic()))
        except Exception as exc:  # reported by the bench
            self.errors.append(exc)
        finally:
            with self._burst:
                self._burst.notify_all()
            broker.close()

    @staticmethod
    def _publish(broker: Broker, node: str, kind: str, body: bytes,
                 expiration_ms: int | None = None) -> None:
        broker.publish(topology.EVENTS_EXCHANGE, topology.event_key(node, kind), body,
                       mandatory=False, expiration_ms=expiration_ms,
                       user_id=topology.node_user(node))  # the sim account impersonates

    def _snapshot(self, node: str) -> Snapshot:
        return Snapshot(node=node, seq=0, engine_id=f"sim-{node}", taken_at=datetime.now(UTC),
                        labels={"wharf.bench": SIM_LABEL.lower()},
                        containers=self.containers[node], images=[])

    def _heartbeat(self, node: str, seq: int) -> Heartbeat:
        rows = self.containers[node]
        running = sum(c["State"] == "running" for c in rows)
        return Heartbeat(node=node, seq=seq, sent_at=datetime.now(UTC),
                         labels={"wharf.bench": SIM_LABEL.lower()}, version="simulated",
                         load=Load(containers=len(rows), running=running, memory_total=2**33,
                                   memory_available=2**32, cpus=2, load1=0.0))


@contextmanager
def sim_fleet(url: str, nodes: Sequence[str], containers: int, heartbeat: float
              ) -> Iterator[SimFleet]:
    fleet = SimFleet(url, nodes, containers, heartbeat)
    try:
        fleet.start()
        yield fleet
    finally:
        fleet.stop()
    if fleet.errors:
        raise BenchError(f"a simulated agent failed: {fleet.errors[0]!r}")


# ---- 1./2. sequential round trips ----------------------------------------------------------

Request = Callable[[int], None]


def expect(client: httpx.Client, method: str, url: str, status: int, **kw: Any
           ) -> httpx.Response:
    response = client.request(method, url, **kw)
    if response.status_code != status:
        raise BenchError(f"{method} {url} -> {response.status_code} (expected {status}): "
                         f"{response.text[:300]}")
    return response


def hit(client: httpx.Client, method: str, url: str, status: int, **kw: Any) -> None:
    """``expect`` for timed cases: the answer is checked and dropped."""
    expect(client, method, url, status, **kw)


def daemon_client(daemon: Daemon) -> httpx.Client:
    """httpx over wharfd's unix socket: the same client library as for the gateway."""
    return httpx.Client(transport=httpx.HTTPTransport(uds=str(daemon.socket)),
                        base_url="http://wharfd", timeout=60)


def round_robin(cases: Sequence[tuple[str, Request]], n: int) -> dict[str, list[float]]:
    """``n`` timed calls of each case, interleaved (case A, B, … then again), after a warm-up,
    so a drift of the machine touches every case alike."""
    for i in range(WARMUP):
        for _, run in cases:
            run(i)
    samples: dict[str, list[float]] = {label: [] for label, _ in cases}
    for i in range(n):
        for label, run in cases:
            start = time.perf_counter()
            run(i)
            samples[label].append(time.perf_counter() - start)
    return samples


def sequential_section(title: str, gw: httpx.Client, daemons: dict[str, httpx.Client],
                       n: int, floors: list[tuple[str, Request]]) -> Dist:
    names = list(daemons)

    def node(i: int) -> str:
        return names[i % len(names)]

    where = names[0] if len(names) == 1 else "{" + ",".join(names) + "}"
    read_d, start_d = "wharfd API: GET /containers/json", "wharfd API: POST start (304)"
    read_g = f"gateway -> {where}: GET /v1/nodes/N/containers/json"
    start_g = f"gateway -> {where}: POST start?wait=true (304)"
    cases: list[tuple[str, Request]] = [
        (read_d, lambda i: hit(daemons[node(i)], "GET", "/containers/json", 200)),
        (start_d, lambda i: hit(daemons[node(i)], "POST",
                                   f"/containers/bench-{node(i)}/start", 304)),
        (read_g, lambda i: hit(gw, "GET", f"/v1/nodes/{node(i)}/containers/json", 200)),
        (start_g, lambda i: hit(gw, "POST", f"/v1/nodes/{node(i)}/containers/bench-{node(i)}"
                                "/start", 304, params={"wait": "true"})),
        *floors,
    ]
    samples = round_robin(cases, n)
    ref_read, ref_start = Dist.of(samples[read_d]).p50, Dist.of(samples[start_d]).p50
    rows = [lat_row(read_d + "  [reference]", samples[read_d], ref_read),
            lat_row(start_d + "  [reference]", samples[start_d], ref_start),
            lat_row(read_g, samples[read_g], ref_read),
            lat_row(start_g, samples[start_g], ref_start)]
    rows += [lat_row(label, samples[label]) for label, _ in floors]
    print_table(f"{title}  (ratio = p50 / the same request's p50 on wharfd's socket)",
                LAT_HEADER, rows)
    over_r = Dist.of(samples[read_g]).p50 - ref_read
    over_s = Dist.of(samples[start_g]).p50 - ref_start
    print(f"\ncontrol-plane overhead at p50 (gateway p50 - wharfd p50): read {ms(over_r)} ms, "
          f"mutating {ms(over_s)} ms")
    return Dist.of(samples[start_g])


def floor_cases(gw: httpx.Client, amqp_url: str, stack: ExitStack, node: str,
                sim_node: str | None) -> list[tuple[str, Request]]:
    """The path's floors: the gateway alone, one confirmed publish, an in-process responder."""
    broker = Broker(amqp_url)
    stack.callback(broker.close)
    queue = "bench.floor"
    broker.channel.queue_declare(queue, durable=True, arguments={
        "x-max-length": 100, "x-overflow": "drop-head"})
    body = b'{"bench": "' + b"x" * 400 + b'"}'  # about a command envelope's size

    def publish(_i: int) -> None:
        broker.publish("", queue, body, expiration_ms=60_000)

    cases: list[tuple[str, Request]] = [
        (f"floor: gateway only, GET /v1/nodes/{node} (no broker)",
         lambda _i: hit(gw, "GET", f"/v1/nodes/{node}", 200)),
        ("floor: RabbitMQ publish+confirm (persistent, mandatory)", publish),
    ]
    if sim_node is not None:
        cases.append((f"floor: gateway -> {sim_node} ({SIM_LABEL} in-process responder), "
                      "GET containers/json",
                      lambda _i: hit(gw, "GET", f"/v1/nodes/{sim_node}/containers/json",
                                        200)))
    return cases


def phases_section(gw: httpx.Client, names: Sequence[str], n: int) -> None:
    """Where a mutating round trip goes, from the gateway's own time stamps (one clock).

    An error answer (the 304 here) carries no X-Wharf-Command header, so each request sends an
    Idempotency-Key; the same request again without ``wait`` and with that key answers 202 with
    the first command's document (CreatedAt, the node's FinishedAt) and runs nothing again.
    """
    sent: list[tuple[str, str, float, float]] = []
    for i in range(n):
        path, key = f"/v1/nodes/{names[i % len(names)]}/containers/bench-{names[i % len(names)]}" \
            "/start", f"bench-{uuid.uuid4().hex}"
        before = time.time()
        hit(gw, "POST", path, 304, params={"wait": "true"}, headers={"Idempotency-Key": key})
        sent.append((path, key, before, time.time()))
    ingress: list[float] = []
    execute: list[float] = []
    back: list[float] = []
    total: list[float] = []
    for path, key, before, after in sent:
        doc = expect(gw, "POST", path, 202, headers={"Idempotency-Key": key}).json()
        created, finished = float(doc["CreatedAt"]), float(doc["Nodes"][doc["Node"]]
                                                           ["FinishedAt"])
        ingress.append(created - before)
        execute.append(finished - created)
        back.append(after - finished)
        total.append(after - before)
    header = ["", "n", "p50 ms", "p90 ms", "p99 ms", "max ms", "-"]
    rows = [lat_row("a. client sends -> gateway stamps CreatedAt", ingress),
            lat_row("b. CreatedAt -> node's result FinishedAt", execute),
            lat_row("c. FinishedAt -> client has the response", back),
            lat_row("   whole round trip (with Idempotency-Key)", total)]
    print_table("   where a mutating round trip goes (POST start?wait=true -> 304; stamps from "
                "the command's document)", header, rows)
    print("\na = HTTP in, token check, validation, idempotency-key lookup (SQLite), node "
          "liveness (memory); b = command\nINSERT, publish, broker, agent consume, journal "
          "begin, engine call; c = journal finish, result publish,\nbroker, gateway consumer "
          "(on the loop), SQLite, hand-over to the waiting request, HTTP out.\nOne machine, one "
          "clock; rows are medians of their own, so they need not add up exactly.")


# ---- 3. throughput ---------------------------------------------------------------------------

Send = Callable[[int], Awaitable[RawResponse]]


@dataclass
class LoadResult:
    label: str
    ok: int
    errors: int
    seconds: float
    latencies: list[float]
    cpu: dict[str, float]
    first_error: str = ""
    drain: float | None = None
    backlog: int = 0

    @property
    def rate(self) -> float:
        return self.ok / self.seconds


async def hammer(send: Send, status: int, concurrency: int, duration: float
                 ) -> tuple[int, list[str], float, list[float]]:
    """``concurrency`` workers send back to back for ``duration`` seconds."""
    latencies: list[float] = []
    errors: list[str] = []
    counter = itertools.count()
    end = time.perf_counter() + duration

    async def worker() -> None:
        while time.perf_counter() < end and len(errors) < 50:
            i = next(counter)
            start = time.perf_counter()
            try:
                response = await send(i)
            except RawHTTPError as exc:
                errors.append(repr(exc))
                continue
            if response.status_code == status:
                latencies.append(time.perf_counter() - start)
            else:
                errors.append(f"{response.status_code} {response.text[:200]}")

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return len(latencies), errors, time.perf_counter() - start, latencies


def load_case(label: str, make: Callable[[], tuple[Send, Callable[[], Awaitable[None]]]],
              status: int, args: argparse.Namespace, meter: CpuMeter) -> LoadResult:
    before: dict[str, float] = {}

    async def measured() -> tuple[int, list[str], float, list[float]]:
        nonlocal before
        send, close = make()
        try:
            await hammer(send, status, args.concurrency, min(1.0, args.duration))  # warm-up
            before = meter.sample()
            return await hammer(send, status, args.concurrency, args.duration)
        finally:
            await close()

    ok, errors, seconds, latencies = asyncio.run(measured())
    cpu = CpuMeter.delta(before, meter.sample())
    return LoadResult(label, ok, len(errors), seconds, latencies, cpu,
                      errors[0] if errors else "")


def throughput_section(title: str, gateway: GatewayProc, daemons: dict[str, Daemon],
                       args: argparse.Namespace, meter: CpuMeter) -> list[LoadResult]:
    names = list(daemons)
    k = args.concurrency
    last_ids: dict[str, str] = {}
    backlog = [0]  # every 202 of the case, warm-up included: all of them are executed

    def direct() -> tuple[Send, Callable[[], Awaitable[None]]]:
        pools = [RawPool(k, uds=str(d.socket)) for d in daemons.values()]

        async def send(i: int) -> RawResponse:
            n = names[i % len(names)]
            return await pools[i % len(names)].request("POST", f"/containers/bench-{n}/start")

        async def close() -> None:
            for pool in pools:
                await pool.aclose()
        return send, close

    def via_gateway(kind: str) -> Callable[[], tuple[Send, Callable[[], Awaitable[None]]]]:
        def make() -> tuple[Send, Callable[[], Awaitable[None]]]:
            pool = gateway.raw_pool(k)

            async def send(i: int) -> RawResponse:
                n = names[i % len(names)]
                gateway.commands += 1
                if kind == "list":
                    return await pool.request("GET", f"/v1/nodes/{n}/containers/json")
                wait = "?wait=true" if kind == "wait" else ""
                response = await pool.request("POST",
                                              f"/v1/nodes/{n}/containers/bench-{n}/start{wait}")
                if kind == "202" and response.status_code == 202:
                    last_ids[n] = response.json()["Id"]
                    backlog[0] += 1
                return response
            return send, pool.aclose
        return make

    where = names[0] if len(names) == 1 else f"{len(names)} nodes"
    results = [
        load_case(f"wharfd API direct: POST start (304)  [reference, {where}]", direct, 304,
                  args, meter),
        load_case(f"gateway -> {where}: POST start?wait=true (304)", via_gateway("wait"), 304,
                  args, meter),
        load_case(f"gateway -> {where}: GET containers/json", via_gateway("list"), 200, args,
                  meter),
    ]
    accepted_at = time.perf_counter()
    accepted = load_case(f"gateway -> {where}: POST start, no wait (202 accepted)",
                         via_gateway("202"), 202, args, meter)
    accepted.backlog = backlog[0]
    accepted.drain = drain(gateway, last_ids, accepted_at, accepted)
    results.append(accepted)
    print_load_table(title, results, k)
    return results


def drain(gateway: GatewayProc, last_ids: dict[str, str], started: float,
          accepted: LoadResult, timeout: float = 180) -> float | None:
    """Seconds from the start of the 202 case (warm-up included) until the nodes executed
    the last command it sent to each of them (commands of one node run in order)."""
    with gateway.client() as client:
        while time.perf_counter() - started < timeout:
            states = [client.get(f"/v1/commands/{cid}").json()["Status"]
                      for cid in last_ids.values()]
            if all(s != "pending" for s in states):
                return time.perf_counter() - started
            time.sleep(0.1)
    print(f"the 202 backlog ({accepted.backlog} commands) was not executed within {timeout}s")
    return None


def print_load_table(title: str, results: list[LoadResult], k: int) -> None:
    groups = [g for g in results[0].cpu if g not in (LOOP_THREAD, "bench client")]
    groups.insert(1, LOOP_THREAD)
    groups.append("bench client")
    header = ["", "ok", "err", "cmds/s", "p50 ms", "p99 ms", *groups, "all",
              "2-core ceiling", "gw ceiling"]
    rows = []
    for r in results:
        d = Dist.of(r.latencies) if r.latencies else None
        per = {g: r.cpu[g] / max(r.ok, 1) for g in groups}
        total = sum(v for g, v in per.items() if g != LOOP_THREAD)
        gw = per["gateway"]
        rows.append([r.label, str(r.ok), str(r.errors), f"{r.rate:.0f}",
                     ms(d.p50) if d else "-", ms(d.p99) if d else "-",
                     *[f"{per[g] * 1e3:.2f}" for g in groups], f"{total * 1e3:.2f}",
                     f"{2 / total:.0f}" if total > 0 else "-",
                     f"{1 / gw:.0f}" if gw > 5e-5 else "-"])
    print_table(f"{title}  ({k} concurrent clients, keep-alive; 'ok' = expected status; "
                "process columns = CPU ms per ok command)", header, rows)
    for r in results:
        if r.first_error:
            print(f"{r.label}: {r.errors} unexpected answers, first: {r.first_error}")
        if r.drain is not None:
            print(f"202 backlog: the {r.backlog} commands the case sent (warm-up included) were "
                  f"all executed {r.drain:.1f}s after it began: {r.backlog / r.drain:.0f} "
                  "executed/s by the node side (one command at a time per node)")
    print(f"CPU = utime+stime from /proc during the case (all threads; '{LOOP_THREAD}' is the "
          "part of 'gateway' spent on its\nmain thread, uvicorn's event loop, where HTTP and "
          "RabbitMQ both run); 'bench client' is this process\n(asyncio + bench/rawhttp.py); "
          "'all' excludes the loop-thread column (already in 'gateway'). 2-core ceiling =\n"
          "2000 / all, in cmds/s; gw ceiling = 1000 / gateway: the gateway's Python code runs "
          "under one GIL, so about\none core is all it can use.")


# ---- 4. scale --------------------------------------------------------------------------------

@dataclass
class DownSample:
    node: str
    detect: float
    since_silence: float
    refused: float
    refused_status: int
    recover: float


@dataclass
class ScaleFigures:
    """Section 4's figures for the goals of issue #15 item 1."""

    view: float = 0.0  # seconds from the agents' start to every container listed
    reads: dict[str, Dist] = field(default_factory=dict)  # by the goal's key
    idle_cpu: float = 0.0  # fraction of one core
    idle_rss_mib: float = 0.0
    profile: Path | None = None  # the scale gateway's cProfile output (--profile-gateway)
    down: list[DownSample] = field(default_factory=list)


# issue #15 item 1, at 1,000 nodes x 30 containers
GOAL_VIEW, GOAL_ALL, GOAL_FILTER, GOAL_NODES, GOAL_IDLE = 3.0, 0.250, 0.015, 0.030, 0.10


def scale_section(args: argparse.Namespace, base: Path) -> ScaleFigures:
    nodes = [f"sim-{i:02d}" for i in range(args.agents)]
    total = args.agents * args.containers
    running = sum(i % 10 != 9 for i in range(args.containers)) * args.agents
    figures = ScaleFigures()
    print(f"\n## 4. control-plane scale: {args.agents} {SIM_LABEL} agents x {args.containers} "
          f"containers = {total} (in this process, real protocol over the real broker; no "
          "wharfd, no containers)")
    with ExitStack() as stack:
        vhost = stack.enter_context(private_vhost("scale"))
        # with --scale-only, --profile-gateway profiles this gateway (there is no other)
        gateway = stack.enter_context(running_gateway(
            base / "gateway-scale", vhost.url, args.node_down_after,
            profile=args.profile_gateway and args.scale_only))
        figures.profile = gateway.profile
        client = stack.enter_context(gateway.client())
        launched = time.perf_counter()
        fleet = stack.enter_context(sim_fleet(vhost.sim_url, nodes, args.containers,
                                              args.heartbeat_interval))
        # The fleet first declares every node's queues (the gateway would, at each node's
        # first heartbeat; 1,000 nodes take seconds): the agents start reporting after it.
        started = time.perf_counter()
        ready = wait_nodes(client, nodes, timeout=120)
        # the whole view, asked for its ids only (a gateway without `fields` sends every field)
        while len(client.get("/v1/containers", params={"all": "1", "fields": "Id"}).json()) \
                < total:
            if time.perf_counter() - started > 120:
                raise BenchError("the cluster view did not reach every simulated container")
            time.sleep(0.1)
        figures.view = time.perf_counter() - started
        print(f"\nview: {args.agents} nodes ready {ready:.2f}s and all {total} containers in "
              f"GET /v1/containers?all=1 {figures.view:.2f}s after the agents started "
              f"reporting (first snapshots; polled every 0.1 s); "
              f"{figures.view + started - launched:.2f}s after the bench started them "
              f"({started - launched:.2f}s of it declaring their queues)")
        scale_reads(client, args, total, running, nodes, figures)
        figures.down = down_section(client, fleet, nodes, args)
        idle_cost(gateway, args, figures, window=SIM_SNAPSHOT_INTERVAL)
    print(f"\n(scale run: {time.perf_counter() - started:.0f}s)")
    scale_verdicts(args, figures)
    return figures


def scale_reads(client: httpx.Client, args: argparse.Namespace, total: int, running: int,
                nodes: Sequence[str], figures: ScaleFigures) -> None:
    """4a: the view's reads, timed from the request to the answer's last byte (the rows are
    counted from the last answer afterwards: the bench's own JSON parsing is not the
    gateway's latency)."""
    one = nodes[len(nodes) // 2]
    shard = f"s{SHARDS // 2}"
    last: dict[str, httpx.Response] = {}

    def sized(label: str, path: str, params: dict[str, str]) -> Request:
        def run(_i: int) -> None:
            last[label] = expect(client, "GET", path, 200, params=params)
        return run

    cases = [
        ("running", "GET /v1/containers (running only)", {}),
        ("all", "GET /v1/containers?all=1", {"all": "1"}),
        ("page", "GET /v1/containers?all=1&limit=1000 (first page)",
         {"all": "1", "limit": "1000"}),
        ("node", f"GET /v1/containers?filters=node={one}",
         {"filters": json.dumps({"node": [one]})}),
        ("label", f"GET /v1/containers?filters=label={SHARD_KEY}={shard}",
         {"filters": json.dumps({"label": [f"{SHARD_KEY}={shard}"]})}),
    ]
    timed = [(label, sized(key, "/v1/containers", params)) for key, label, params in cases]
    timed.append(("GET /v1/nodes", sized("nodes", "/v1/nodes", {})))
    keys = [key for key, _, _ in cases] + ["nodes"]
    samples = round_robin(timed, args.scale_requests)
    rows = []
    for (label, _), key in zip(timed, keys, strict=True):
        figures.reads[key] = Dist.of(samples[label])
        rows.append([*lat_row(label, samples[label])[:6], str(len(last[key].json())),
                     f"{len(last[key].content) / 1024:.0f}"])
    print_table(f"4a. cluster view reads with {total} containers ({running} running), "
                "request to last byte", ["", "n", "p50 ms", "p90 ms", "p99 ms", "max ms",
                                         "rows", "KiB"], rows)
    dispatch_reads(client, args, nodes)


def dispatch_reads(client: httpx.Client, args: argparse.Namespace, nodes: Sequence[str]
                   ) -> None:
    spread = [(f"gateway -> {len(nodes)} {SIM_LABEL} nodes: GET containers/json "
               f"({args.containers * 9 // 10} rows)",
               lambda i: hit(client, "GET", f"/v1/nodes/{nodes[i % len(nodes)]}"
                                "/containers/json", 200)),
              (f"gateway -> {len(nodes)} {SIM_LABEL} nodes: POST start?wait=true (304)",
               lambda i: hit(client, "POST", f"/v1/nodes/{nodes[i % len(nodes)]}/containers/"
                                f"{nodes[i % len(nodes)]}-c0/start", 304,
                                params={"wait": "true"}))]
    dispatch = round_robin(spread, min(args.requests, 200))
    print_table(f"4b. dispatch to {SIM_LABEL} nodes (answered from memory by this process), "
                "sequential", LAT_HEADER, [lat_row(label, dispatch[label]) for label, _ in spread])


def scale_verdicts(args: argparse.Namespace, figures: ScaleFigures) -> None:
    """The goals of issue #15 item 1, met or not, from this run's figures only."""
    def verdict(ok: bool) -> str:
        return "met" if ok else "NOT met"

    reads = figures.reads
    at_goal = args.agents >= 1000 and args.containers >= 30
    print(f"\n## issue #15 item 1 goals (for 1,000 nodes x 30 containers; this run: "
          f"{args.agents} x {args.containers}{'' if at_goal else ', smaller: not the goal'})\n")
    worst_filter = max(reads["node"].p99, reads["label"].p99)
    for line in (
            f"view whole {figures.view:.2f} s after start (goal <= {GOAL_VIEW:.0f} s): "
            f"{verdict(figures.view <= GOAL_VIEW)}",
            f"GET /v1/containers?all=1 p99 {ms(reads['all'].p99)} ms (goal <= "
            f"{GOAL_ALL * 1e3:.0f}): {verdict(reads['all'].p99 <= GOAL_ALL)}",
            f"node filter p99 {ms(reads['node'].p99)} ms, label filter p99 "
            f"{ms(reads['label'].p99)} ms (goal <= {GOAL_FILTER * 1e3:.0f}): "
            f"{verdict(worst_filter <= GOAL_FILTER)}",
            f"GET /v1/nodes p99 {ms(reads['nodes'].p99)} ms (goal <= {GOAL_NODES * 1e3:.0f}): "
            f"{verdict(reads['nodes'].p99 <= GOAL_NODES)}",
            f"idle gateway {figures.idle_cpu * 100:.1f}% of a core (goal <= "
            f"{GOAL_IDLE * 100:.0f}%), VmRSS {figures.idle_rss_mib:.0f} MiB: "
            f"{verdict(figures.idle_cpu <= GOAL_IDLE)}"):
        print(line)


def down_section(client: httpx.Client, fleet: SimFleet, nodes: Sequence[str],
                 args: argparse.Namespace) -> list[DownSample]:
    samples = []
    for k in range(args.down_samples):
        node = nodes[(k * 7 + 3) % len(nodes)]
        silenced = time.time()
        last = fleet.silence(node)
        while client.get(f"/v1/nodes/{node}").json()["Status"] != "down":
            if time.time() - last > 60:
                raise BenchError(f"{node} was never marked down")
            time.sleep(POLL)
        seen = time.time()
        t = time.perf_counter()
        refused = client.get(f"/v1/nodes/{node}/containers/json")
        refused_s = time.perf_counter() - t
        fleet.resume(node)
        resumed = time.perf_counter()
        while client.get(f"/v1/nodes/{node}").json()["Status"] != "ready":
            if time.perf_counter() - resumed > 60:
                raise BenchError(f"{node} never came back")
            time.sleep(POLL)
        samples.append(DownSample(node, seen - last, seen - silenced, refused_s,
                                  refused.status_code, time.perf_counter() - resumed))
    rows = [[s.node, f"{s.detect:.2f}", f"{s.since_silence:.2f}",
             f"{s.refused_status} in {ms(s.refused)} ms", f"{s.recover:.2f}"] for s in samples]
    print_table(f"4c. node-down detection ({SIM_LABEL} agent stops heartbeating; gateway "
                f"--node-down-after {args.node_down_after}s, heartbeat every "
                f"{args.heartbeat_interval}s; polled every {POLL * 1e3:.0f} ms)",
                ["node", "last beat -> down s", "silenced -> down s", "command while down",
                 "resumed -> ready s"], rows)
    return samples


def idle_cost(gateway: GatewayProc, args: argparse.Namespace, figures: ScaleFigures,
              window: float) -> None:
    """The gateway's CPU (a fraction of one core) and RSS while the agents only heartbeat
    and send their snapshots: over one snapshot period, so one round of snapshots counts."""
    before, t = cpu_seconds(gateway.process.pid), time.perf_counter()
    time.sleep(window)
    used = (cpu_seconds(gateway.process.pid) - before) / (time.perf_counter() - t)
    rss = 0
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{gateway.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    figures.idle_cpu, figures.idle_rss_mib = used, rss / 1024
    print(f"\ngateway at rest with {args.agents} agents heartbeating every "
          f"{args.heartbeat_interval}s: {used * 100:.1f}% of one CPU over {window:.0f} s, "
          f"VmRSS {rss / 1024:.0f} MiB")


# ---- the real-node runs ---------------------------------------------------------------------

@dataclass
class Figures:
    start_1: Dist | None = None
    start_n: Dist | None = None
    loads: list[LoadResult] = field(default_factory=list)
    down: list[DownSample] = field(default_factory=list)
    nodes: int = 0


def real_runs(args: argparse.Namespace, base: Path, figures: Figures) -> Path | None:
    names = [f"n{i + 1}" for i in range(args.nodes)]
    began = time.perf_counter()
    history = 0
    with ExitStack() as stack:
        vhost = stack.enter_context(private_vhost("dispatch"))
        gateway = stack.enter_context(running_gateway(base / "gateway", vhost.url,
                                                      args.node_down_after,
                                                      profile=args.profile_gateway))
        real = RealNodes(base / "nodes", vhost, args.registry, args.heartbeat_interval)
        stack.callback(real.close)
        gw = stack.enter_context(gateway.client())
        print(f"gateway:  {gateway.url}, pid {gateway.process.pid}"
              + (" (under cProfile)" if gateway.profile else ""))
        rabbit = rabbit_pid()
        fleet = stack.enter_context(sim_fleet(vhost.sim_url, ["sim-0"], 10,
                                              args.heartbeat_interval))
        del fleet  # only answers the floor case
        for count in (1, args.nodes) if args.nodes > 1 else (1,):
            for name in names[:count]:
                if name not in real.daemons:
                    real.add(name)
            up = wait_nodes(gw, [*names[:count], "sim-0"])
            for name in names[:count]:
                made = gw.post(f"/v1/nodes/{name}/containers/run",
                               params={"wait": "true", "name": f"bench-{name}"}, json=SLEEPER)
                if made.status_code not in (201, 409):
                    raise BenchError(f"run on {name}: {made.status_code} {made.text[:300]}")
            daemons = {n: real.daemons[n] for n in names[:count]}
            print(f"\nnodes {', '.join(daemons)} ready in the view {up:.2f}s after the last "
                  f"daemon answered; each runs bench-<node> (busybox sleep, --network none)")
            clients = {n: stack.enter_context(daemon_client(d)) for n, d in daemons.items()}
            section = 1 if count == 1 else 2
            floors = floor_cases(gw, vhost.url, stack, names[0], "sim-0") if count == 1 \
                else []
            dist = sequential_section(
                f"{section}. sequential round trips, {count} real node{'s' * (count > 1)}, "
                f"{args.requests} each", gw, clients, args.requests, floors)
            phases_section(gw, list(daemons), min(args.requests, 200))
            if count == 1:
                figures.start_1, history = dist, gateway.commands
            else:
                figures.start_n, figures.nodes = dist, count
            meter = CpuMeter({"gateway": [gateway.process.pid],
                              f"wharfd x{count}": [d.process.pid for d in daemons.values()],
                              "rabbitmq": [rabbit] if rabbit else []}, gateway.process.pid)
            print(f"\n(sections so far: {time.perf_counter() - began:.0f}s)")
            figures.loads += throughput_section(
                f"3{'ab'[section - 1]}. throughput, {count} real node{'s' * (count > 1)}",
                gateway, daemons, args, meter)
        if figures.start_1 is not None:
            history_check(gw, names[0], min(args.requests, 200), figures.start_1, history,
                          gateway.commands)
    return gateway.profile


def history_check(gw: httpx.Client, node: str, n: int, first: Dist, then: int, now: int
                  ) -> None:
    """Section 1's mutating round trip again, now that the gateway has recorded more commands."""
    path = f"/v1/nodes/{node}/containers/bench-{node}/start"
    samples = round_robin([("again", lambda _i: hit(gw, "POST", path, 304,
                                                     params={"wait": "true"}))], n)
    again = Dist.of(samples["again"])
    print_table("3c. the same round trip after more commands (gateway's command history grew)",
                ["", "commands recorded before", "p50 ms", "p99 ms"],
                [[f"section 1, gateway -> {node}: POST start?wait=true", f"~{then}",
                  ms(first.p50), ms(first.p99)],
                 [f"now, {n} more of them", f"~{now}", ms(again.p50), ms(again.p99)]])
    print("\n(commands counted on the client side: requests to /v1/nodes/{node}/...; the "
          "gateway keeps commands 7 days)")


def print_profile(path: Path | None, top: int = 25) -> None:
    if path is None:
        return
    if not path.exists():
        print(f"\n(no profile written at {path}: the gateway did not exit cleanly)")
        return
    for order in ("tottime", "cumulative"):
        out = io.StringIO()
        pstats.Stats(str(path), stream=out).strip_dirs().sort_stats(order).print_stats(top)
        lines = [ln for ln in out.getvalue().splitlines() if ln.strip()]
        print("\n## gateway profile: its event-loop thread (cProfile; HTTP and RabbitMQ both "
              f"run there), top {top} by {order}\n")
        print("\n".join(lines[-(top + 1):]))


def targets(args: argparse.Namespace, figures: Figures) -> None:
    print("\n## issue #5 targets, this machine, this run\n")
    if args.profile_gateway:
        print("CAUTION: the first gateway ran under cProfile, which slows it: take the figures "
              "from a run without --profile-gateway.\n")

    def verdict(ok: bool) -> str:
        return "met" if ok else "NOT met"

    for label, dist in (("1 node", figures.start_1), (f"{figures.nodes} nodes",
                                                     figures.start_n)):
        if dist is not None:
            print(f"dispatch round trip, POST start?wait=true, {label}: p50 {ms(dist.p50)} ms "
                  f"(target <= 5: {verdict(dist.p50 <= TARGET_P50)}), p99 {ms(dist.p99)} ms "
                  f"(target <= 25: {verdict(dist.p99 <= TARGET_P99)})")
    gateway_loads = [r for r in figures.loads if r.label.startswith("gateway")]
    if gateway_loads:
        waited = max((r for r in gateway_loads if "202" not in r.label), key=lambda r: r.rate)
        accepted = max((r for r in gateway_loads if "202" in r.label), key=lambda r: r.rate)
        print(f"commands/s per gateway (target >= {TARGET_RATE:.0f}): best waited "
              f"{waited.rate:.0f} ({waited.label}); best accepted (202, published+confirmed) "
              f"{accepted.rate:.0f}: {verdict(max(waited.rate, accepted.rate) >= TARGET_RATE)}")
    if figures.down:
        worst = max(s.detect for s in figures.down)
        print(f"node down: marked down at most {worst:.2f}s after its last heartbeat "
              f"(target <= {TARGET_DOWN:.0f} s: {verdict(worst <= TARGET_DOWN)}); "
              f"commands to it answered {', '.join(str(s.refused_status) for s in figures.down)}"
              f" in at most {ms(max(s.refused for s in figures.down))} ms")


def main() -> int:
    args = parse_args()
    args.work_dir.mkdir(parents=True, exist_ok=True)
    base = Path(tempfile.mkdtemp(prefix="wharf-bench-dispatch.", dir=args.work_dir))
    figures = Figures()
    status = 0
    began = time.perf_counter()
    profile: Path | None = None
    try:
        print("# bench/dispatch.py\n\n" + "\n".join(machine_lines(base)))
        load = " ".join(f"{v:.2f}" for v in os.getloadavg())
        print(f"load:     {load} (1/5/15 min averages before the run; other work on these "
              "cores skews every figure)")
        print(f"wharf:    repo {git_head()}; RabbitMQ 127.0.0.1:5672 (private vhosts), "
              f"gateway --node-down-after {args.node_down_after}s, heartbeats every "
              f"{args.heartbeat_interval}s")
        if shutil.which("rabbitmqctl") is None:
            raise BenchError("rabbitmqctl is not installed (RabbitMQ is needed)")
        if not args.scale_only:
            if not registry_has(args.registry, BUSYBOX):
                raise BenchError(f"registry {args.registry} does not answer "
                                 "library/busybox:latest: run `make images`")
            profile = real_runs(args, base, figures)
        if args.scale:
            scale = scale_section(args, base)
            figures.down = scale.down
            profile = profile or scale.profile
        targets(args, figures)
        print_profile(profile)
    except KeyboardInterrupt:
        print("\nbench/dispatch.py: interrupted; cleaning up", file=sys.stderr)
        status = 130
    except (BenchError, OSError, httpx.HTTPError, WharfError,
            subprocess.SubprocessError) as exc:
        print(f"\nbench/dispatch.py: FAILED: {exc}", file=sys.stderr)
        status = 1
    finally:
        leftovers(base)
        shutil.rmtree(base, ignore_errors=True)
    print(f"total run time {time.perf_counter() - began:.0f}s")
    return status


if __name__ == "__main__":
    sys.exit(main())
