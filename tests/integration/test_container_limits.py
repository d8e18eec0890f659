"""Container options through the Docker API and the docker CLI: a bad limit fails ``create``
with 400 in dockerd's words and records nothing; good ones reach the container's cgroup."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.daemon_fixture import Daemon, busybox_daemon, running_daemon
from tests.integration.conftest import SeededRegistry

pytestmark = [pytest.mark.integration]
DOCKER = shutil.which("docker")
MiB = 1 << 20
CPUS = os.cpu_count() or 1


@pytest.fixture(scope="module")
def daemon(seeded_registry: SeededRegistry, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[Daemon]:
    base = tmp_path_factory.mktemp("wharfd-limits")
    with busybox_daemon(base, seeded_registry.registry.url) as running:
        yield running


def docker(daemon: Daemon, *args: str) -> subprocess.CompletedProcess[str]:
    if DOCKER is None:
        pytest.skip("the docker CLI is not installed")
    env = {**os.environ, "DOCKER_CONFIG": str(daemon.run_dir / "docker-config")}
    return subprocess.run([DOCKER, "-H", daemon.host, *args], capture_output=True, text=True,
                          timeout=60, check=False, env=env)


def create(daemon: Daemon, host: dict[str, object], name: str) -> tuple[int, dict[str, str]]:
    body = json.dumps({"Image": "busybox", "Cmd": ["true"], "HostConfig": host}).encode()
    status, reply = daemon.request("POST", f"/containers/create?name={name}", body,
                                   {"Content-Type": "application/json"})
    return status, json.loads(reply)


def listed(daemon: Daemon) -> list[str]:
    return [n for c in json.loads(daemon.request("GET", "/containers/json?all=1")[1])
            for n in c["Names"]]


@pytest.mark.parametrize(("host", "message"), [
    ({"Memory": MiB}, "Minimum memory limit allowed is 6MB"),
    ({"Memory": 64 * MiB, "MemorySwap": 32 * MiB},
     "Minimum memoryswap limit should be larger than memory limit, see usage"),
    ({"MemorySwap": 64 * MiB},
     "You should always set the Memory limit when using Memoryswap limit, see usage"),
    ({"NanoCpus": (CPUS + 1) * 10**9},
     f"Range of CPUs is from 0.01 to {CPUS}.00, as there are only {CPUS} CPUs available"),
    ({"Devices": [{"PathOnHost": "/dev/no-such-device", "PathInContainer": "/dev/x",
                   "CgroupPermissions": "rwm"}]},
     'error gathering device information while adding custom device "/dev/no-such-device": '
     "no such file or directory"),
    ({"RestartPolicy": {"Name": "always", "MaximumRetryCount": 3}},
     "invalid restart policy: maximum retry count can only be used with 'on-failure'"),
])
def test_a_bad_value_fails_create_with_400_and_records_nothing(
        daemon: Daemon, host: dict[str, object], message: str) -> None:
    status, reply = create(daemon, host, "refused")
    assert (status, reply["message"]) == (400, message)
    assert "/refused" not in listed(daemon)


@pytest.mark.parametrize(("flags", "message"), [
    (["-m", "1m"], "Minimum memory limit allowed is 6MB"),
    (["-m", "64m", "--memory-swap", "32m"], "Minimum memoryswap limit should be larger"),
    (["--cpus", str(CPUS + 1)], f"as there are only {CPUS} CPUs available"),
])
def test_the_docker_cli_reports_the_refusal_of_create(daemon: Daemon, flags: list[str],
                                                      message: str) -> None:
    result = docker(daemon, "run", "--name", "refused-cli", *flags, "busybox", "true")
    assert result.returncode == 125 and message in result.stderr, result.stderr
    assert "/refused-cli" not in listed(daemon)


def _cgroup(script: str) -> str:
    """Inside the container: the value of the first of these files that exists."""
    return f"for f in {script}; do [ -e $f ] && {{ cat $f; break; }}; done"


def test_good_limits_reach_the_cgroup(daemon: Daemon) -> None:
    memory = _cgroup("/sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/memory.max")
    swap = _cgroup("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes "
                   "/sys/fs/cgroup/memory.swap.max")
    quota = _cgroup("/sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu,cpuacct/"
                    "cpu.cfs_quota_us /sys/fs/cgroup/cpu.max")
    result = docker(daemon, "run", "--rm", "-m", "64m", "--memory-swap", "96m", "--cpus", "0.5",
                    "--ulimit", "nofile=100:200", "--device", "/dev/null:/dev/mynull:rw",
                    "busybox", "sh", "-c",
                    f"{memory}; {swap}; {quota}; ulimit -n; ulimit -Hn; "
                    "ls -l /dev/mynull; echo x > /dev/mynull && echo writable")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.split("\n")
    assert lines[0] == str(64 * MiB), result.stdout
    # cgroup v1 counts memory+swap; v2's swap.max is the swap alone
    assert lines[1] in (str(96 * MiB), str(32 * MiB)), result.stdout
    assert lines[2] in ("50000", "50000 100000"), result.stdout
    assert lines[3:5] == ["100", "200"], result.stdout
    assert lines[5].startswith("c") and "1,   3" in lines[5], result.stdout
    assert lines[6] == "writable", result.stdout


def test_inspect_shows_the_host_config_as_sent(daemon: Daemon) -> None:
    status, reply = create(daemon, {"Memory": 64 * MiB, "NanoCpus": 5 * 10**8,
                                    "NetworkMode": "bridge",
                                    "RestartPolicy": {"Name": "on-failure",
                                                      "MaximumRetryCount": 2}}, "shown")
    assert status == 201, reply
    try:
        info = json.loads(daemon.request("GET", "/containers/shown/json")[1])
        host = info["HostConfig"]
        assert (host["Memory"], host["NanoCpus"], host["NetworkMode"]) == (
            64 * MiB, 5 * 10**8, "default")
        assert host["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 2}
        assert "MemorySwap" not in host  # not sent, not invented
    finally:
        daemon.request("DELETE", "/containers/shown?force=1")


def test_a_record_of_an_older_wharfd_starts_after_the_upgrade(
        seeded_registry: SeededRegistry, tmp_path: Path) -> None:
    script = _cgroup("/sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/memory.max")
    body = json.dumps({"Image": "busybox", "Cmd": ["sh", "-c", script],
                       "HostConfig": {"Memory": 64 * MiB}}).encode()
    with running_daemon(tmp_path, mirrors=[seeded_registry.registry.url]) as first:
        assert first.request("POST", "/images/create?fromImage=busybox&tag=latest")[0] == 200
        status, _ = first.request("POST", "/containers/create?name=legacy", body,
                                  {"Content-Type": "application/json"})
        assert status == 201
    # the record as the wharfd before typed options wrote it: no "options"
    with sqlite3.connect(tmp_path / "data" / "state.db") as db:
        (text,) = db.execute("SELECT record FROM containers WHERE name = 'legacy'").fetchone()
        record = json.loads(text)
        del record["options"]
        db.execute("UPDATE containers SET record = ? WHERE name = 'legacy'",
                   (json.dumps(record),))
    with running_daemon(tmp_path, mirrors=[seeded_registry.registry.url]) as upgraded:
        assert "/legacy" in listed(upgraded)
        started = docker(upgraded, "start", "-a", "legacy")
        assert (started.returncode, started.stdout) == (0, f"{64 * MiB}\n"), started.stderr
        docker(upgraded, "rm", "-f", "legacy")
