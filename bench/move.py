"""``wharf container move`` on the local cluster, beside the same move made by hand.

    set -a; . .wharf/cluster.env; set +a          # after `make cluster-up NODES=3`
    .venv/bin/python bench/move.py [--mb 50] [--runs 5] [--source node1] [--target node2]
                                   [--network none] [--image busybox]

What it measures: the time to move a container whose writable layer holds ``--mb`` MB of
random data from one node to the other, as ``wharf container move NAME --to NODE`` waits for
it. The container: busybox, ``sh`` that writes /blob (``dd if=/dev/urandom bs=1M``) and /ready
unless /ready is there (the command runs again on the node it moves to, and must find its state
rather than write it again), then sleeps and exits at once on SIGTERM. Two ways to move it:

- ``gateway``: ``POST /v1/nodes/{node}/containers/{name}/move?to=OTHER&wait=true`` on the
  gateway (TLS, bearer token), timed as the request's wall time; the gateway inspects, stops,
  commits, streams ``save`` into ``load`` through itself, creates, starts and cleans up, each
  step journalled (``wharf.gateway.moves``);
- ``by hand`` (the reference): the same state carried with the daemons' own API on their unix
  sockets, without the gateway, its journal or its relay: inspect, ``stop?t=10``, ``commit``
  (``pause=0``, as the gateway does), ``GET /images/{ref}/get`` on the source streamed into
  ``POST /images/load`` on the target, ``create`` with the same Config (the image replaced by
  the committed one, the hostname left to the target, as the gateway does) and HostConfig,
  ``start``, then the source's container and the committed image removed.

Each of ``--runs`` runs moves one fresh container of each kind, gateway first, from ``--source``
to ``--target`` on odd runs and back on even ones. Fresh, because a container that has moved
once has its data in its image and an empty writable layer: moving it again commits nothing
and no longer measures what is asked. Untimed around each move: the container is made on the
run's source (the gateway's with ``containers/run`` through the gateway, the other on the
source's socket) and /ready awaited; after it, the bench checks that the container runs on the
target with /blob of the right size and that the source has neither it nor the committed image,
then removes the container and its image on the target. The output: the machine, a table per
run, median / p90 / min / max of each kind with the ratio gateway / by hand, and the median of
each step: for the gateway from its move document (``History`` holds when each step began;
the first step, ``inspect``, began at ``CreatedAt``; plus the request's time before
``CreatedAt`` and after the last step, on the same clock), for by hand from the bench's own
timing. Figures only: compare within one run (see bench/README.md).

Cleanup, also after a failure or Ctrl-C: a gateway move still in flight is waited for (up to
2 minutes), then the containers are force-removed on both nodes (found by their label), and the
``bench-hand/<pid>-*`` images and the ``wharf-move/<id>`` images of this bench's moves left on
either node are removed. Exit status 1 when the bench could not run, a move did not end
``done`` or did not carry the data, or the cleanup left something.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import itertools
import json
import os
import re
import ssl
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `bench` from any cwd

from bench.common import SUMMARY_HEADER, filesystem_of, machine_lines, ms, print_table, ratio
from bench.common import Summary as Stats
from bench.pull import git_head

API = "/v1.41"
CLUSTER_HINT = ("run `make cluster-up NODES=3`, then `set -a; . .wharf/cluster.env; set +a` "
                "in this shell")
# /blob is written once: the container runs its command again on the node it moves to, where a
# second dd would write a new /blob over the carried one (during the move's last steps)
SCRIPT = ("test -f /ready || {{ dd if=/dev/urandom of=/blob bs=1M count={mb} 2>/dev/null; "
          "echo ok > /ready; }}; trap 'exit 0' TERM; sleep 3600 & wait")
READY_TIMEOUT = 120.0
MOVE_DEADLINE = 600
STEPS = ("inspect", "stop", "commit", "transfer", "volumes", "create", "start", "cleanup")
TERMINAL = ("done", "rolled-back", "failed")
CHUNK = 1 << 16


class BenchError(RuntimeError):
    """The bench cannot go on; the message says what failed."""


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=int, default=50, help="MB of random data in the "
                        "container's writable layer (50)")
    parser.add_argument("--runs", type=int, default=5, help="moves of each kind (5)")
    parser.add_argument("--source", default="node1", help="the first run's source; the runs "
                        "alternate directions (node1)")
    parser.add_argument("--target", default="node2", help="the other node (node2)")
    parser.add_argument("--network", default="none", help="the containers' NetworkMode (none)")
    parser.add_argument("--image", default="busybox", help="the containers' image (busybox)")
    args = parser.parse_args()
    if args.mb < 1 or args.runs < 1:
        parser.error("--mb and --runs must be at least 1")
    for node in (args.source, args.target):
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}", node):
            parser.error(f"{node!r}: not a node name")
    if args.source == args.target:
        parser.error("--source and --target must differ")
    return args


# ---- the two ways in -----------------------------------------------------------------------------

def failed(reply: httpx.Response, what: str) -> BenchError:
    text = reply.text.strip()
    with contextlib.suppress(ValueError, AttributeError):  # Docker's {"message": ...}
        text = str(json.loads(text).get("message", text))
    return BenchError(f"{what}: {reply.status_code} {text[:400]}")


def ok(reply: httpx.Response, what: str, allowed: Sequence[int] = ()) -> httpx.Response:
    if reply.status_code >= 300 and reply.status_code not in allowed:
        raise failed(reply, what)
    return reply


class Daemon:
    """One node's wharfd on its unix socket (Docker Engine API)."""

    def __init__(self, node: str) -> None:
        self.node = node
        self.socket = f"/run/wharf-cluster/{node}/wharfd.sock"
        if not Path(self.socket).exists():
            raise BenchError(f"no unix socket {self.socket}: {CLUSTER_HINT}")
        self.http = httpx.Client(transport=httpx.HTTPTransport(uds=self.socket),
                                 base_url=f"http://{node}{API}",
                                 timeout=httpx.Timeout(60.0, read=MOVE_DEADLINE))

    def json(self, method: str, path: str, what: str, **kwargs: Any) -> Any:
        reply = ok(self.http.request(method, path, **kwargs), f"{self.node}: {what}")
        return reply.json() if reply.content else None

    def blob_size(self, cid: str) -> int | None:
        """The size of /blob in the container, or None when there is no such container."""
        reply = self.http.head(f"/containers/{cid}/archive", params={"path": "/blob"})
        if reply.status_code == 404:
            return None
        ok(reply, f"{self.node}: stat /blob in {cid[:12]}")
        stat = json.loads(base64.b64decode(reply.headers["x-docker-container-path-stat"]))
        return int(stat["size"])

    def labelled(self, label: str) -> list[str]:
        found = self.json("GET", "/containers/json", "list containers", params={
            "all": "1", "filters": json.dumps({"label": [label]})})
        return [str(c["Id"]) for c in found or []]

    def tags(self) -> list[str]:
        images = self.json("GET", "/images/json", "list images") or []
        return [tag for image in images for tag in image.get("RepoTags") or []]

    def remove_image(self, ref: str) -> None:
        ok(self.http.delete(f"/images/{ref}"), f"{self.node}: remove image {ref}",
           allowed=(404,))

    def close(self) -> None:
        self.http.close()


@dataclass
class Cluster:
    gateway: httpx.Client
    url: str
    daemons: dict[str, Daemon]


def cluster(args: argparse.Namespace) -> Cluster:
    """The gateway (from the environment make cluster-up writes) and the two nodes' sockets."""
    url = os.environ.get("WHARF_GATEWAY")
    token_file = os.environ.get("WHARF_TOKEN_FILE")
    if not url or not (token_file or os.environ.get("WHARF_TOKEN")):
        raise BenchError(f"WHARF_GATEWAY and WHARF_TOKEN_FILE are not set: {CLUSTER_HINT}")
    token = (Path(token_file).read_text().strip() if token_file
             else os.environ["WHARF_TOKEN"])
    cafile = os.environ.get("WHARF_GATEWAY_CACERT") or None
    gateway = httpx.Client(base_url=url, verify=ssl.create_default_context(cafile=cafile),
                           headers={"Authorization": f"Bearer {token}"},
                           timeout=httpx.Timeout(60.0, read=MOVE_DEADLINE + 60))
    for node in (args.source, args.target):
        reply = gateway.get(f"/v1/nodes/{node}")
        if reply.status_code != 200:
            raise failed(reply, f"the gateway at {url} about node {node} ({CLUSTER_HINT})")
        if reply.json().get("Status") != "ready":
            raise BenchError(f"node {node} is {reply.json().get('Status')!r}, not ready")
    return Cluster(gateway, url, {n: Daemon(n) for n in (args.source, args.target)})


# ---- the containers --------------------------------------------------------------------------

def create_body(args: argparse.Namespace, label: str) -> dict[str, Any]:
    return {"Image": args.image, "Cmd": ["sh", "-c", SCRIPT.format(mb=args.mb)],
            "Labels": {"wharf.bench": label}, "HostConfig": {"NetworkMode": args.network}}


def wait_ready(daemon: Daemon, cid: str) -> float:
    """Seconds until /ready exists in the container (its /blob is written)."""
    started = time.perf_counter()
    while True:
        reply = daemon.http.head(f"/containers/{cid}/archive", params={"path": "/ready"})
        if reply.status_code == 200:
            return time.perf_counter() - started
        if reply.status_code != 404 or time.perf_counter() - started > READY_TIMEOUT:
            raise BenchError(f"{daemon.node}: /ready never appeared in {cid[:12]} "
                             f"({reply.status_code})")
        time.sleep(0.05)


@dataclass
class Kind:
    """One kind of move: its container's name (one container a run) and what each move took."""

    name: str
    walls: list[float] = field(default_factory=list)    # s, the whole move as the client waits
    steps: dict[str, list[float]] = field(default_factory=dict)  # s, per step
    carried: list[int] = field(default_factory=list)  # bytes of `save` streamed (by hand)

    def step(self, step: str, seconds: float) -> None:
        self.steps.setdefault(step, []).append(seconds)


# ---- a move through the gateway ----------------------------------------------------------------

def gateway_move(where: Cluster, kind: Kind, source: str, to: str,
                 moves: list[str]) -> dict[str, Any]:
    """``move?to=...&wait=true``; the move's document (its id also goes into ``moves``)."""
    sent = time.time()
    started = time.perf_counter()
    reply = where.gateway.post(f"/v1/nodes/{source}/containers/{kind.name}/move",
                               params={"to": to, "wait": "true", "deadline": str(MOVE_DEADLINE)})
    wall = time.perf_counter() - started
    received = time.time()
    if reply.status_code not in (200, 202):
        raise failed(reply, f"move {kind.name} {source} -> {to} through the gateway")
    move: dict[str, Any] = reply.json()
    moves.append(move["Id"])
    if move["State"] != "done":
        raise BenchError(f"move {move['Id']} of {kind.name} {source} -> {to} ended "
                         f"{move['State']!r} (HTTP {reply.status_code}): {move.get('Error')}")
    kind.walls.append(wall)
    kind.step("journal (CreatedAt -> UpdatedAt)", move["UpdatedAt"] - move["CreatedAt"])
    kind.step("request -> CreatedAt", move["CreatedAt"] - sent)
    kind.step("UpdatedAt -> response", received - move["UpdatedAt"])
    began, state = move["CreatedAt"], "inspect"  # the first step is not in History
    for entry in move.get("History") or []:
        kind.step(state, entry["At"] - began)
        began, state = entry["At"], entry["State"]
    return move


# ---- the same by hand --------------------------------------------------------------------------

def create_from(inspected: dict[str, Any], image: str) -> dict[str, Any]:
    """The create body that makes the container again, as the gateway's move plans it."""
    config = dict(inspected.get("Config") or {})
    config["Image"] = image
    config.pop("Hostname", None)
    return {**config, "HostConfig": dict(inspected.get("HostConfig") or {})}


def hand_move(where: Cluster, kind: Kind, cid: str, source: str, to: str, ref: str) -> str:
    """Carry container ``cid`` from ``source`` to ``to`` with the daemons' API, its layer
    committed as ``ref``; its id on ``to``."""
    src, dst = where.daemons[source], where.daemons[to]
    marks = [("", time.perf_counter())]

    def mark(step: str) -> None:
        marks.append((step, time.perf_counter()))

    inspected = src.json("GET", f"/containers/{cid}/json", "inspect")
    mark("inspect")
    src.json("POST", f"/containers/{cid}/stop", "stop", params={"t": "10"})
    mark("stop")
    src.json("POST", "/commit", "commit", params={
        "container": cid, "repo": ref.partition(":")[0], "tag": "latest", "pause": "0"})
    mark("commit")
    carried = 0

    def chunks(out: httpx.Response) -> Iterator[bytes]:
        nonlocal carried
        for chunk in out.iter_bytes(CHUNK):
            carried += len(chunk)
            yield chunk

    with src.http.stream("GET", f"/images/{ref}/get") as out:
        ok(out, f"{src.node}: save {ref}")  # 404 and the like come before any body
        loaded = dst.http.post("/images/load", params={"quiet": "1"},
                               headers={"Content-Type": "application/x-tar"},
                               content=chunks(out))
    ok(loaded, f"{dst.node}: load {ref}")
    if b"errorDetail" in loaded.content:
        raise BenchError(f"{dst.node}: load {ref}: {loaded.text[:300]}")
    mark("transfer")
    made = dst.json("POST", "/containers/create", "create", params={"name": kind.name},
                    json=create_from(inspected, ref))
    mark("create")
    dst.json("POST", f"/containers/{made['Id']}/start", "start")
    mark("start")
    src.json("DELETE", f"/containers/{cid}", "remove the container", params={"force": "1"})
    src.remove_image(ref)
    mark("cleanup")
    kind.walls.append(marks[-1][1] - marks[0][1])
    kind.carried.append(carried)
    for (_, before), (step, at) in itertools.pairwise(marks):
        kind.step(step, at - before)
    return str(made["Id"])


# ---- checks, cleanup -----------------------------------------------------------------------------

def check_moved(where: Cluster, name: str, cid: str, source: str, to: str, image: str,
                expected: int) -> None:
    """Untimed: the container runs on ``to`` with /blob whole; ``source`` has neither the
    container nor the image it was committed to."""
    here = where.daemons[to]
    state = here.json("GET", f"/containers/{cid}/json", "inspect the moved container")
    if not (state.get("State") or {}).get("Running"):
        raise BenchError(f"{name} on {to} does not run after the move: {state.get('State')}")
    size = here.blob_size(cid)
    if size != expected:
        raise BenchError(f"{name} on {to}: /blob is {size} bytes, not {expected}")
    there = where.daemons[source]
    left = there.labelled(f"wharf.bench={name}")
    if left:
        raise BenchError(f"{name} is still on {source} after the move ({left[0][:12]})")
    if image in there.tags():
        raise BenchError(f"the image {image} is still on {source} after the move")


def remove_moved(daemon: Daemon, cid: str, image: str) -> None:
    """Untimed, after a run: the moved container and its image on the node it went to."""
    daemon.json("DELETE", f"/containers/{cid}", "remove the moved container",
                params={"force": "1"})
    daemon.remove_image(image)


def wait_moves_ended(where: Cluster, names: Sequence[str], moves: list[str]) -> None:
    """A move of ours may still run on the gateway (Ctrl-C during a request): wait for it, up
    to 2 minutes; every move of our containers goes into ``moves`` (their images to remove)."""
    deadline = time.monotonic() + 120
    while True:
        reply = where.gateway.get("/v1/moves")
        if reply.status_code != 200:
            return
        ours = [m for m in reply.json() if m.get("Container") in names]
        moves.extend(m["Id"] for m in ours if m["Id"] not in moves)
        busy = [m for m in ours if m.get("State") not in TERMINAL]
        if not busy or time.monotonic() > deadline:
            return
        print(f"bench/move.py: waiting for move {busy[0]['Id']} ({busy[0]['State']}) to end",
              file=sys.stderr)
        time.sleep(1)


def clean_up(where: Cluster, names: Sequence[str], hand_prefix: str,
             moves: list[str]) -> list[str]:
    """Remove what the bench made on both nodes; what could not be removed."""
    problems: list[str] = []
    try:
        wait_moves_ended(where, names, moves)
    except (httpx.HTTPError, ValueError) as exc:
        problems.append(f"the gateway's moves: {exc}")
    for daemon in where.daemons.values():
        try:
            for name in names:
                for cid in daemon.labelled(f"wharf.bench={name}"):
                    daemon.json("DELETE", f"/containers/{cid}", f"remove {name}",
                                params={"force": "1"})
            mine = {f"wharf-move/{m}:latest" for m in moves}
            for tag in daemon.tags():
                if tag.startswith(hand_prefix) or tag in mine:
                    daemon.remove_image(tag)
        except (BenchError, httpx.HTTPError, ValueError) as exc:
            problems.append(f"{daemon.node}: {exc}")
    return problems


# ---- figures -------------------------------------------------------------------------------

def report(args: argparse.Namespace, gateway: Kind, hand: Kind,
           directions: Sequence[str]) -> None:
    g_wall, h_wall = gateway.walls, hand.walls
    journal = gateway.steps["journal (CreatedAt -> UpdatedAt)"]
    rows = [[str(i + 1), directions[i], ms(g_wall[i]), ms(journal[i]), ms(h_wall[i]),
             ratio(g_wall[i], h_wall[i]), f"{hand.carried[i] / 1e6:.1f}"]
            for i in range(len(g_wall))]
    print_table(f"Per run: a {args.mb} MB writable layer (ms)",
                ["run", "direction", "gateway move", "CreatedAt->UpdatedAt", "by hand",
                 "gateway / by hand", "save tar MB"], rows)

    ref = Stats.of(h_wall).median
    print_table("Summary (ms; ratio over by hand)", SUMMARY_HEADER, [
        summary_row("by hand (daemons' API, unix sockets)", h_wall, ref),
        summary_row("gateway move?wait=true (wall)", g_wall, ref),
        summary_row("gateway CreatedAt -> UpdatedAt", journal, ref),
    ])

    rows = []
    for step in ("request -> CreatedAt", *STEPS, "UpdatedAt -> response"):
        g = gateway.steps.get(step)
        h = hand.steps.get(step)
        rows.append([step, ms(statistics.median(g)) if g else "-",
                     ms(max(g)) if g else "-", ms(statistics.median(h)) if h else "-",
                     ratio(statistics.median(g), statistics.median(h)) if g and h else "-"])
    rows.append(["whole", ms(statistics.median(g_wall)), ms(max(g_wall)),
                 ms(statistics.median(h_wall)), ratio(statistics.median(g_wall), ref)])
    print_table("Per step, medians (ms): gateway from its move document, by hand timed here",
                ["step", "gateway", "gateway max", "by hand", "gateway / by hand"], rows)

    g_med, h_med = statistics.median(g_wall), ref
    print(f"\nratio gateway / by hand (medians): {g_med / h_med:.2f}x  "
          f"({ms(g_med)} ms vs {ms(h_med)} ms, +{ms(g_med - h_med)} ms)")
    carried = statistics.median(hand.carried) / 1e6
    for label, kind in (("gateway", gateway), ("by hand", hand)):
        transfer = statistics.median(kind.steps["transfer"])
        print(f"{label} transfer (save | load): {carried / transfer:.0f} MB/s "
              f"({carried:.1f} MB tar, the {args.mb} MB layer and busybox's; median "
              f"{ms(transfer)} ms)")


def summary_row(label: str, samples: Sequence[float], reference: float) -> list[str]:
    s = Stats.of(samples)
    return [label, str(s.n), ms(s.median), ms(s.p90), ms(s.min), ms(s.max),
            ratio(s.median, reference)]


# ---- main --------------------------------------------------------------------------------------

def fresh(args: argparse.Namespace, where: Cluster, kind: Kind, node: str,
          through_gateway: bool) -> tuple[str, float]:
    """A new container of ``kind`` on ``node``, with /blob written: its id, and the seconds
    from its start to /ready."""
    body = create_body(args, kind.name)
    daemon = where.daemons[node]
    if through_gateway:
        reply = where.gateway.post(f"/v1/nodes/{node}/containers/run",
                                   params={"name": kind.name, "wait": "true"}, json=body)
        if reply.status_code != 201:
            raise failed(reply, f"run {kind.name} on {node} through the gateway")
        cid = str(reply.json()["Id"])
    else:
        cid = str(daemon.json("POST", "/containers/create", f"create {kind.name}",
                              params={"name": kind.name}, json=body)["Id"])
        daemon.json("POST", f"/containers/{cid}/start", f"start {kind.name}")
    return cid, wait_ready(daemon, cid)


def bench(args: argparse.Namespace, where: Cluster, gateway: Kind, hand: Kind,
          hand_prefix: str, moves: list[str], progress: Callable[[str], None]) -> list[str]:
    expected = args.mb << 20
    directions = []
    for run in range(1, args.runs + 1):
        source, to = ((args.source, args.target) if run % 2
                      else (args.target, args.source))
        directions.append(f"{source} -> {to}")

        cid, ready_gw = fresh(args, where, gateway, source, through_gateway=True)
        move = gateway_move(where, gateway, source, to, moves)
        image = f"wharf-move/{move['Id']}:latest"
        check_moved(where, gateway.name, str(move["TargetID"]), source, to, image, expected)
        remove_moved(where.daemons[to], str(move["TargetID"]), image)

        ref = f"{hand_prefix}{run}:latest"
        cid, ready_hand = fresh(args, where, hand, source, through_gateway=False)
        moved = hand_move(where, hand, cid, source, to, ref)
        check_moved(where, hand.name, moved, source, to, ref, expected)
        remove_moved(where.daemons[to], moved, ref)

        progress(f"run {run}/{args.runs} {source} -> {to}: gateway {ms(gateway.walls[-1])} ms "
                 f"(move {move['Id']}), by hand {ms(hand.walls[-1])} ms; /blob written in "
                 f"{ready_gw:.2f} s / {ready_hand:.2f} s")
    return directions


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main() -> int:
    args = parse_args()
    print("# bench/move.py\n\n" + "\n".join(machine_lines(Path.cwd())))
    data = Path("/var/lib/wharf-cluster")
    if data.exists():
        print(f"node data: {data}  [{filesystem_of(data)}]")
    print(f"wharf:    repo {git_head()}")
    print(f"load:     {loadavg()} (1, 5, 15 min) at start")
    try:
        where = cluster(args)
    except (BenchError, httpx.HTTPError, OSError) as exc:
        print(f"\nbench/move.py: FAILED: {exc}", file=sys.stderr)
        return 1
    print(f"gateway:  {where.url} -> {args.source}, {args.target} (relay over mutual TLS)")
    print(f"by hand:  {', '.join(d.socket for d in where.daemons.values())}")
    print(f"moves:    {args.runs} of each kind, gateway then by hand in each run, "
          f"{args.source} -> {args.target} on odd runs and back on even ones; a fresh container "
          f"each move: {args.image}, {args.mb} MB of /dev/urandom in its writable layer, "
          f"NetworkMode {args.network}")
    pid = os.getpid()
    names = [f"bench-move-gw-{pid}", f"bench-move-hand-{pid}"]
    hand_prefix = f"bench-hand/{pid}-"
    moves: list[str] = []
    status = 0
    try:
        gateway, hand = Kind(names[0]), Kind(names[1])
        sys.stdout.flush()  # the header before the progress lines on stderr
        directions = bench(args, where, gateway, hand, hand_prefix, moves,
                           lambda line: print(f"  {line}", file=sys.stderr, flush=True))
        report(args, gateway, hand, directions)
        print(f"load:     {loadavg()} (1, 5, 15 min) at the end")
    except (BenchError, httpx.HTTPError, OSError) as exc:
        print(f"\nbench/move.py: FAILED: {exc}", file=sys.stderr)
        status = 1
    except KeyboardInterrupt:
        print("\nbench/move.py: interrupted", file=sys.stderr)
        status = 130
    finally:
        problems = clean_up(where, names, hand_prefix, moves)
        for problem in problems:
            print(f"bench/move.py: cleanup: {problem}; remove what is left by hand "
                  f"(containers labelled wharf.bench={names[0]} / {names[1]}, images "
                  f"{hand_prefix}*)", file=sys.stderr)
        status = status or (1 if problems else 0)
        for daemon in where.daemons.values():
            daemon.close()
        where.gateway.close()
    return status


if __name__ == "__main__":
    sys.exit(main())
