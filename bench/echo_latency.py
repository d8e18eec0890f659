"""Keystroke echo latency of an ``exec -it`` session, through the cluster gateway and direct.

    set -a; . .wharf/cluster.env; set +a          # after `make cluster-up NODES=3`
    .venv/bin/python bench/echo_latency.py [--node node2] [--rounds 10] [--keys 100]
                                           [--warmup 20] [--image busybox]

What it measures: the time from writing one byte into an interactive exec session to reading
its echo back, as a user typing into ``wharf exec -it`` waits for it. The session runs ``cat``
with a tty in one ``sleep 3600`` container on ``--node``; the pty's line discipline echoes each
byte as it arrives (canonical mode, ECHO), so the echo costs the container nothing but the
kernel and the round trip shows the path. Three paths to the same node, same container:

- ``gateway``: hijacked ``POST /v1/nodes/{node}/exec/{id}/start`` on the gateway (TLS to
  WHARF_GATEWAY, bearer token), which relays the bytes to the node's daemon over mutual TLS;
- ``direct-tls``: the node's daemon on the mutual-TLS address it advertises to the gateway
  (client certificate in ``--tls-dir``): the gateway's own last hop, without the gateway;
- ``direct-unix``: the node's daemon on its unix socket (the floor).

All three go through the CLI's own client code (``wharf.cli.hijack.SocketHijacker``, the socket
transport, ``wharf.cli.gateway``), so the client's cost is the same on every row. Each round
opens one fresh exec session per path (exec create, then the hijacked start until its ``101``,
each timed), types ``--warmup`` untimed keys then ``--keys`` timed ones, one at a time (send
one byte, read until it comes back, ``time.perf_counter_ns``), and ends ``cat`` with ^U ^D.
The order of the paths rotates from round to round. No newline is ever sent (``cat`` would
write the line again); more than 4000 keys in a round (the tty's line holds 4095) take more
than one session. The container is created through the gateway (``containers/run?wait=true``,
which pulls a missing image) and force-removed at the end, also after a failure or Ctrl-C.

The output: the machine, per path n / p50 / p90 / p99 / max in ms (with the p50 of exec create
and of exec start, and any byte read that was not the echo), the ratios gateway over each
direct path for p50 and p99, and the goal (through the gateway p50 <= 5 ms, p99 <= 20 ms) as
met / not met. Figures only: compare within one run (see bench/README.md). Exit status 1 when
the bench could not run (no cluster, a failed request, a session without echo), not when a
goal is missed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import statistics
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `bench` from any cwd

from bench.common import machine_lines, print_table
from bench.pull import git_head
from wharf.cli.gateway import GatewayAPI, GatewayTransport, check, parse_gateway, read_token_file
from wharf.cli.hijack import RawStream, SocketHijacker
from wharf.cli.tls import TLSConfig
from wharf.cli.transport import Host, Reply, Transport, parse_host
from wharf.cli.wire import SocketTransport
from wharf.errors import WharfError

GOAL_P50 = 0.005   # through the gateway, keystroke echo median <= 5 ms
GOAL_P99 = 0.020   # and p99 <= 20 ms
KEY_TIMEOUT = 5.0  # s without the echo of one key: the session is broken
LINE_LIMIT = 4000  # the tty's canonical line holds 4095 bytes: a new session before that
KEYS = b"abcdefghijklmnopqrstuvwxyz"  # one byte per key, rotating: an echo is never mistaken
KILL_LINE, EOF = b"\x15", b"\x04"     # ^U, ^D
EXEC_BODY = {"Cmd": ["cat"], "Tty": True, "AttachStdin": True, "AttachStdout": True,
             "AttachStderr": True}
START_BODY = {"Detach": False, "Tty": True}
CLUSTER_HINT = ("run `make cluster-up NODES=3`, then `set -a; . .wharf/cluster.env; set +a` "
                "in this shell")


class BenchError(RuntimeError):
    """The bench cannot go on; the message says what failed."""


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--node", default="node2", help="the node to exec on (node2)")
    parser.add_argument("--rounds", type=int, default=10, help="rounds; one session per path "
                        "each (10)")
    parser.add_argument("--keys", type=int, default=100, help="timed keys per session (100)")
    parser.add_argument("--warmup", type=int, default=20, help="untimed keys per session (20)")
    parser.add_argument("--image", default="busybox", help="the container's image (busybox)")
    parser.add_argument("--socket", help="the node's unix socket "
                        "(default /run/wharf-cluster/NODE/wharfd.sock)")
    parser.add_argument("--tcp", help="the node's mutual-TLS address, tcp://HOST:PORT (default: "
                        "the address the node advertises to the gateway)")
    parser.add_argument("--tls-dir", type=Path, default=Path("/etc/wharf/cluster/tls"),
                        help="ca.pem, cert.pem and key.pem for the node's daemon "
                        "(/etc/wharf/cluster/tls)")
    args = parser.parse_args()
    if args.rounds < 1 or args.keys < 1 or not 0 <= args.warmup < LINE_LIMIT // 2:
        parser.error(f"--rounds and --keys must be at least 1, --warmup from 0 to "
                     f"{LINE_LIMIT // 2 - 1}")
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}", args.node):
        parser.error(f"--node {args.node!r}: not a node name")
    return args


# ---- where the node is -------------------------------------------------------------------------

@dataclass
class Route:
    """One way to the node's daemon: JSON requests (exec create) and the hijacker (exec start)."""

    name: str
    where: str
    wire: Transport
    hijacker: SocketHijacker
    samples: list[float] = field(default_factory=list)  # s, one per timed key
    creates: list[float] = field(default_factory=list)  # s, exec create
    starts: list[float] = field(default_factory=list)   # s, exec start until its 101
    stray: int = 0                                        # bytes read that were not the echo


@dataclass
class Cluster:
    gateway: GatewayTransport
    gateway_host: Host
    paths: list[Route]


def cluster(args: argparse.Namespace) -> Cluster:
    """The gateway (from the environment make cluster-up writes) and the three paths."""
    url = os.environ.get("WHARF_GATEWAY")
    token_file = os.environ.get("WHARF_TOKEN_FILE")
    if not url or not (token_file or os.environ.get("WHARF_TOKEN")):
        raise BenchError(f"WHARF_GATEWAY and WHARF_TOKEN_FILE are not set: {CLUSTER_HINT}")
    gateway_host = parse_gateway(url, os.environ.get("WHARF_GATEWAY_CACERT") or None)
    token = read_token_file(Path(token_file)) if token_file else os.environ["WHARF_TOKEN"]
    api = GatewayAPI(SocketTransport(gateway_host, prefix=""), token)
    try:
        node = api.node(args.node)
    except WharfError as exc:
        raise BenchError(f"the gateway at {url} about node {args.node}: {exc} ({CLUSTER_HINT})"
                         ) from exc
    if node.get("Status") != "ready":
        raise BenchError(f"node {args.node} is {node.get('Status')!r}, not ready")
    through = GatewayTransport(api, args.node)

    tcp = args.tcp or (f"tcp://{node['Address']}" if node.get("Address") else None)
    if tcp is None:
        raise BenchError(f"node {args.node} advertises no TLS address: pass --tcp")
    files = [args.tls_dir / name for name in ("ca.pem", "cert.pem", "key.pem")]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise BenchError(f"TLS files not found: {', '.join(missing)} (--tls-dir)")
    tls = TLSConfig(verify=True, ca_file=str(files[0]), cert_file=str(files[1]),
                    key_file=str(files[2]))
    tls_host = parse_host(tcp, tls)
    sock = args.socket or f"/run/wharf-cluster/{args.node}/wharfd.sock"
    if not Path(sock).exists():
        raise BenchError(f"no unix socket {sock} (--socket): {CLUSTER_HINT}")
    unix_host = parse_host(f"unix://{sock}")
    return Cluster(through, gateway_host, [
        Route("gateway", f"{url} -> {args.node} ({tls_host.url})", through,
              through.hijacker(gateway_host)),
        Route("direct-tls", f"{tls_host.url} (mutual TLS)", SocketTransport(tls_host),
              SocketHijacker(tls_host)),
        Route("direct-unix", unix_host.url, SocketTransport(unix_host),
              SocketHijacker(unix_host)),
    ])


def answer(reply: Reply, what: str) -> dict[str, Any]:
    """The JSON body of a successful reply; BenchError with the error otherwise."""
    try:
        check(reply)
    except WharfError as exc:
        raise BenchError(f"{what}: {reply.status} {exc}") from exc
    if not reply.body:
        return {}
    result: dict[str, Any] = json.loads(reply.body)
    return result


def run_container(gateway: GatewayTransport, image: str, name: str) -> str:
    """``sleep 3600`` on the node through the gateway (run = create + start, pulls if needed)."""
    api = gateway.api
    reply = api.wire.request(
        "POST", f"{gateway.prefix}/containers/run", params={"name": name, "wait": "true"},
        json={"Image": image, "Cmd": ["sleep", "3600"], "HostConfig": {"NetworkMode": "none"},
              "Labels": {"wharf.bench": "echo_latency"}},
        headers=api.headers)
    return str(answer(reply, f"run {image} on {gateway.node} through the gateway")["Id"])


def remove_container(gateway: GatewayTransport, cid: str) -> None:
    reply = gateway.request("DELETE", f"/containers/{cid}", params={"force": "1"})
    if reply.status != 404:
        answer(reply, f"remove container {cid[:12]}")


# ---- one session -------------------------------------------------------------------------------

class Watchdog:
    """Shuts the stream down when its deadline passes, so a blocked ``recv`` returns ``b""``
    instead of hanging the bench; the deadline moves before each key (outside the timing)."""

    def __init__(self, stream: RawStream) -> None:
        self.stream = stream
        self.deadline = time.monotonic() + KEY_TIMEOUT
        self.fired = False
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def arm(self, seconds: float = KEY_TIMEOUT) -> None:
        self.deadline = time.monotonic() + seconds

    def _watch(self) -> None:
        while not self._done.wait(0.5):
            if time.monotonic() > self.deadline:
                self.fired = True
                self.stream.shutdown()
                return

    def stop(self) -> None:
        self._done.set()
        self._thread.join()


class Session:
    """One ``cat`` with a tty behind a hijacked exec start."""

    def __init__(self, path: Route, cid: str) -> None:
        self.path = path
        started = time.perf_counter()
        made = answer(path.wire.request("POST", f"/containers/{cid}/exec", json=EXEC_BODY),
                      f"{path.name}: exec create")
        created = time.perf_counter()
        result = path.hijacker.open(f"/exec/{made['Id']}/start", {}, START_BODY)
        if result.stream is None:
            answer(result.reply, f"{path.name}: exec start")  # raises with the error
            raise BenchError(f"{path.name}: exec start answered {result.reply.status}, "
                             "not 101")
        path.creates.append(created - started)
        path.starts.append(time.perf_counter() - created)
        self.stream = result.stream
        self.watchdog = Watchdog(self.stream)
        self.typed = 0

    def key(self) -> float:
        """Type one key; seconds until its echo was read."""
        byte = KEYS[self.typed % len(KEYS)].to_bytes()
        self.typed += 1
        self.watchdog.arm()
        stream = self.stream
        got = b""
        start = time.perf_counter_ns()
        stream.sendall(byte)
        while byte not in got:
            chunk = stream.recv(4096)
            if not chunk:
                self._broken(f"no echo of key {self.typed}")
            got += chunk
        elapsed = time.perf_counter_ns() - start
        self.path.stray += len(got) - 1
        return elapsed / 1e9

    def _broken(self, what: str) -> None:
        why = f"nothing within {KEY_TIMEOUT:.0f} s" if self.watchdog.fired else "stream ended"
        raise BenchError(f"{self.path.name}: {what} ({why}): is the exec's tty echoing?")

    def close(self) -> None:
        """^U ^D: an empty line, then end of file: ``cat`` exits and the daemon ends the
        stream; read to its end (at most a few seconds), then close."""
        try:
            self.watchdog.arm(3.0)
            with contextlib.suppress(OSError):
                self.stream.sendall(KILL_LINE + EOF)
                while self.stream.recv(4096):
                    pass
        finally:
            self.watchdog.stop()
            self.stream.close()


def session_round(path: Route, cid: str, warmup: int, keys: int) -> None:
    """``keys`` timed keys on ``path``: one session, or one more each time the line would
    pass LINE_LIMIT (^U would clear it, but its echo, an erase sequence per character, can
    still be arriving after the next key's echo)."""
    left = keys
    while left > 0:
        now = min(left, LINE_LIMIT - warmup)
        session = Session(path, cid)
        try:
            for _ in range(warmup):
                session.key()
            path.samples.extend(session.key() for _ in range(now))
        finally:
            session.close()
        left -= now


# ---- figures -----------------------------------------------------------------------------------

def percentile(samples: Sequence[float], p: int) -> float:
    """The p-th percentile (linear interpolation, inclusive) of a sample."""
    ordered = sorted(samples)
    if len(ordered) < 2:
        return ordered[0]
    return statistics.quantiles(ordered, n=100, method="inclusive")[p - 1]


def fmt(seconds: float) -> str:
    """Milliseconds with three significant digits at most (echoes are sub-millisecond)."""
    value = seconds * 1e3
    return f"{value:.3f}" if value < 1 else f"{value:.2f}" if value < 10 else f"{value:.1f}"


def times(value: float, reference: float) -> str:
    return f"{value / reference:.2f}x" if reference > 0 else "-"


def report(paths: Sequence[Route], node: str) -> bool:
    """Print the tables; True when both goals are met."""
    stats = {p.name: {q: percentile(p.samples, q) for q in (50, 90, 99)} for p in paths}
    direct_tls = stats["direct-tls"]
    rows = []
    for p in paths:
        s = stats[p.name]
        rows.append([p.name, str(len(p.samples)), fmt(s[50]), fmt(s[90]), fmt(s[99]),
                     fmt(max(p.samples)), times(s[50], direct_tls[50]),
                     times(s[99], direct_tls[99]), fmt(statistics.median(p.creates)),
                     fmt(statistics.median(p.starts)), str(p.stray)])
    print_table(f"Keystroke echo, `exec -it {node} cat` (ms; ratios over direct-tls)",
                ["path", "n", "p50", "p90", "p99", "max", "p50 ratio", "p99 ratio",
                 "exec create p50", "start p50", "stray bytes"], rows)

    gw = stats["gateway"]
    ratio_rows = [[f"gateway / {name}", times(gw[50], stats[name][50]),
                   times(gw[99], stats[name][99]), fmt(gw[50] - stats[name][50])]
                  for name in ("direct-tls", "direct-unix")]
    print_table("Gateway over direct", ["", "p50", "p99", "p50 added (ms)"], ratio_rows)

    met_p50, met_p99 = gw[50] <= GOAL_P50, gw[99] <= GOAL_P99
    print("\n## Goals (through the gateway)\n")
    print(f"gateway p50 <= {GOAL_P50 * 1e3:.0f} ms: {'met' if met_p50 else 'NOT met'} "
          f"({fmt(gw[50])} ms)")
    print(f"gateway p99 <= {GOAL_P99 * 1e3:.0f} ms: {'met' if met_p99 else 'NOT met'} "
          f"({fmt(gw[99])} ms)")
    return met_p50 and met_p99


# ---- main --------------------------------------------------------------------------------------

def bench(args: argparse.Namespace, where: Cluster, cid: str,
          progress: Callable[[str], None]) -> None:
    paths = where.paths
    for r in range(args.rounds):
        order = paths[r % len(paths):] + paths[:r % len(paths)]
        for path in order:
            session_round(path, cid, args.warmup, args.keys)
        progress(f"round {r + 1}/{args.rounds} done ({' -> '.join(p.name for p in order)})")


def main() -> int:
    args = parse_args()
    print("# bench/echo_latency.py\n\n" + "\n".join(machine_lines(Path.cwd())))
    print(f"wharf:    repo {git_head()}")
    try:
        where = cluster(args)
    except (BenchError, WharfError, OSError) as exc:
        print(f"\nbench/echo_latency.py: FAILED: {exc}", file=sys.stderr)
        return 1
    for path in where.paths:
        print(f"{path.name + ':':13} {path.where}")
    print(f"keys:     {args.rounds} rounds x {args.keys} timed keys per path, one fresh session "
          f"per path and round ({args.warmup} untimed keys first), path order rotated")
    name = f"echo-bench-{os.getpid()}"
    cid = None
    status = 0
    try:
        started = time.perf_counter()
        cid = run_container(where.gateway, args.image, name)
        print(f"container: {name} ({cid[:12]}), {args.image} sleep 3600 on {args.node}, "
              f"run through the gateway in {time.perf_counter() - started:.2f} s")
        sys.stdout.flush()  # the header before the progress lines on stderr
        bench(args, where, cid, lambda line: print(f"  {line}", file=sys.stderr, flush=True))
        report(where.paths, args.node)
    except (BenchError, WharfError, OSError) as exc:
        print(f"\nbench/echo_latency.py: FAILED: {exc}", file=sys.stderr)
        status = 1
    except KeyboardInterrupt:
        print("\nbench/echo_latency.py: interrupted", file=sys.stderr)
        status = 130
    finally:
        try:  # by name when run failed: it may have created the container all the same
            remove_container(where.gateway, cid or name)
        except (BenchError, WharfError, OSError) as exc:
            print(f"bench/echo_latency.py: could not remove {name}: {exc}; remove it with "
                  f"`wharf --node {args.node} rm -f {name}`", file=sys.stderr)
            status = status or 1
    return status


if __name__ == "__main__":
    sys.exit(main())
