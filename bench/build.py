"""`build` of a 10-step Dockerfile, cold and fully cached: wharf beside dockerd's classic builder.

    .venv/bin/python bench/build.py [--runs 5] [--files 200] [--registry 127.0.0.1:5000]
                                    [--wharf-host URL] [--docker-host URL] [--work-dir /var/tmp]

The Dockerfile has 10 instructions: FROM the registry's busybox, ARG NONCE, LABEL with the
nonce, ENV, WORKDIR, COPY of ``--files`` small files (64 bytes each), RUN (counts and
concatenates them), COPY of one more file, USER, CMD. Each engine builds the same context
directory with its own CLI: ``wharf -H <wharf-host> build`` and ``docker -H <docker-host>
build`` with ``DOCKER_BUILDKIT=0`` (the classic builder, the protocol wharfd speaks). The figure
is the wall time of the CLI, so its start-up and the context upload are in it. Both engines run
in the same invocation and alternate: which one goes first changes from one run to the next.

Same base content: both build FROM ``<registry>/library/busybox:latest``, the same manifest from
the same registry, pulled into each engine once before the timed runs (untimed; no run pulls).

Cold and cached:

- **cold**: every cold build gets a fresh ``--build-arg NONCE=<uuid>``; the LABEL that uses it
  misses the cache and so does every step after it, as the first build of a changed Dockerfile
  does. The builder still looks the cache up and still hashes the COPY sources, which a real
  first build pays and ``--no-cache`` would let a builder skip, so a nonce is the fairer
  "cold". FROM (the local base) and ARG (its text does not hold the value) still come from the
  cache, in both engines;
- **cached**: the nonce ``cached`` again, built once per engine before the timed runs: every
  step comes from the cache. Each cached run's output must say "Using cache" for every step
  after FROM and give the image of the first cached build, or the bench stops.

Beside each CLI row, an API row (for a daemon on a unix socket): ``POST /build`` of the archive
the wharf CLI makes for that context (made once, beforehand), timed until the last message,
with ``http.client``: the daemon alone, without the CLI's start-up (~100 ms for wharf's, about
as long as docker's whole cached rebuild) and without making the archive.

One untimed cold build per row warms the page cache first. Printed: n, median, p90, min and max
per row for cold and cached, the ratio of the medians to docker's (CLI to CLI, API to API), and
the issue's goals (cold <= 0.7x, cached <= 0.25x) as met / NOT met for both kinds of row.

Without ``--wharf-host`` the script starts its own wharfd (``bench/engines.wharfd``: a data root
and socket under ``--work-dir``, the registry as its mirror) and removes it at the end; with
it, the images it built are removed there (and the base, when the bench pulled it). Giving
dockerd's socket as ``--wharf-host`` runs the wharf CLI against dockerd: a dry run of the
script, not a comparison (both rows then measure dockerd, one through each CLI).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `tests` and `bench` from any cwd

import wharf
from bench.common import (
    SUMMARY_HEADER,
    VENV_BIN,
    CommandFailed,
    Summary,
    machine_lines,
    print_table,
    ratio,
    summary_row,
)
from bench.engines import engine_check, leftovers, wharfd
from bench.pull import BUSYBOX, git_head, registry_has
from tests.daemon_fixture import UnixConnection
from wharf.cli.buildcontext import prepare

WHARF = str(VENV_BIN / "wharf")
DOCKER_HOST = "unix:///var/run/docker.sock"
GOALS = {"cold": 0.7, "cached": 0.25}  # issue #11: wharf / docker, medians
STEPS = 10
DOCKERFILE = """FROM {base}
ARG NONCE
LABEL bench.nonce=$NONCE
ENV APP_HOME=/app GREETING=hello
WORKDIR $APP_HOME
COPY files/ ./files/
RUN ls files | wc -l > /count && cat files/* > /all
COPY app.conf /etc/app.conf
USER nobody
CMD ["cat", "/count"]
"""
_BUILT = re.compile(r"^Successfully built ([0-9a-f]{12})$", re.MULTILINE)
_STEP_IMAGE = re.compile(r"^ ---> ([0-9a-f]{12})$", re.MULTILINE)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="timed builds per engine and kind (5)")
    parser.add_argument("--files", type=int, default=200, help="small files COPY'd (200)")
    parser.add_argument("--registry", default="127.0.0.1:5000", help="plain-HTTP registry")
    parser.add_argument("--wharf-host", default=None, metavar="URL",
                        help="a running Docker-API daemon for the wharf CLI (default: start a "
                        "private wharfd)")
    parser.add_argument("--docker-host", default=DOCKER_HOST, metavar="URL",
                        help=f"dockerd for the docker CLI ({DOCKER_HOST})")
    parser.add_argument("--work-dir", type=Path, default=Path("/var/tmp"),
                        help="where the temporary tree goes")
    args = parser.parse_args()
    if args.runs < 1 or args.files < 1:
        parser.error("--runs and --files must be at least 1")
    return args


@dataclass
class Engine:
    """One CLI, the daemon it talks to (its unix socket, for the API rows), and the images its
    builds made (for the cleanup)."""

    name: str
    argv: list[str]
    env: dict[str, str]
    socket: Path | None
    made: list[str] = field(default_factory=list)
    pulled: bool = False
    base_id: str = ""  # the base's short ID: never one of the images to remove

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*self.argv, *args], capture_output=True, text=True,
                              env=self.env, check=False, timeout=600)

    def cli_build(self, context: Path, nonce: str) -> tuple[float, str]:
        """Wall seconds and output of ``<cli> build``; CommandFailed when it fails."""
        argv = [*self.argv, "build", "--build-arg", f"NONCE={nonce}", str(context)]
        start = time.perf_counter()
        proc = subprocess.run(argv, capture_output=True, text=True, env=self.env, check=False,
                              timeout=600)
        elapsed = time.perf_counter() - start
        return elapsed, self._built(proc.stdout, proc.returncode, proc.stderr or proc.stdout)

    def api_build(self, archive: bytes, nonce: str) -> tuple[float, str]:
        """Seconds for ``POST /build`` of the ready-made context archive on the daemon's unix
        socket, until the last message (no CLI, no archive making); the stream's text."""
        assert self.socket is not None
        query = urlencode({"version": "1", "dockerfile": "Dockerfile",
                           "buildargs": json.dumps({"NONCE": nonce})})
        conn = UnixConnection(self.socket, timeout=600)
        try:
            start = time.perf_counter()
            conn.request("POST", f"/v1.41/build?{query}", body=archive,
                         headers={"Content-Type": "application/x-tar"})
            response = conn.getresponse()
            raw = response.read()
            elapsed = time.perf_counter() - start
        finally:
            conn.close()
        text, error = "", raw.decode(errors="replace")
        if response.status == 200:
            messages = [json.loads(line) for line in raw.splitlines() if line.strip()]
            text = "".join(str(m.get("stream", "")) for m in messages)
            error = next((str(m["error"]) for m in messages if m.get("error")), "")
        return elapsed, self._built(text, 1 if error else 0, error)

    def _built(self, output: str, status: int, error: str) -> str:
        self.made += _STEP_IMAGE.findall(output)
        if status != 0 or not _BUILT.search(output):
            raise CommandFailed(f"{self.name}: the build failed ({status}): {error[-800:]}")
        return output

    def cleanup(self, base: str) -> None:
        """Remove the images the builds made (children first; one already gone with its child
        is fine), and the base if the bench pulled it."""
        kept: list[str] = []
        for image in reversed(dict.fromkeys(self.made)):
            if image != self.base_id:
                removed = self.run("rmi", image)
                if removed.returncode != 0 and "No such image" not in removed.stderr:
                    kept.append(f"{image}: {removed.stderr.strip()[:160]}")
        if self.pulled:
            self.run("rmi", base)
        if kept:
            print(f"cleanup: {self.name}: {len(kept)} image(s) not removed, e.g. {kept[0]}")


def socket_of(host: str) -> Path | None:
    return Path(host.removeprefix("unix://")) if host.startswith("unix://") else None


def make_context(root: Path, base: str, files: int) -> Path:
    """The context: the Dockerfile, ``files`` files of 64 bytes, one config file."""
    (root / "files").mkdir(parents=True)
    (root / "Dockerfile").write_text(DOCKERFILE.format(base=base))
    for index in range(files):
        (root / "files" / f"f{index:04d}.txt").write_text(f"{index:063d}\n")
    (root / "app.conf").write_text("greeting = hello\n")
    return root


def ensure_base(engine: Engine, base: str) -> None:
    """Pull the base into the engine unless it has it (untimed); note its ID."""
    if engine.run("image", "inspect", base).returncode != 0:
        pulled = engine.run("pull", base)
        if pulled.returncode != 0:
            raise CommandFailed(f"{engine.name}: pull {base} failed: "
                                f"{pulled.stderr.strip()[-400:]}")
        engine.pulled = True
    inspected = engine.run("image", "inspect", "-f", "{{.Id}}", base)
    engine.base_id = inspected.stdout.strip().removeprefix("sha256:")[:12]
    if inspected.returncode != 0 or len(engine.base_id) != 12:
        raise CommandFailed(f"{engine.name}: cannot read the ID of {base}: {inspected.stderr}")


@dataclass(frozen=True)
class Case:
    """One timed row: ``build(nonce)`` gives (seconds, output)."""

    label: str
    engine: Engine
    kind: str  # "CLI" or "API": rows are compared with docker's of the same kind
    build: Callable[[str], tuple[float, str]]


def cases_of(engines: list[Engine], context: Path) -> list[Case]:
    archive = b"".join(prepare(str(context), "", io.BytesIO()).body)  # what `wharf build` sends
    cases = [Case(f"{e.name} build (CLI)", e, "CLI", partial(e.cli_build, context))
             for e in engines]
    cases += [Case(f"POST /build -> {e.name}'s daemon (API)", e, "API",
                   partial(e.api_build, archive)) for e in engines if e.socket is not None]
    return cases


def check_cached(case: Case, output: str, image: str) -> None:
    """A cached build must take every step after FROM from the cache, giving ``image``."""
    hits = output.count(" ---> Using cache")
    built = _BUILT.search(output)
    if hits != STEPS - 1 or built is None or built.group(1) != image:
        raise RuntimeError(f"{case.label}: the cached build was not fully cached ({hits} of "
                           f"{STEPS - 1} steps from the cache, image {built and built.group(1)}, "
                           f"expected {image}):\n{output[-1500:]}")


def measure(cases: list[Case], runs: int) -> dict[str, dict[str, list[float]]]:
    """Warm-up and seed builds, then ``runs`` rounds of cold and cached builds of every case,
    the order reversed every other round; {"cold"|"cached": {label: seconds}}."""
    seeded: dict[str, str] = {}
    for case in cases:
        case.build(uuid.uuid4().hex)  # warm-up: page cache, the CLI's bytecode
        seeded[case.label] = _BUILT.findall(case.build("cached")[1])[0]
    samples: dict[str, dict[str, list[float]]] = {
        kind: {case.label: [] for case in cases} for kind in GOALS}
    for index in range(runs):
        for case in cases if index % 2 == 0 else cases[::-1]:
            seconds, output = case.build(uuid.uuid4().hex)
            if output.count(" ---> Using cache") > 1:  # ARG only (its text holds no value)
                raise RuntimeError(f"{case.label}: the cold build used the cache:\n{output}")
            samples["cold"][case.label].append(seconds)
            seconds, output = case.build("cached")
            check_cached(case, output, seeded[case.label])
            samples["cached"][case.label].append(seconds)
    return samples


def report(cases: list[Case], samples: dict[str, dict[str, list[float]]]) -> None:
    docker = {c.kind: c.label for c in cases if c.engine.name == "docker"}
    titles = {"cold": "cold build (a fresh NONCE: every step after ARG misses)",
              "cached": "fully cached rebuild (every step from the cache)"}
    for kind, figures in samples.items():
        rows = [summary_row(c.label, figures[c.label],
                            Summary.of(figures[docker[c.kind]]).median) for c in cases]
        print_table(f"{titles[kind]}  (ratio = median / docker's median, CLI to CLI, API to "
                    "API)", SUMMARY_HEADER, rows)
    print("\nissue #11 goals, wharf / docker (CLI: what a user waits for; API: the daemons "
          "alone):")
    for kind, goal in GOALS.items():
        for case in (c for c in cases if c.engine.name == "wharf"):
            mine = Summary.of(samples[kind][case.label])
            theirs = Summary.of(samples[kind][docker[case.kind]])
            verdict = "met" if mine.median <= goal * theirs.median else "NOT met"
            print(f"  {kind:6s} {case.kind}: median {ratio(mine.median, theirs.median)}, p90 "
                  f"{ratio(mine.p90, theirs.p90)}   goal <= {goal:.2f}x: {verdict}")


def bench(args: argparse.Namespace, base_dir: Path, wharf_host: str) -> None:
    base = f"{args.registry}/library/busybox:latest"
    plain_env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCKER_", "WHARF_"))}
    engines = [
        Engine("wharf", [WHARF, "-H", wharf_host],
               {**plain_env, "WHARF_CONFIG": str(base_dir / "wharf-config")},
               socket_of(wharf_host)),
        Engine("docker", ["docker", "-H", args.docker_host],
               {**plain_env, "DOCKER_BUILDKIT": "0",
                "DOCKER_CONFIG": str(base_dir / "docker-config")}, socket_of(args.docker_host)),
    ]
    print(f"wharf:    {WHARF} -H {wharf_host}")
    print(f"docker:   docker -H {args.docker_host} (DOCKER_BUILDKIT=0)")
    if wharf_host == args.docker_host:
        print("NOTE: --wharf-host is the docker host: every row measures dockerd (the wharf "
              "rows through the wharf CLI), sharing one cache: a dry run of this script, not a "
              "comparison")
    if any(e.socket is None for e in engines):
        print("NOTE: a TCP host: no API rows for it (they need the unix socket)")
    context = make_context(base_dir / "context", base, args.files)
    try:
        for engine in engines:
            ensure_base(engine, base)
        cases = cases_of(engines, context)
        samples = measure(cases, args.runs)
    finally:
        for engine in engines:
            engine.cleanup(base)
    report(cases, samples)


def main() -> int:
    args = parse_args()
    args.work_dir.mkdir(parents=True, exist_ok=True)
    base_dir = Path(tempfile.mkdtemp(prefix="wharf-bench-build.", dir=args.work_dir))
    status = 0
    try:
        print("# bench/build.py\n\n" + "\n".join(machine_lines(base_dir)))
        print(f"wharf:    packages {' '.join(sorted(wharf.__path__))}, repo {git_head()}")
        print(f"runs:     {args.runs} cold + {args.runs} cached per engine (after an untimed "
              f"warm-up and seed build each), alternating; {STEPS} instructions, "
              f"{args.files} files COPY'd; base {args.registry}/library/busybox:latest")
        if not registry_has(args.registry, BUSYBOX):
            print(f"registry {args.registry} does not answer library/busybox:latest: run "
                  "`make images`", file=sys.stderr)
            return 1
        why = engine_check(["docker", "-H", args.docker_host, "info"])
        if why is not None:
            print(f"no dockerd to compare with: {why}", file=sys.stderr)
            return 1
        if args.wharf_host:
            bench(args, base_dir, args.wharf_host)
        else:
            with wharfd(base_dir / "daemon", args.registry) as daemon:
                bench(args, base_dir, daemon.host)
    except (CommandFailed, RuntimeError, OSError, subprocess.SubprocessError) as exc:
        print(f"\nbench/build.py: FAILED: {exc}", file=sys.stderr)
        status = 1
    finally:
        if not args.wharf_host:
            leftovers(base_dir)
        shutil.rmtree(base_dir, ignore_errors=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
