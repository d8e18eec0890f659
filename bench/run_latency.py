"""`run --rm IMAGE true` for wharf, docker and podman side by side; CLI start-up; concurrency.

    .venv/bin/python bench/run_latency.py [--runs 20] [--starts 30] [--lifecycles 100]
                                          [--no-podman] [--work-dir /var/tmp]

One invocation measures three engines on this host: a private wharfd the bench starts
(temporary data root and socket), dockerd (the running one, else Debian's docker.io installed
and started with ``make dockerd``'s flags) and podman (Debian's; its Docker API through a
``podman system service`` of this run, its CLI with the flags this host needs, printed). Every
engine runs the same image: a tar of busybox-static (``bin/busybox``, ``bin/true``, ``bin/sh``)
imported by each engine's own ``import`` under a bench-only name, removed at the end.

Sections (wall times; every ratio and verdict uses figures of this run only):

1. end to end, each engine's CLI ``run --rm IMAGE true`` with ``--network none`` and on the
   bridge, round-robin over engines and modes (rotating which goes first), one warm-up round;
   ``docker`` CLI against wharfd too (docker's client is quick, so that row is mostly wharfd);
   ratios against docker's median of the same mode, and the issue's goal (<= 0.33x);
2. CLI start-up: ``python -c pass``, ``wharf --help``, ``wharf version``; and the time from
   spawning the CLI to its first byte to the daemon for ``run --rm``, taken by a unix-socket
   proxy in front of wharfd that timestamps the first byte (bench/first_byte.py);
3. daemon side through the Docker API (keep-alive, unix socket) per engine and network mode:
   create, open wait (next-exit), start, start → exit, create → exit, delete; with wharfd's own
   per-phase timings (``GET /system/phases``) when it has them;
4. the floor: raw ``crun run`` of the bundle wharf's runtime layer writes, and that layer
   in-process (bench/runtime_probe.Probe), no daemon;
5. concurrency over the API per engine, on its bridge: ``--starts`` containers created, then
   started concurrently; ``--lifecycles`` whole ``run --rm true`` lifecycles (create, start,
   wait, remove) concurrently, every exit code checked and nothing left behind;
6. memory: wharfd VmRSS idle and with the started containers running; conmon's.

Run from the repository root as root; needs crun, conmon, busybox-static (and apt for docker.io
and podman when they are missing).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `tests` and `bench` from any cwd

import wharf
from bench.common import (
    SUMMARY_HEADER,
    VENV_BIN,
    CommandFailed,
    Summary,
    machine_lines,
    ms,
    print_table,
    run_timed,
    summary_row,
)
from bench.contenders import (
    MODE_LABELS,
    MODES,
    Contender,
    busybox_tar,
    docker_bridge,
    import_image,
    layer_of,
    remove_image,
)
from bench.engines import (
    DOCKER_SOCKET,
    PODMAN_ULIMITS,
    dockerd,
    leftovers,
    podman_run_flags,
    podman_service,
    wharfd,
)
from bench.pull import git_head
from bench.run_concurrency import Memory, concurrency_section, memory_section, vm_rss
from bench.run_daemon_side import daemon_section, floor_section
from bench.run_startup import startup_section
from tests.daemon_fixture import Daemon

WHARF = str(VENV_BIN / "wharf")
IMAGE = "wharf-bench-busybox:run-latency"
GOAL_RATIO = 0.33  # issue #14: wharf run --rm <= 0.33x docker run --rm, both network modes


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20, help="runs per latency case (20)")
    parser.add_argument("--starts", type=int, default=30, help="concurrent starts (30)")
    parser.add_argument("--lifecycles", type=int, default=100,
                        help="concurrent run --rm lifecycles (100)")
    parser.add_argument("--no-podman", action="store_true", help="leave podman out")
    parser.add_argument("--registry", default="127.0.0.1:5000",
                        help="wharfd's docker.io mirror (not needed by the bench's image)")
    parser.add_argument("--work-dir", type=Path, default=Path("/var/tmp"),
                        help="where the temporary tree goes")
    args = parser.parse_args()
    if min(args.runs, args.starts, args.lifecycles) < 1:
        parser.error("--runs, --starts and --lifecycles must be at least 1")
    return args


# ---- the engines and the image -----------------------------------------------------------------

@contextmanager
def contenders(args: argparse.Namespace, base: Path,
               stack: ExitStack) -> Iterator[tuple[Daemon, list[Contender]]]:
    """wharf, docker (and podman) with the bench image imported; the image removed at the end."""
    daemon = stack.enter_context(wharfd(base / "daemon", args.registry))
    print(f"wharfd:   {daemon.host}, pid {daemon.process.pid}, data root {daemon.data_root}")
    how = stack.enter_context(dockerd(base / "dockerd.log"))
    docker_cli = ("docker", "-H", f"unix://{DOCKER_SOCKET}")
    bridge = stack.enter_context(docker_bridge(docker_cli))
    print(f"dockerd:  unix://{DOCKER_SOCKET}, {how}; {_versions(docker_cli)}; bridge rows on "
          f"{bridge or 'its default bridge'}"
          f"{' (dockerd runs with --bridge=none: no default bridge)' if bridge else ''}")
    engines = [Contender("wharf", (WHARF, "-H", daemon.host), daemon.socket),
               Contender("docker", docker_cli, DOCKER_SOCKET, bridge=bridge,
                         bridge_api=bridge or "bridge")]
    if not args.no_podman:
        sock = base / "podman.sock"
        stack.enter_context(podman_service(sock, base / "podman.log"))
        ulimits = [{"Name": n, "Soft": v, "Hard": v} for n, v in PODMAN_ULIMITS.items()]
        engines.append(Contender("podman", ("podman",), sock,
                                 run_flags=tuple(podman_run_flags()),
                                 host_config={"Ulimits": ulimits}))
        print(f"podman:   version {_versions(('podman',), '{{.Version}}')}; CLI `podman run --rm "
              f"{' '.join(podman_run_flags())} ...`; API "
              f"`podman --runtime runc system service` on unix://{sock} (Ulimits as above)")
    tar, diff_id = busybox_tar(base)
    try:
        for engine in engines:
            import_image(engine, tar, IMAGE)
            layer = layer_of(engine, IMAGE)
            print(f"image:    {engine.name}: {IMAGE}, layer {layer[:19]}"
                  f"{'' if layer == diff_id else f' (tar is {diff_id[:19]})'}")
            run_timed(engine.run_argv(IMAGE, "none"))  # it runs at all, before any timing
        yield daemon, engines
    finally:
        removed = {engine.name: remove_image(engine, IMAGE) for engine in engines}
        for name, why in removed.items():
            print(f"cleanup: {name} rmi {IMAGE}: {why or 'removed'}")


def _versions(cli: tuple[str, ...],
              fmt: str = "client {{.Client.Version}}, server {{.Server.Version}}") -> str:
    """The engine's ``version --format FMT``."""
    proc = subprocess.run([*cli, "version", "--format", fmt],
                          capture_output=True, text=True, check=False, timeout=30)
    return proc.stdout.strip() or f"version unknown ({proc.stderr.strip()[-80:]})"


# ---- 1. end to end -----------------------------------------------------------------------------

def end_to_end_section(engines: list[Contender], runs: int) -> None:
    """Round-robin CLI ``run --rm`` for every engine and mode; ratios to docker's median."""
    wharf_host = engines[0].cli[-1]
    via = Contender("docker CLI -> wharfd", ("docker", "-H", wharf_host), engines[0].socket)
    cases = [(e, mode) for mode in MODES for e in [*engines, via]]
    samples: dict[tuple[str, str], list[float]] = {(e.name, m): [] for e, m in cases}
    for i in range(runs + 1):  # round 0 is the warm-up
        shift = i % len(cases)
        for engine, mode in cases[shift:] + cases[:shift]:
            seconds = run_timed(engine.run_argv(IMAGE, mode))
            if i:
                samples[engine.name, mode].append(seconds)
    medians = {key: Summary.of(values).median for key, values in samples.items()}
    for mode in MODES:
        docker = medians["docker", mode]
        rows = [summary_row(f"{e.name} run --rm {MODE_LABELS[mode]}", samples[e.name, mode],
                            docker) for e in [*engines, via]]
        print_table(f"1. end to end, CLI `run --rm {IMAGE} true`, {MODE_LABELS[mode]}  "
                    "(ratio = median / docker median)", SUMMARY_HEADER, rows)
    print("\nrounds alternate engines and modes (the first case rotates each round); "
          f"{runs} counted rounds after 1 warm-up round.")
    for mode in MODES:
        wharf_s, docker_s = medians["wharf", mode], medians["docker", mode]
        met = "met" if wharf_s <= GOAL_RATIO * docker_s else "NOT met"
        print(f"goal wharf <= {GOAL_RATIO}x docker, {MODE_LABELS[mode]}: wharf {ms(wharf_s)} ms / "
              f"docker {ms(docker_s)} ms = {wharf_s / docker_s:.2f}x -> {met}")


# ---- main --------------------------------------------------------------------------------------

def bench(args: argparse.Namespace, base: Path) -> None:
    with ExitStack() as stack:
        daemon, engines = stack.enter_context(contenders(args, base, stack))
        memory = Memory(idle_cold=vm_rss(daemon.process.pid))
        end_to_end_section(engines, args.runs)
        startup_section(engines[0], base, IMAGE, args.runs)
        wharf_create_exit = daemon_section(engines, IMAGE, args.runs)
        floor_section(base / "probe", args.runs, wharf_create_exit)
        concurrency_section(engines, IMAGE, args, base, memory, daemon.process.pid)
        memory_section(memory, args.starts)


def main() -> int:
    args = parse_args()
    args.work_dir.mkdir(parents=True, exist_ok=True)
    base = Path(tempfile.mkdtemp(prefix="wharf-bench-run.", dir=args.work_dir))
    status = 0
    try:
        print("# bench/run_latency.py\n\n" + "\n".join(machine_lines(base)))
        print(f"wharf:    packages {' '.join(sorted(wharf.__path__))}, repo {git_head()}")
        print(f"runs:     {args.runs} per latency case (after 1 warm-up), {args.starts} "
              f"concurrent starts, {args.lifecycles} concurrent lifecycles; image {IMAGE}")
        bench(args, base)
    except (CommandFailed, RuntimeError, OSError) as exc:
        print(f"\nbench/run_latency.py: FAILED: {exc}", file=sys.stderr)
        status = 1
    finally:
        leftovers(base)
        shutil.rmtree(base, ignore_errors=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
