"""Per-container network set-up and teardown: wharf's no-fork netlink path vs the `ip` CLI.

    .venv/bin/python bench/network.py [--runs 30]

Needs root. Everything is made under test-only names (bridge ``wbench0``, 10.123.250.0/24,
chains ``WBENCH*``) and removed at the end. Prints figures only (medians/p90 within this run).
Rows:
- wharf set-up: ``create_netns`` + ``attach_endpoint`` (netns, veth, bridge, address, route, lo);
- wharf teardown: ``detach_endpoint`` + ``delete_netns`` (the part that can run in background);
- the same with 7 ``ip`` commands (the reference measured in the same run);
- publishing one port (iptables-save + iptables-restore per table) and removing it;
- ``import pyroute2`` in a fresh interpreter, beside ``python -c pass``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `bench` from any cwd

from bench.common import (
    SUMMARY_HEADER,
    machine_lines,
    print_table,
    run_timed,
    summary_row,
    timed,
)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
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


if __name__ == "__main__":
    main()
