"""Throughput with one and two gateways (issue #15 item 4): does a second gateway add commands/s?

    .venv/bin/python bench/gateways.py [--rounds 3] [--duration 5] [--concurrency 16]
                                       [--agents 8] [--fleet-procs 4] [--containers 10]
                                       [--synchronous-commit on|off] [--work-dir /var/tmp]

Three cases, run alternately (A B C A B C ... ``--rounds`` times, so that drift on this shared
machine hits them alike), each with fresh gateway processes and empty records:

A. one gateway on its own SQLite file (the embedded default);
B. one gateway on PostgreSQL (``--database-url``, in the environment, not argv);
C. two gateways on the same PostgreSQL database, the ``--concurrency`` clients split between them.

In each case two paths are loaded for ``--duration`` seconds after a 1 s warm-up, with the
keep-alive client of bench/rawhttp.py and ``hammer`` of bench/dispatch.py:
``POST /v1/nodes/N/containers/N-c0/start?wait=true`` (a mutating command answered ``304`` by
its node) and the same without ``wait`` (``202``: recorded, published and confirmed; the bench
then waits until the nodes answered every one, so no backlog reaches the next case). The nodes
are ``--agents`` SIMULATED agents (bench/dispatch.py's SimFleet: real protocol over the real
broker, answers from memory) in ``--fleet-procs`` child processes, so that the node side is not
the bottleneck (a real wharfd runs its commands one at a time).

Per case and path: commands/s (median of the rounds, min and max), latency p50/p99 (all rounds'
samples together), CPU ms per command of each gateway (per command it served), PostgreSQL (the
cluster's processes, other databases' backends left out), RabbitMQ (beam.smp), the simulated
fleet and the load generator (this process), the CPU of the whole machine that none of these
used (other work on the shared cores), and the ceilings; how many statements the gateways had in
flight in PostgreSQL and what they waited on (pg_stat_activity every 20 ms: a gateway runs its
statements synchronously on its event loop); then the verdict, C against A and B, and where the
CPU went.

Everything runs on a private RabbitMQ vhost and a scratch PostgreSQL database (made and dropped
as tests/integration/pg_fixture.py does; needs ``make postgres``); the vhost, the database, the
processes and the temporary tree are removed at the end, also on errors and Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `tests` and `bench` from any cwd

from bench.common import machine_lines, print_table
from bench.dispatch import (
    GATEWAY_BIN,
    BenchError,
    Dist,
    GatewayProc,
    Send,
    Vhost,
    _wait_gateway,
    clean_env,
    cpu_seconds,
    free_port,
    hammer,
    ms,
    private_vhost,
    rabbit_pid,
    rabbitmqctl,
    sim_fleet,
)
from bench.pull import git_head
from bench.rawhttp import RawPool, RawResponse
from tests.integration.pg_fixture import DB_ENV, scratch_database
from wharf.errors import WharfError

CASES = {"A": ("1 gateway, SQLite", 1, False), "B": ("1 gateway, PostgreSQL", 1, True),
         "C": ("2 gateways, PostgreSQL", 2, True)}
PATHS = {"wait": ("POST start?wait=true (304)", 304), "202": ("POST start, no wait (202)", 202)}
OURS = ("gateways", "postgres", "rabbitmq", "fleet", "load gen")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("--rounds", type=int, default=3, help="rounds of A B C (3)")
    add("--duration", type=float, default=5.0, help="seconds per case and path (5)")
    add("--concurrency", type=int, default=16, help="concurrent clients, split in C (16)")
    add("--agents", type=int, default=8, help="simulated nodes (8)")
    add("--fleet-procs", type=int, default=4, help="processes the simulated nodes share (4)")
    add("--containers", type=int, default=10, help="containers per simulated node (10)")
    add("--heartbeat-interval", type=float, default=1.0, help="simulated heartbeats, s (1.0)")
    add("--synchronous-commit", choices=("on", "off"), default="on",
        help="the scratch database's synchronous_commit (on, PostgreSQL's default; off: a "
             "commit does not wait for its WAL flush, to see what that wait costs)")
    add("--work-dir", type=Path, default=Path("/var/tmp"), help="where the temporary tree goes")
    add("--sim-fleet", help=argparse.SUPPRESS)  # a child: these nodes, the URL on stdin
    args = parser.parse_args()
    if min(args.rounds, args.agents, args.fleet_procs) < 1 or args.concurrency < 2 \
            or args.duration <= 0 or args.containers < 1 or args.heartbeat_interval <= 0:
        parser.error("--rounds, --agents, --fleet-procs and --containers at least 1, "
                     "--concurrency at least 2, --duration and --heartbeat-interval > 0")
    args.fleet_procs = min(args.fleet_procs, args.agents)
    return args


# ---- the simulated fleet, in child processes -------------------------------------------------

def fleet_child(args: argparse.Namespace) -> int:
    """Run SimFleet for ``--sim-fleet`` nodes until the bench closes this process's stdin."""
    url = sys.stdin.readline().strip()
    with sim_fleet(url, args.sim_fleet.split(","), args.containers, args.heartbeat_interval):
        print("ready", flush=True)
        sys.stdin.read()
    return 0


@contextmanager
def fleet(url: str, nodes: Sequence[str], args: argparse.Namespace, log: Path
          ) -> Iterator[list[int]]:
    """``--fleet-procs`` children sharing ``nodes``; yields their pids. The account's URL goes
    on stdin (a password stays out of argv); a closed stdin stops a child."""
    children: list[subprocess.Popen[bytes]] = []
    try:
        with log.open("ab") as err:
            for i in range(args.fleet_procs):
                children.append(subprocess.Popen(
                    [sys.executable, __file__, "--sim-fleet", ",".join(nodes[i::args.fleet_procs]),
                     "--containers", str(args.containers),
                     "--heartbeat-interval", str(args.heartbeat_interval),
                     "--work-dir", str(log.parent)],  # names the run in `ps`
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, env=clean_env()))
        for child in children:
            assert child.stdin is not None and child.stdout is not None
            child.stdin.write(url.encode() + b"\n")
            child.stdin.flush()
            if child.stdout.readline().strip() != b"ready":
                raise BenchError(f"a simulated fleet process failed: {log.read_text()[-2000:]}")
        yield [c.pid for c in children]
    finally:
        for child in children:
            with contextlib.suppress(OSError):
                assert child.stdin is not None
                child.stdin.close()
        for child in children:
            try:
                child.wait(15)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()


# ---- gateways and PostgreSQL -----------------------------------------------------------------

@dataclass
class Ctx:
    base: Path
    vhost: Vhost
    tokens: Path
    token: str
    db_url: str
    db_name: str
    nodes: list[str]
    args: argparse.Namespace
    watch: PgWatch


@contextmanager
def gateway(ctx: Ctx, gid: str, pg: bool) -> Iterator[GatewayProc]:
    """``wharf-gateway serve`` with its own id, state dir and port, the shared tokens file and,
    with ``pg``, the database URL in its environment; at the end stopped, its queue deleted
    (a stopped gateway's queue would go on collecting results) and its state dir removed."""
    state = ctx.base / f"state-{gid}"
    env = clean_env() | ({"WHARF_GATEWAY_DATABASE_URL": ctx.db_url} if pg else {})
    port = free_port()
    log = ctx.base / f"{gid}.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            [GATEWAY_BIN, "serve", "--listen", f"127.0.0.1:{port}", "--amqp-url", ctx.vhost.url,
             "--state-dir", str(state), "--tokens-file", str(ctx.tokens), "--gateway-id", gid,
             "--rate", "0", "--log-level", "warning"], stdout=out, stderr=out, env=env)
    proc = GatewayProc(f"http://127.0.0.1:{port}", ctx.token, process, log, None)
    try:
        _wait_gateway(proc)
        yield proc
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            rabbitmqctl("delete_queue", "-p", ctx.vhost.name, f"wharf.gw.{gid}")
        shutil.rmtree(state, ignore_errors=True)


def psql(db: str, sql: str) -> None:
    subprocess.run(["runuser", "-u", "postgres", "--", "psql", "-X", "-q", "-v",
                    "ON_ERROR_STOP=1", "-d", db, "-c", sql], check=True, capture_output=True,
                   timeout=60)


def wait_ready(gateways: Sequence[GatewayProc], nodes: Sequence[str], timeout: float = 30
               ) -> None:
    deadline = time.monotonic() + timeout
    for gw in gateways:
        with gw.client() as client:
            while {n["Name"] for n in client.get("/v1/nodes").json()
                   if n["Status"] == "ready"} < set(nodes):
                if time.monotonic() > deadline:
                    raise BenchError(f"{gw.url} does not see every simulated node ready")
                time.sleep(0.1)


# ---- CPU -------------------------------------------------------------------------------------

BACKEND = re.compile(r"\d+\.\d+\.\d+\.\d+\(\d+\)|\[local\]")


def pg_pids(db: str) -> list[int]:
    """The PostgreSQL cluster's processes, except backends serving other databases."""
    out = []
    for proc in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            argv = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if (argv.startswith("postgres: ") or argv.split(" ")[0].endswith("/postgres")) \
                    and (db in argv or not BACKEND.search(argv)):
                out.append(int(proc.name))
    return out


def machine_busy() -> float:
    """CPU seconds every core of the machine spent not idle (/proc/stat) since boot."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


class PgWatch:
    """What the scratch database's backends are doing, sampled every 20 ms by a thread while
    ``on`` is set. A gateway calls PostgreSQL synchronously on its event loop, so a statement
    in flight is a gateway loop waiting for it; the wait events say on what (``IO:WALSync``:
    the commit's WAL flush)."""

    PERIOD = 0.02

    def __init__(self, url: str) -> None:
        import psycopg  # noqa: PLC0415 - the gateway's `postgres` extra, installed with it

        self._conn = psycopg.connect(url, autocommit=True)
        self.pid = int(self._conn.execute("SELECT pg_backend_pid()").fetchone()[0])
        self.on, self._stop = threading.Event(), threading.Event()
        self.samples, self.waits = 0, Counter[str]()
        self._thread = threading.Thread(target=self._run, name="pg-watch", daemon=True)
        self._thread.start()

    def take(self) -> tuple[int, Counter[str]]:
        """The samples and wait events since the last call."""
        out, self.samples, self.waits = (self.samples, self.waits), 0, Counter()
        return out

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._conn.close()

    def _run(self) -> None:
        while not self._stop.wait(self.PERIOD):
            if self.on.is_set():
                rows = self._conn.execute(
                    "SELECT coalesce(wait_event_type || ':' || wait_event, 'on CPU')"
                    " FROM pg_stat_activity WHERE datname = current_database()"
                    " AND state = 'active' AND pid <> pg_backend_pid()").fetchall()
                self.samples += 1
                self.waits.update(r[0] for r in rows)


class Sampler:
    """CPU seconds per process, by group (each gateway its own); pids are looked up again at
    each sample for PostgreSQL, whose backends come and go (the watcher's own left out)."""

    def __init__(self, gateways: Sequence[GatewayProc], fleet: list[int], db: str,
                 skip: int) -> None:
        self.gateways, self.fleet, self.db, self.skip = gateways, fleet, db, skip
        rabbit = rabbit_pid()
        self.rabbit = [rabbit] if rabbit else []

    def sample(self) -> dict[str, dict[int, float]]:
        groups = {f"gw{i + 1}": [g.process.pid] for i, g in enumerate(self.gateways)}
        groups |= {"postgres": [p for p in pg_pids(self.db) if p != self.skip],
                   "rabbitmq": self.rabbit, "fleet": self.fleet}
        out = {k: {p: cpu_seconds(p) for p in pids} for k, pids in groups.items()}
        out["load gen"] = {0: time.process_time()}
        out["machine"] = {0: machine_busy()}
        return out

    @staticmethod
    def delta(before: dict[str, dict[int, float]], after: dict[str, dict[int, float]]
              ) -> dict[str, float]:
        return {k: sum(v - before[k].get(p, 0.0) for p, v in pids.items())
                for k, pids in after.items()}


# ---- one case ------------------------------------------------------------------------------

@dataclass
class Run:
    case: str
    path: str
    ok: list[int]  # per gateway
    seconds: float
    latencies: list[float]
    cpu: dict[str, float]
    errors: list[str] = field(default_factory=list)
    settle: float = 0.0  # 202: seconds after the window until the nodes answered all
    pg_samples: int = 0
    pg_waits: Counter[str] = field(default_factory=Counter)
    rabbit_idle: float = 0.0  # the broker's CPU, fraction of a core, with no command flowing

    @property
    def rate(self) -> float:
        return sum(self.ok) / self.seconds


def measure(ctx: Ctx, case: str, path: str, gws: Sequence[GatewayProc], fleet_pids: list[int]
            ) -> Run:
    k, status = ctx.args.concurrency, PATHS[path][1]
    shares = [k // len(gws) + (i < k % len(gws)) for i in range(len(gws))]
    last: dict[tuple[int, str], str] = {}  # (gateway, node) -> the last 202's command id
    sampler = Sampler(gws, fleet_pids, ctx.db_name, ctx.watch.pid)

    def sender(g: int, pool: RawPool) -> Send:
        async def send(i: int) -> RawResponse:
            node = ctx.nodes[i % len(ctx.nodes)]
            query = "?wait=true" if path == "wait" else ""
            answer = await pool.request("POST",
                                        f"/v1/nodes/{node}/containers/{node}-c0/start{query}")
            if answer.status_code == 202:
                last[g, node] = answer.json()["Id"]
            return answer
        return send

    async def load() -> tuple[list[tuple[int, list[str], float, list[float]]], dict[str, float]]:
        pools = [gw.raw_pool(n) for gw, n in zip(gws, shares, strict=True)]
        sends = [sender(g, p) for g, p in enumerate(pools)]
        try:
            await asyncio.gather(*(hammer(s, status, n, min(1.0, ctx.args.duration))
                                   for s, n in zip(sends, shares, strict=True)))
            before = sampler.sample()
            ctx.watch.take()
            ctx.watch.on.set()
            out = await asyncio.gather(*(hammer(s, status, n, ctx.args.duration)
                                         for s, n in zip(sends, shares, strict=True)))
            ctx.watch.on.clear()
            return list(out), Sampler.delta(before, sampler.sample())
        finally:
            for pool in pools:
                await pool.aclose()

    parts, cpu = asyncio.run(load())
    run = Run(case, path, [p[0] for p in parts], max(p[2] for p in parts),
              [lat for p in parts for lat in p[3]], cpu, [e for p in parts for e in p[1]])
    run.pg_samples, run.pg_waits = ctx.watch.take()
    if last:
        run.settle = settle(gws[0], list(last.values()))
    return run


def settle(gw: GatewayProc, ids: list[str], timeout: float = 120) -> float:
    """Seconds until every command in ``ids`` has its node's answer (a node's commands run in
    order, so the last one sent to it stands for all)."""
    start = time.perf_counter()
    with gw.client() as client:
        while any(client.get(f"/v1/commands/{c}").json()["Status"] == "pending" for c in ids):
            if time.perf_counter() - start > timeout:
                raise BenchError(f"the nodes did not answer the 202 backlog within {timeout}s")
            time.sleep(0.1)
    return time.perf_counter() - start


def run_case(ctx: Ctx, case: str, fleet_pids: list[int]) -> list[Run]:
    _title, count, pg = CASES[case]
    with ExitStack() as stack:
        gws = [stack.enter_context(gateway(ctx, f"gw-{case.lower()}{i + 1}", pg))
               for i in range(count)]
        wait_ready(gws, ctx.nodes)
        # RabbitMQ serves other users too: its CPU while no command flows (1 s) goes beside
        rabbit = rabbit_pid()
        before = cpu_seconds(rabbit) if rabbit else 0.0
        time.sleep(1.0)
        idle = cpu_seconds(rabbit) - before if rabbit else 0.0
        runs = [measure(ctx, case, path, gws, fleet_pids) for path in PATHS]
        for run in runs:
            run.rabbit_idle = idle
    if pg:  # the next case starts with empty records, as A's fresh SQLite file does
        psql(ctx.db_name, "TRUNCATE command_results, commands")
    return runs


# ---- the report ------------------------------------------------------------------------------

@dataclass
class Figures:
    """One case and path over every round."""

    rates: list[float]
    dist: Dist | None
    gw_ms: list[float]    # CPU ms per command each gateway served
    gw_busy: list[float]  # fraction of one core each gateway used
    per_cmd: dict[str, float]  # CPU ms per command (all gateways' commands) by group
    share: dict[str, float]    # fraction of the machine's cores by group
    errors: int
    in_flight: float  # mean statements the gateways had in PostgreSQL (sampled)
    waits: Counter[str]  # what those statements waited on
    rabbit_idle: float  # the broker's CPU with no command flowing, fraction of a core

    @classmethod
    def of(cls, runs: Sequence[Run]) -> Figures:
        ok, seconds = sum(sum(r.ok) for r in runs), sum(r.seconds for r in runs)
        count = len(runs[0].ok)
        gw_cpu = [sum(r.cpu[f"gw{i + 1}"] for r in runs) for i in range(count)]
        served = [sum(r.ok[i] for r in runs) for i in range(count)]
        cpu = {g: sum(r.cpu[g] for r in runs) for g in ("postgres", "rabbitmq", "fleet",
                                                         "load gen", "machine")}
        cpu["gateways"] = sum(gw_cpu)
        cpu["others"] = cpu.pop("machine") - sum(cpu[g] for g in OURS)
        cores = os.cpu_count() or 1
        lat = [x for r in runs for x in r.latencies]
        waits = sum((r.pg_waits for r in runs), Counter[str]())
        return cls([r.rate for r in runs], Dist.of(lat) if lat else None,
                   [c / max(s, 1) * 1e3 for c, s in zip(gw_cpu, served, strict=True)],
                   [c / seconds for c in gw_cpu],
                   {g: v / max(ok, 1) * 1e3 for g, v in cpu.items()},
                   {g: v / (seconds * cores) for g, v in cpu.items()},
                   sum(len(r.errors) for r in runs),
                   waits.total() / max(sum(r.pg_samples for r in runs), 1), waits,
                   statistics.median(r.rabbit_idle for r in runs))

    @property
    def median(self) -> float:
        return statistics.median(self.rates)


def report(runs: list[Run]) -> dict[str, dict[str, Figures]]:
    figures = {p: {c: Figures.of([r for r in runs if r.case == c and r.path == p])
                   for c in CASES} for p in PATHS}
    header = ["case", "cmds/s med", "min-max", "p50 ms", "p99 ms", "gw CPU ms/cmd",
              "gw % core", "in PG", "postgres", "rabbitmq", "fleet", "load gen", "others", "ours",
              "gw ceiling", "2-core ceiling"]
    for path, (label, _status) in PATHS.items():
        rows = []
        for case, f in figures[path].items():
            ours = sum(f.per_cmd[g] for g in OURS)
            rows.append([f"{case}. {CASES[case][0]}", f"{f.median:.0f}",
                         f"{min(f.rates):.0f}-{max(f.rates):.0f}",
                         ms(f.dist.p50) if f.dist else "-", ms(f.dist.p99) if f.dist else "-",
                         " / ".join(f"{v:.2f}" for v in f.gw_ms),
                         " / ".join(f"{v * 100:.0f}" for v in f.gw_busy),
                         f"{f.in_flight:.2f}" if CASES[case][2] else "-",
                         *(f"{f.per_cmd[g]:.2f}" for g in OURS[1:]), f"{f.per_cmd['others']:.2f}",
                         f"{ours:.2f}", " / ".join(f"{1000 / v:.0f}" for v in f.gw_ms if v > 0),
                         f"{2000 / ours:.0f}" if ours > 0 else "-"])
        print_table(f"{label}  (median of the rounds' cmds/s; latencies of all rounds; CPU ms "
                    "per command)", header, rows)
        errors = {c: f.errors for c, f in figures[path].items() if f.errors}
        if errors:
            first = next(e for r in runs if r.path == path for e in r.errors)
            print(f"unexpected answers: {errors}; first: {first}")
    settled = [r.settle for r in runs if r.path == "202"]
    print(f"\nCPU: utime+stime from /proc over each window. 'gw CPU ms/cmd': each gateway's CPU "
          "over the commands its clients sent it\n(in C each also records the other's results); "
          "'gw % core': its CPU over the window. postgres = the cluster's\nprocesses without "
          "other databases' backends; fleet = the simulated agents' processes; load gen = this "
          "process;\nrabbitmq = the whole broker (other users' vhosts too); others = the "
          "machine's busy CPU (/proc/stat) that none of ours\nused. 'in PG' = statements the "
          "gateways had in flight in PostgreSQL, mean of samples every 20 ms (each\ngateway "
          "waits for its statements on its event loop: 1.00 = one loop always waiting). 'ours' "
          "= the five groups; gw ceiling = 1000 /\ngw CPU ms/cmd, per process (one GIL each); "
          f"2-core ceiling = 2000 / ours. After each 202 window the nodes answered\nthe rest of "
          f"its commands within {max(settled):.1f}s (waited for before the next case).")
    return figures


def against(two: Figures, one: Figures, name: str) -> str:
    """C's median over ``one``'s, and whether their rounds' ranges overlap."""
    clear = min(two.rates) > max(one.rates) or max(two.rates) < min(one.rates)
    return (f"C/{name} {two.median / one.median:.2f}x "
            f"({'more' if two.median > one.median else 'NOT more'}; the rounds' ranges "
            f"{'do not overlap' if clear else 'overlap'})")


def verdict(figures: dict[str, dict[str, Figures]]) -> None:
    print("\n## issue #15 item 4: with 2 gateways the cluster serves more commands/s than with 1")
    for path, (label, _status) in PATHS.items():
        a, b, c = (figures[path][k] for k in CASES)

        met = c.median > max(a.median, b.median)
        print(f"\n{label}: C {c.median:.0f} cmds/s; {against(c, b, 'B')}, {against(c, a, 'A')}: "
              f"{'met' if met else 'NOT met'}")
        ours = {k: sum(f.per_cmd[g] for g in OURS) for k, f in zip(CASES, (a, b, c), strict=True)}
        print("  CPU of ours per command " + ", ".join(
            f"{k} {v:.2f} ms (2-core ceiling {2000 / v:.0f})" for k, v in ours.items() if v > 0)
            + "; per-gateway ceilings " + ", ".join(
            f"{k} {' + '.join(f'{1000 / v:.0f}' for v in f.gw_ms if v > 0)}"
            for k, f in zip(CASES, (a, b, c), strict=True)))
        for case, f in zip(CASES, (a, b, c), strict=True):
            parts = ", ".join(f"{name} {f.share[g] * 100:.0f}%" for g, name in (
                ("gateways", "gateways"), ("postgres", "PostgreSQL"), ("rabbitmq", "RabbitMQ"),
                ("fleet", "fleet"), ("load gen", "load generator"), ("others", "other work")))
            busy = sum(f.share.values())
            print(f"  {case}: the cores were {busy * 100:.0f}% busy ({parts}); each gateway at "
                  f"{' / '.join(f'{v * 100:.0f}' for v in f.gw_busy)}% of a core; RabbitMQ "
                  f"{f.rabbit_idle * 100:.0f}% of a core in the second before, with no command")
            if f.waits:
                top = ", ".join(f"{w} {n / f.waits.total() * 100:.0f}%"
                                for w, n in f.waits.most_common(4))
                print(f"     {f.in_flight:.2f} statements in PostgreSQL on average, waiting on: "
                      f"{top}")


# ---- main ------------------------------------------------------------------------------------

def bench(args: argparse.Namespace, base: Path, made: dict[str, str]) -> list[Run]:
    if not DB_ENV.exists():
        raise BenchError(f"no {DB_ENV}: run `make postgres` (Debian's PostgreSQL, the role)")
    with ExitStack() as stack:
        vhost = stack.enter_context(private_vhost("gateways"))
        made["vhost"] = vhost.name
        db_url = stack.enter_context(scratch_database())
        made["database"] = db_url.rsplit("/", 1)[1]
        psql("postgres", f'ALTER DATABASE "{made["database"]}" SET synchronous_commit = '
                         f"{args.synchronous_commit}")
        tokens = base / "tokens"
        token = subprocess.run([GATEWAY_BIN, "token", "create", "bench", "--tokens-file",
                                str(tokens)], check=True, capture_output=True, text=True,
                               env=clean_env()).stdout.strip()
        nodes = [f"sim-{i:02d}" for i in range(args.agents)]
        pids = stack.enter_context(fleet(vhost.sim_url, nodes, args, base / "fleet.log"))
        watch = PgWatch(db_url)
        stack.callback(watch.close)
        ctx = Ctx(base, vhost, tokens, token, db_url, made["database"], nodes, args, watch)
        print(f"\n{args.agents} SIMULATED nodes in {args.fleet_procs} processes; vhost "
              f"{vhost.name}; database {made['database']}\n")
        runs: list[Run] = []
        for round_ in range(args.rounds):
            for case in CASES:
                done = run_case(ctx, case, pids)
                runs += done
                print(f"round {round_ + 1}, {case}: " + ", ".join(
                    f"{r.path} {r.rate:.0f} cmds/s" for r in done)
                    + f"  (load average {os.getloadavg()[0]:.2f})", flush=True)
        return runs


def cleanup_check(made: dict[str, str]) -> None:
    vhosts = subprocess.run(["rabbitmqctl", "list_vhosts", "--quiet"], capture_output=True,
                            text=True, timeout=60, check=False).stdout.split()
    dbs = subprocess.run(["runuser", "-u", "postgres", "--", "psql", "-X", "-tAc",
                          "SELECT datname FROM pg_database"], capture_output=True, text=True,
                         timeout=60, check=False).stdout.split()
    left = [v for v in made.values() if v in vhosts or v in dbs]
    print(f"\ncleanup check: vhost and database of this run left: {left or 'none'}")


def main() -> int:
    args = parse_args()
    if args.sim_fleet:
        return fleet_child(args)
    args.work_dir.mkdir(parents=True, exist_ok=True)
    base = Path(tempfile.mkdtemp(prefix="wharf-bench-gateways.", dir=args.work_dir))
    made: dict[str, str] = {}
    status, began = 0, time.perf_counter()
    try:
        print("# bench/gateways.py\n\n" + "\n".join(machine_lines(base)))
        print(f"load:     {' '.join(f'{v:.2f}' for v in os.getloadavg())} (1/5/15 min before "
              "the run; the cores are shared with other work, see 'others')")
        print(f"wharf:    repo {git_head()}; RabbitMQ 127.0.0.1:5672; PostgreSQL from {DB_ENV}, "
              f"synchronous_commit={args.synchronous_commit}; {args.concurrency} clients, "
              f"{args.duration:g} s per case and path, {args.rounds} rounds of A B C")
        if shutil.which("rabbitmqctl") is None:
            raise BenchError("rabbitmqctl is not installed (RabbitMQ is needed)")
        verdict(report(bench(args, base, made)))
        print(f"\nload:     {' '.join(f'{v:.2f}' for v in os.getloadavg())} (after the run)")
    except KeyboardInterrupt:
        print("\nbench/gateways.py: interrupted; cleaning up", file=sys.stderr)
        status = 130
    except (BenchError, OSError, httpx.HTTPError, WharfError,
            subprocess.SubprocessError) as exc:
        print(f"\nbench/gateways.py: FAILED: {exc}", file=sys.stderr)
        status = 1
    finally:
        shutil.rmtree(base, ignore_errors=True)
        cleanup_check(made)
    print(f"total run time {time.perf_counter() - began:.0f}s")
    return status


if __name__ == "__main__":
    sys.exit(main())
