"""Containers end to end: the real docker CLI, docker-py and the wharf CLI against one wharfd.

Images come from the session registry (busybox built by umoci, pushed by skopeo) through the
daemon's docker.io mirror. Every test removes the containers it made.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.daemon_fixture import Daemon, busybox_daemon, running_daemon
from tests.integration.conftest import SeededRegistry
from tests.integration.registry_fixture import push_layout
from tests.layout import ROOT

pytestmark = [pytest.mark.integration]
DOCKER = shutil.which("docker")
WHARF = str(Path(sys.executable).parent / "wharf")


@pytest.fixture(scope="module")
def daemon(seeded_registry: SeededRegistry, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[Daemon]:
    hello = tmp_path_factory.mktemp("hello") / "oci"
    subprocess.run([str(ROOT / "infra/images/hello-world/build.sh"), str(hello)], check=True,
                   capture_output=True)
    push_layout(hello, "latest", seeded_registry.registry, "library/hello-world:latest")
    base = tmp_path_factory.mktemp("wharfd-containers")
    with busybox_daemon(base, seeded_registry.registry.url) as running:
        yield running


def docker(daemon: Daemon, *args: str, timeout: float = 60, stdin: str | None = None
           ) -> subprocess.CompletedProcess[str]:
    if DOCKER is None:
        pytest.skip("the docker CLI is not installed")
    env = {**os.environ, "DOCKER_CONFIG": str(daemon.run_dir / "docker-config")}
    return subprocess.run([DOCKER, "-H", daemon.host, *args], capture_output=True, text=True,
                          timeout=timeout, check=False, env=env, input=stdin)


def wharf(daemon: Daemon, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WHARF_")}
    env["WHARF_CONFIG"] = str(daemon.run_dir / "wharf-config")
    return subprocess.run([WHARF, "-H", daemon.host, *args], capture_output=True, text=True,
                          timeout=timeout, check=False, env=env)


def test_docker_run_rm_echo(daemon: Daemon) -> None:
    result = docker(daemon, "run", "--rm", "busybox", "echo", "hi")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "hi\n"
    names = docker(daemon, "ps", "-a", "--format", "{{.Names}}").stdout
    assert names.strip() == "" or "busybox" not in names


def test_exit_codes_like_docker(daemon: Daemon) -> None:
    result = docker(daemon, "run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert (result.returncode, result.stdout, result.stderr) == (3, "out\n", "err\n")
    missing = docker(daemon, "run", "--rm", "busybox", "no-such-command")
    assert missing.returncode == 127, missing.stderr
    assert "executable file not found" in missing.stderr


def test_stdin_reaches_the_container(daemon: Daemon) -> None:
    result = docker(daemon, "run", "--rm", "-i", "busybox", "tr", "a-z", "A-Z", stdin="piped in\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "PIPED IN\n"


def test_detached_lifecycle(daemon: Daemon) -> None:
    started = docker(daemon, "run", "-d", "--name", "lifecycle", "busybox",
                     "sh", "-c", "echo ready; trap 'exit 0' TERM; while true; do sleep 1; done")
    assert started.returncode == 0, started.stderr
    cid = started.stdout.strip()
    assert len(cid) == 64
    try:
        ps = docker(daemon, "ps").stdout
        assert "lifecycle" in ps and "Up " in ps
        time.sleep(0.3)
        assert docker(daemon, "logs", "lifecycle").stdout == "ready\n"
        inspect = json.loads(docker(daemon, "inspect", "lifecycle").stdout)[0]
        assert inspect["State"]["Running"] is True and inspect["Config"]["Hostname"] == cid[:12]
        top = docker(daemon, "top", "lifecycle")
        assert top.returncode == 0 and "PID" in top.stdout, top.stderr
        assert docker(daemon, "stop", "-t", "5", "lifecycle").returncode == 0
        state = json.loads(docker(daemon, "inspect", "lifecycle").stdout)[0]["State"]
        assert (state["Status"], state["ExitCode"]) == ("exited", 0)
        assert "Exited (0)" in docker(daemon, "ps", "-a").stdout
        assert docker(daemon, "start", "lifecycle").returncode == 0
        assert docker(daemon, "kill", "lifecycle").returncode == 0
        assert docker(daemon, "wait", "lifecycle").stdout.strip() == "137"
        refused = docker(daemon, "exec", "lifecycle", "true")
        assert refused.returncode != 0 and "is not running" in refused.stderr
    finally:
        assert docker(daemon, "rm", "-f", "lifecycle").returncode == 0
    assert "No such object: lifecycle" in docker(daemon, "inspect", "lifecycle").stderr


def test_rm_of_a_running_container_needs_force(daemon: Daemon) -> None:
    cid = docker(daemon, "run", "-d", "busybox", "sleep", "30").stdout.strip()
    try:
        refused = docker(daemon, "rm", cid)
        assert refused.returncode == 1 and "Stop the container before" in refused.stderr
        conflict = docker(daemon, "run", "-d", "--name", "twice", "busybox", "true")
        again = docker(daemon, "create", "--name", "twice", "busybox", "true")
        assert conflict.returncode == 0 and again.returncode != 0
        assert "is already in use" in again.stderr
    finally:
        docker(daemon, "rm", "-f", cid, "twice")


def test_isolation_seen_from_inside(daemon: Daemon) -> None:
    script = ("echo pid1=$(cat /proc/1/cmdline | tr '\\0' ' '); hostname; "
              "grep -E '^(Seccomp|CapEff):' /proc/self/status; ls /sys/class/net; "
              "cat /proc/timer_list | wc -c; "
              "(echo 1 > /proc/sys/kernel/ostype) 2>/dev/null && echo sys-writable || "
              "echo sys-readonly; grep -c overlay /proc/mounts")
    result = docker(daemon, "run", "--rm", "busybox", "sh", "-c", script)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.split("\n")
    assert lines[0].startswith("pid1=sh -c")
    assert len(lines[1]) == 12  # hostname = short ID
    assert "Seccomp:\t2" in result.stdout
    assert "CapEff:\t00000000a80425fb" in result.stdout  # Docker's 14 default capabilities
    # its own network namespace: lo and the default bridge's eth0, none of the host's links
    host_only = set(os.listdir("/sys/class/net")) - {"lo", "eth0"}
    assert "lo" in lines and "eth0" in lines and not host_only & set(lines)
    assert "sys-readonly" in result.stdout
    assert "\n0\n" in result.stdout  # /proc/timer_list masked


def test_limits_are_enforced(daemon: Daemon) -> None:
    pids = docker(daemon, "run", "--rm", "--pids-limit", "10", "busybox", "sh", "-c",
                  "for i in $(seq 20); do sleep 5 & done 2>&1; wait")
    assert "can't fork" in pids.stdout + pids.stderr
    oom = docker(daemon, "run", "--name", "oom", "-m", "32m", "busybox", "sh", "-c",
                 "tail /dev/zero")
    try:
        assert oom.returncode == 137
        state = json.loads(docker(daemon, "inspect", "oom").stdout)[0]["State"]
        assert state["OOMKilled"] is True
    finally:
        docker(daemon, "rm", "-f", "oom")


def test_docker_sdk_run_list_logs_stop_remove(daemon: Daemon) -> None:
    docker_sdk = pytest.importorskip("docker")
    client = docker_sdk.DockerClient(base_url=daemon.host)
    try:
        assert client.containers.run("busybox", "echo hi", remove=True) == b"hi\n"
        container = client.containers.run("busybox", "sh -c 'echo up; sleep 30'", detach=True)
        try:
            assert container.id in [c.id for c in client.containers.list()]
            time.sleep(0.3)
            assert container.logs() == b"up\n"
            container.stop(timeout=1)
            container.reload()
            assert container.status == "exited"
        finally:
            container.remove(force=True)
    finally:
        client.close()


def test_wharf_cli_run_hello_world_and_ls(daemon: Daemon) -> None:
    status, _ = daemon.request("POST", "/images/create?fromImage=hello-world&tag=latest")
    assert status == 200
    first = wharf(daemon, "container", "run", "hello-world")
    assert first.returncode == 0, first.stderr
    assert "Hello from wharf!" in first.stdout
    second = wharf(daemon, "run", "hello-world")
    assert second.returncode == 0
    listing = wharf(daemon, "container", "ls", "-a", "--format", "{{.ID}} {{.Names}}").stdout
    rows = [line.split() for line in listing.splitlines()]
    assert len({r[0] for r in rows}) == len(rows) >= 2
    assert wharf(daemon, "container", "prune", "-f").returncode == 0


def test_events_record_the_lifecycle(daemon: Daemon) -> None:
    since = str(time.time() - 1)
    docker(daemon, "run", "--rm", "--name", "evented", "busybox", "true")
    until = str(time.time() + 1)
    out = docker(daemon, "events", "--since", since, "--until", until,
                 "--filter", "container=evented", "--format", "{{.Action}}").stdout
    assert out.split() == ["create", "start", "die", "destroy"]


@pytest.mark.slow
def test_live_restore_after_kill_9(seeded_registry: SeededRegistry, tmp_path: Path) -> None:
    with running_daemon(tmp_path / "lr", mirrors=[seeded_registry.registry.url]) as first:
        first.request("POST", "/images/create?fromImage=busybox&tag=latest")
        ids = []
        for i in range(20):
            cid = docker(first, "run", "-d", "busybox", "sh", "-c",
                         f"i=0; while true; do echo {i}-$i; i=$((i+1)); sleep 0.2; done"
                         ).stdout.strip()
            ids.append(cid)
        short = docker(first, "run", "-d", "busybox", "sh", "-c", "sleep 1; exit 7").stdout.strip()
        first.process.send_signal(signal.SIGKILL)
        first.process.wait()
        time.sleep(2)  # the short one exits while no daemon watches
        with running_daemon(tmp_path / "lr", mirrors=[seeded_registry.registry.url]) as second:
            for cid in ids:
                state = json.loads(docker(second, "inspect", cid).stdout)[0]["State"]
                assert state["Running"] is True, cid
            exited = json.loads(docker(second, "inspect", short).stdout)[0]["State"]
            assert (exited["Status"], exited["ExitCode"]) == ("exited", 7)
            with pytest.raises(subprocess.TimeoutExpired) as attached:
                docker(second, "attach", "--no-stdin", ids[1], timeout=1.5)
            live = attached.value.stdout or b""
            assert b"1-" in (live if isinstance(live, bytes) else live.encode())  # attachable
            lines = docker(second, "logs", ids[0]).stdout.split()
            numbers = [int(line.split("-")[1]) for line in lines]
            assert numbers == list(range(len(numbers))) and len(numbers) >= 10  # none lost
            for cid in [*ids, short]:
                assert docker(second, "rm", "-f", cid).returncode == 0


def _on_a_pty(argv: list[str], lines: list[bytes], timeout: float = 20) -> tuple[int, bytes]:
    """Run ``argv`` with a pseudo-terminal as its stdio, typing ``lines`` one by one."""
    import pty  # noqa: PLC0415
    import select  # noqa: PLC0415

    master, slave = pty.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith("WHARF_")}
    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, close_fds=True,
                            start_new_session=True, env={**env, "TERM": "xterm"})
    os.close(slave)
    output, deadline, pending = b"", time.monotonic() + timeout, list(lines)
    next_line = time.monotonic() + 1.0
    while proc.poll() is None and time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.1)
        if ready:
            try:
                output += os.read(master, 65536)
            except OSError:
                break
        if pending and time.monotonic() >= next_line:
            os.write(master, pending.pop(0))
            next_line = time.monotonic() + 0.7
    if proc.poll() is None:
        proc.kill()
    code = proc.wait()
    os.close(master)
    return code, output


@pytest.mark.parametrize("client", ["docker", "wharf"])
def test_run_it_gives_a_real_shell_on_a_tty(daemon: Daemon, client: str) -> None:
    binary = DOCKER if client == "docker" else WHARF
    if binary is None:
        pytest.skip("the docker CLI is not installed")
    code, output = _on_a_pty(
        [binary, "-H", daemon.host, "container", "run", "-it", "--rm", "busybox", "/bin/sh"],
        [b"echo tty-$((6*7)); tty\n", b"exit 4\n"])
    text = output.replace(b"\r", b"").decode(errors="replace")
    assert code == 4, text
    assert "tty-42" in text and "/dev/pts/0" in text


def test_exec_it_on_a_tty(daemon: Daemon) -> None:
    if DOCKER is None:
        pytest.skip("the docker CLI is not installed")
    cid = docker(daemon, "run", "-d", "busybox", "sleep", "60").stdout.strip()
    try:
        code, output = _on_a_pty([DOCKER, "-H", daemon.host, "exec", "-it", cid, "sh"],
                                 [b"tty; exit 6\n"])
        assert code == 6 and b"/dev/pts/" in output, output
        piped = docker(daemon, "exec", "-e", "FOO=bar", "-w", "/etc", cid, "sh", "-c",
                       "echo $FOO; pwd; exit 5")
        assert (piped.returncode, piped.stdout) == (5, "bar\n/etc\n")
        missing = docker(daemon, "exec", cid, "nope")
        assert missing.returncode == 127 and "executable file not found" in missing.stdout
    finally:
        docker(daemon, "rm", "-f", cid)


def test_wharf_cli_container_walkthrough(daemon: Daemon) -> None:
    ls = wharf(daemon, "container", "run", "busybox", "ls", "-la")
    assert ls.returncode == 0 and "bin" in ls.stdout
    quiet = wharf(daemon, "container", "run", "busybox", "/bin/sh")  # no stdin: exits at once
    assert quiet.returncode == 0
    cid = wharf(daemon, "run", "-d", "busybox", "sleep", "30").stdout.strip()
    try:
        assert cid in wharf(daemon, "ps", "-q", "--no-trunc").stdout
        logs = wharf(daemon, "exec", cid, "sh", "-c", "echo in-exec")
        assert logs.stdout == "in-exec\n"
        assert wharf(daemon, "stop", "-t", "1", cid).returncode == 0
        status = wharf(daemon, "ps", "-a", "--filter", f"id={cid}", "--format", "{{.Status}}")
        assert status.stdout.startswith("Exited (")
    finally:
        wharf(daemon, "rm", "-f", cid)


def test_nothing_is_left_after_rm_or_a_failed_start(daemon: Daemon) -> None:
    cid = docker(daemon, "run", "-d", "busybox", "sleep", "30").stdout.strip()
    failed = docker(daemon, "create", "busybox", "no-such-binary").stdout.strip()
    assert docker(daemon, "start", failed).returncode != 0
    for container in (cid, failed):
        assert docker(daemon, "rm", "-f", container).returncode == 0
    for container in (cid, failed):
        assert not (daemon.data_root / "containers" / container).exists()
        assert container not in Path("/proc/mounts").read_text()
        assert not list(Path("/sys/fs/cgroup").glob(f"*/wharf/{container}"))
        conmons = subprocess.run(["pgrep", "-f", f"conmon.*{container}"], capture_output=True,
                                 text=True, check=False)
        assert conmons.stdout.strip() == "", f"conmon left for {container}"


def test_logs_follow_pause_rename_stats_and_sdk_exec(daemon: Daemon) -> None:
    cid = docker(daemon, "run", "-d", "--name", "chatty", "busybox", "sh", "-c",
                 "for i in 1 2 3; do echo line$i; sleep 0.3; done").stdout.strip()
    try:
        follow = docker(daemon, "logs", "-f", "-t", "chatty")
        lines = follow.stdout.splitlines()
        assert [line.split(" ", 1)[1] for line in lines] == ["line1", "line2", "line3"]
        assert lines[0][:4].isdigit() and "T" in lines[0].split(" ")[0]  # RFC 3339 stamps
        assert docker(daemon, "logs", "--tail", "1", "chatty").stdout == "line3\n"
        assert docker(daemon, "rename", "chatty", "quiet").returncode == 0
        assert json.loads(docker(daemon, "inspect", "quiet").stdout)[0]["Name"] == "/quiet"
    finally:
        docker(daemon, "rm", "-f", cid)
    docker_sdk = pytest.importorskip("docker")
    client = docker_sdk.DockerClient(base_url=daemon.host)
    container = client.containers.run("busybox", "sleep 30", detach=True)
    try:
        code, output = container.exec_run("sh -c 'echo from-exec; exit 3'")
        assert (code, output) == (3, b"from-exec\n")
        container.pause()
        container.reload()
        assert container.status == "paused"
        container.unpause()
        container.reload()
        assert container.status == "running"
        stats = docker(daemon, "stats", "--no-stream", "--format", "{{.Name}} {{.PIDs}}",
                       container.id)
        assert stats.returncode == 0 and stats.stdout.split()[1] == "1", stats.stderr
    finally:
        container.remove(force=True)
        client.close()


def test_runc_is_selectable_per_container(daemon: Daemon) -> None:
    result = docker(daemon, "run", "--rm", "--runtime", "runc", "busybox", "sh", "-c",
                    "grep Seccomp: /proc/self/status")
    assert result.returncode == 0, result.stderr
    assert "Seccomp:\t2" in result.stdout
    unknown = docker(daemon, "run", "--rm", "--runtime", "kata", "busybox", "true")
    assert unknown.returncode == 125 and "unknown or invalid runtime name" in unknown.stderr


def test_restart_policy_and_unknown_user(daemon: Daemon) -> None:
    cid = docker(daemon, "run", "-d", "--restart", "on-failure:2", "busybox", "sh", "-c",
                 "exit 1").stdout.strip()
    try:
        deadline = time.monotonic() + 15
        state: dict[str, object] = {}
        while time.monotonic() < deadline:
            info = json.loads(docker(daemon, "inspect", cid).stdout)[0]
            state = info["State"]
            if info["RestartCount"] == 2 and state["Status"] == "exited":
                break
            time.sleep(0.2)
        assert info["RestartCount"] == 2 and state["ExitCode"] == 1, info
    finally:
        docker(daemon, "rm", "-f", cid)
    nobody = docker(daemon, "run", "--rm", "--user", "no-such-user", "busybox", "true")
    assert nobody.returncode != 0
    assert "unable to find user no-such-user" in nobody.stderr
