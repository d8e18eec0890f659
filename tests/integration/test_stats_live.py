"""``wharf stats`` against a real wharfd: the daemon's stats stream gives a sample a second with
the CPU and memory fields set; the CLI draws frames from it (on a terminal each one erases the
screen first), follows containers that start while it runs and drops those that stop.

Containers are busybox ``sleep``; every one is removed at the end (``busybox_daemon``).
"""

from __future__ import annotations

import json
import os
import pty
import queue
import re
import select
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest

from tests.daemon_fixture import Daemon, UnixConnection, busybox_daemon, wharf_cli
from tests.integration.conftest import SeededRegistry

pytestmark = [pytest.mark.integration]
WHARF = str(Path(sys.executable).parent / "wharf")
ROW = re.compile(r"(?P<name>\S+) (?P<cpu>\d+\.\d\d)% (?P<mem>[\d.]+[KMG]?i?B) / "
                 r"(?P<limit>[\d.]+[KMG]?i?B) (?P<pids>\d+)")


@pytest.fixture(scope="module")
def daemon(seeded_registry: SeededRegistry, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[Daemon]:
    with busybox_daemon(tmp_path_factory.mktemp("wharfd-stats"),
                        seeded_registry.registry.url) as running:
        yield running


def _env(daemon: Daemon) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WHARF_", "DOCKER_"))}
    return {**env, "WHARF_CONFIG": str(daemon.data_root.parent / "client")}


def _lines(stream: IO[str]) -> queue.Queue[str]:
    """The stream's lines as they come (a reader thread), so a test can wait with a timeout."""
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        for line in stream:
            lines.put(line.rstrip("\n"))
    threading.Thread(target=pump, daemon=True).start()
    return lines


def _until(lines: queue.Queue[str], wanted: re.Pattern[str] | str, timeout: float = 20) -> str:
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        try:
            line = lines.get(timeout=left)
        except queue.Empty:
            break
        if re.fullmatch(wanted, line):
            return line
    raise AssertionError(f"no line like {wanted!r} within {timeout}s")


def test_the_daemon_streams_a_sample_a_second(daemon: Daemon) -> None:
    wharf_cli(daemon, "run", "-d", "--name", "sampled", "busybox", "sleep", "300")
    conn = UnixConnection(daemon.socket, timeout=20)
    try:
        conn.request("GET", "/v1.41/containers/sampled/stats?stream=1")
        reply = conn.getresponse()
        assert reply.status == 200
        first, second = json.loads(reply.readline()), json.loads(reply.readline())
    finally:
        conn.close()
    for sample in (first, second):
        assert sample["name"] == "/sampled" and sample["pids_stats"]["current"] == 1
        assert sample["memory_stats"]["usage"] > 0 and sample["memory_stats"]["limit"] > 0
        assert sample["cpu_stats"]["system_cpu_usage"] > \
            sample["precpu_stats"]["system_cpu_usage"]
        assert sample["cpu_stats"]["online_cpus"] >= 1
    assert second["read"] > first["read"]  # a new sample, not the first one again
    wharf_cli(daemon, "rm", "-f", "sampled")


def test_stats_follows_a_container_and_the_frames_keep_coming(daemon: Daemon) -> None:
    wharf_cli(daemon, "run", "-d", "--name", "watched", "busybox", "sleep", "300")
    proc = subprocess.Popen([WHARF, "-H", daemon.host, "stats", "--format",
                             "{{.Name}} {{.CPUPerc}} {{.MemUsage}} {{.PIDs}}", "watched"],
                            env=_env(daemon), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout is not None
        lines = _lines(proc.stdout)
        started = time.monotonic()
        rows = [ROW.fullmatch(_until(lines, ROW)) for _ in range(3)]
        assert time.monotonic() - started > 1.5  # a frame a second, not all at once
        assert all(r is not None and r["name"] == "watched" and r["pids"] == "1" for r in rows)
        assert proc.poll() is None  # still streaming
    finally:
        proc.kill()
        proc.wait()
    no_stream = wharf_cli(daemon, "stats", "--no-stream", "watched").stdout.splitlines()
    assert no_stream[0].split()[:4] == ["CONTAINER", "ID", "NAME", "CPU"]
    assert no_stream[1].split()[1] == "watched" and len(no_stream) == 2
    wharf_cli(daemon, "rm", "-f", "watched")


def test_without_names_containers_appear_and_leave(daemon: Daemon) -> None:
    wharf_cli(daemon, "run", "-d", "--name", "first", "busybox", "sleep", "300")
    proc = subprocess.Popen([WHARF, "-H", daemon.host, "stats", "--format",
                             "table {{.Name}}\t{{.PIDs}}"], env=_env(daemon),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        lines = _lines(proc.stdout)
        _until(lines, r"first\s+1")
        wharf_cli(daemon, "run", "-d", "--name", "second", "busybox", "sleep", "300")
        _until(lines, r"second\s+1")
        wharf_cli(daemon, "rm", "-f", "second")
        # a frame that lists first and not second: read frames until one ends without it
        deadline = time.monotonic() + 20
        frame: list[str] = []
        while time.monotonic() < deadline:
            line = lines.get(timeout=10)
            if line.startswith("NAME"):
                if frame and not any(f.startswith("second") for f in frame):
                    break
                frame = []
            else:
                frame.append(line.split()[0])
        assert frame == ["first"], frame
    finally:
        proc.kill()
        proc.wait()
    wharf_cli(daemon, "rm", "-f", "first")


def test_on_a_terminal_each_frame_erases_the_screen(daemon: Daemon) -> None:
    wharf_cli(daemon, "run", "-d", "--name", "onscreen", "busybox", "sleep", "300")
    main, tty = pty.openpty()
    proc = subprocess.Popen([WHARF, "-H", daemon.host, "stats", "onscreen"], env=_env(daemon),
                            stdin=subprocess.DEVNULL, stdout=tty, stderr=subprocess.PIPE)
    os.close(tty)
    seen = b""
    try:
        deadline = time.monotonic() + 20
        while seen.count(b"\x1b[2J\x1b[H") < 3 and time.monotonic() < deadline:
            ready, _, _ = select.select([main], [], [], 1)
            if ready:
                seen += os.read(main, 65536)
    finally:
        proc.kill()
        proc.wait()
        os.close(main)
    frames = seen.decode().split("\x1b[2J\x1b[H")[1:]
    assert len(frames) >= 3, seen
    for frame in frames[:2]:  # each frame is the whole table again
        header, row = frame.strip("\r\n").splitlines()[:2]
        assert header.startswith("CONTAINER ID") and row.split()[1] == "onscreen"
    wharf_cli(daemon, "rm", "-f", "onscreen")
