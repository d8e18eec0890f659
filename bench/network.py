"""Per-container network set-up and teardown: wharf's no-fork netlink path vs the `ip` CLI.

    .venv/bin/python bench/network.py [--runs 30]

Needs root. Everything is made under test-only names (bridge ``wbench0``, 10.123.250.0/24,
chains ``WBENCH*``) and removed at the end. Prints figures only (medians/p90 within this run).
Rows:
- wharf set-up: ``create_netns`` + ``attach_endpoint`` (netns, veth, bridge, address, route, lo);
- wharf teardown: ``detach_endpoint`` + ``delete_netns`` (the part that can run in background);
- the same with 7 ``ip`` commands (the reference measured in the same run);
- publishing one port (iptables-save + iptables-restore per table) and removing it;
- ``import pyroute2`` in a fresh interpreter, beside ``python -c pass``;
- ``run --rm busybox true`` through a real wharfd (its own bridge ``wbrun0``-like name and
  10.123.251.0/24, the registry ``--registry`` as a mirror): ``--network none`` vs the default
  bridge vs ``-p 127.0.0.1::80``, round-robin in the same run, through the wharf CLI and
  through the API (create, wait, start, wait for removal); docker/podman rows when their
  engines run here, else "absent" with the reason.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `bench` from any cwd

from bench.common import (
    SUMMARY_HEADER,
    VENV_BIN,
    CommandFailed,
    machine_lines,
    print_table,
    run_timed,
    summary_row,
    timed,
)
from tests.daemon_fixture import Daemon, UnixConnection, running_daemon
from wharf.daemon.core.network import netlink
from wharf.daemon.core.network.portmap import BridgeNet, PortMapper
from wharf.daemon.core.network.ports import PortBinding

BRIDGE = "wbench0"
SUBNET = "10.123.250"
CID = "b" * 64


def wharf_setup(path: Path, i: int) -> None:
    netlink.create_netns(path)
    netlink.attach_endpoint(path, BRIDGE, f"wbv{i}", f"{SUBNET}.{2 + i % 200}/24",
                            f"{SUBNET}.1", f"02:42:0a:7b:fa:{i % 200:02x}")


def wharf_teardown(path: Path, i: int) -> None:
    netlink.detach_endpoint(f"wbv{i}")
    netlink.delete_netns(path)


def ip_setup(name: str, i: int) -> None:
    ip = f"{SUBNET}.{2 + i % 200}/24"
    for argv in (
        ["ip", "netns", "add", name],
        ["ip", "link", "add", f"wbi{i}", "type", "veth", "peer", "name", f"wbp{i}"],
        ["ip", "link", "set", f"wbp{i}", "netns", name, "name", "eth0"],
        ["ip", "link", "set", f"wbi{i}", "master", BRIDGE, "up"],
        ["ip", "-n", name, "addr", "add", ip, "dev", "eth0"],
        ["ip", "-n", name, "link", "set", "eth0", "up"],
        ["ip", "-n", name, "route", "add", "default", "via", f"{SUBNET}.1"],
    ):
        run_timed(argv)


def ip_teardown(name: str, i: int) -> None:
    run_timed(["ip", "link", "del", f"wbi{i}"])
    run_timed(["ip", "netns", "del", name])


RUN_CASES = (("--network none", ["--network", "none"]), ("default bridge", []),
             ("bridge + -p 127.0.0.1::80", ["-p", "127.0.0.1::80"]))


def api_run(daemon: Daemon, mode: list[str]) -> None:
    """create (AutoRemove) → wait?condition=removed (headers) → start → the wait's body."""
    host: dict[str, object] = {"AutoRemove": True}
    if mode[:1] == ["--network"]:
        host["NetworkMode"] = mode[1]
    elif mode[:1] == ["-p"]:
        host["PortBindings"] = {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}]}
    body = json.dumps({"Image": "busybox", "Cmd": ["true"], "HostConfig": host}).encode()
    conn, waiter = UnixConnection(daemon.socket), UnixConnection(daemon.socket)
    try:
        conn.request("POST", "/containers/create", body, {"Content-Type": "application/json"})
        reply = conn.getresponse()
        created = json.loads(reply.read())
        if reply.status != 201:
            raise CommandFailed(f"create: {reply.status} {created}")
        cid = created["Id"]
        waiter.request("POST", f"/containers/{cid}/wait?condition=removed")
        conn.request("POST", f"/containers/{cid}/start")
        started = conn.getresponse()
        started.read()
        if started.status != 204:
            raise CommandFailed(f"start: {started.status}")
        waiter.getresponse().read()
    finally:
        conn.close()
        waiter.close()


def run_section(work: Path, registry: str, runs: int) -> None:
    """``run --rm`` latency: --network none vs the default bridge, same daemon, same run."""
    env = {"WHARF_BRIDGE": "wbrun0", "WHARF_BRIDGE_SUBNET": "10.123.251.0/24"}
    wharf = str(VENV_BIN / "wharf")
    with running_daemon(work / "daemon", mirrors=[f"http://{registry}"], env=env) as daemon:
        daemon.request("POST", "/images/create?fromImage=busybox&tag=latest")
        cli: dict[str, list[float]] = {label: [] for label, _ in RUN_CASES}
        api: dict[str, list[float]] = {label: [] for label, _ in RUN_CASES}
        clean_env = {k: v for k, v in os.environ.items() if not k.startswith("WHARF_")}
        for _label, flags in RUN_CASES:  # warm-up
            run_timed([wharf, "-H", daemon.host, "run", "--rm", *flags, "busybox", "true"],
                      env=clean_env)
        for _ in range(runs):
            for label, flags in RUN_CASES:
                cli[label].append(run_timed([wharf, "-H", daemon.host, "run", "--rm", *flags,
                                             "busybox", "true"], env=clean_env))
                api[label].append(timed(lambda f=flags: api_run(daemon, f)))
        ref = statistics.median(api["--network none"])
        rows = [summary_row(f"API {label}", values, ref) for label, values in api.items()]
        rows += [summary_row(f"wharf CLI {label}", values, ref) for label, values in cli.items()]
        print_table("run --rm busybox true through wharfd (ratio: median / API --network none "
                    "median)", SUMMARY_HEADER, rows)
    engines = (("docker run --rm (dockerd, bridge)",
                ["docker", "-H", "unix:///var/run/docker.sock", "info"]),
               ("podman run --rm (bridge)", ["podman", "info"]))
    for label, check in engines:
        print(f"{label}: absent ({engine_check(check) or 'present but not measured here'})")


def engine_check(argv: list[str]) -> str | None:
    """None when ``argv`` (an engine's info command) succeeds, else why it did not."""
    if shutil.which(argv[0]) is None:
        return f"shutil.which({argv[0]!r}) is None"
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=20, check=False)
    if proc.returncode != 0:
        lines = (proc.stderr or proc.stdout).strip().splitlines() or ["(no output)"]
        return f"`{' '.join(argv)}` exited {proc.returncode}: {lines[-1][:160]}"
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--registry", default="127.0.0.1:5000", help="plain-HTTP registry "
                        "with library/busybox:latest (for the run --rm rows)")
    parser.add_argument("--skip-run", action="store_true", help="no wharfd run --rm rows")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/network.py needs root (netns, links, iptables)")
    work = Path(tempfile.mkdtemp(prefix="wharf-bench-net-"))
    for line in machine_lines(work):
        print(line)
    imports = [run_timed([sys.executable, "-c", "import pyroute2"]) for _ in range(5)]
    bare = [run_timed([sys.executable, "-c", "pass"]) for _ in range(5)]
    netlink.preload()
    mapper = PortMapper(prefix="WBENCH")
    samples: dict[str, list[float]] = {k: [] for k in (
        "wharf set-up", "wharf teardown", "ip CLI set-up (7 execs)", "ip CLI teardown (2 execs)",
        "publish 1 port", "unpublish")}
    try:
        netlink.ensure_bridge(BRIDGE, f"{SUBNET}.1/24")
        mapper.ensure_chains()
        mapper.add_network(BridgeNet(BRIDGE, f"{SUBNET}.0/24"))
        for i in range(args.runs):
            path = work / f"ns{i}"
            samples["wharf set-up"].append(timed(lambda p=path, n=i: wharf_setup(p, n)))
            binding = PortBinding(CID, "127.0.0.1", 30000 + i, "tcp", f"{SUBNET}.2", 80, BRIDGE)
            samples["publish 1 port"].append(timed(lambda b=binding: mapper.add(CID, [b])))
            samples["unpublish"].append(timed(lambda: mapper.remove(CID)))
            samples["wharf teardown"].append(timed(lambda p=path, n=i: wharf_teardown(p, n)))
            name = f"wbench{i}"
            samples["ip CLI set-up (7 execs)"].append(timed(lambda s=name, n=i: ip_setup(s, n)))
            samples["ip CLI teardown (2 execs)"].append(
                timed(lambda s=name, n=i: ip_teardown(s, n)))
    finally:
        mapper.remove(CID)
        mapper.remove_network(BRIDGE)
        mapper.remove_chains()
        for i in range(args.runs):
            netlink.detach_endpoint(f"wbv{i}")
            netlink.detach_endpoint(f"wbi{i}")
            netlink.delete_netns(work / f"ns{i}")
            subprocess.run(["ip", "netns", "del", f"wbench{i}"], capture_output=True, check=False)
        netlink.delete_bridge(BRIDGE)
    ref_setup = statistics.median(samples["ip CLI set-up (7 execs)"])
    rows = [summary_row(label, values, ref_setup) for label, values in samples.items()]
    print_table("per-container network (ratio: median / ip CLI set-up median)", SUMMARY_HEADER,
                rows)
    print_table("interpreter start", SUMMARY_HEADER, [
        summary_row("python -c pass", bare, None),
        summary_row("python -c 'import pyroute2'", imports, None),
    ])
    if not args.skip_run:
        run_section(work, args.registry, args.runs)


if __name__ == "__main__":
    main()
