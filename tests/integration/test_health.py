"""HEALTHCHECK for real: a wharfd with busybox from the session registry runs the checks as execs
in the containers; inspect, ps, the health filter and the events show them; they go on after a
daemon restart; ``--no-healthcheck`` turns off an image's check. When a Docker engine answers on
unix:///var/run/docker.sock, the same check there gives the same STATUS text and Health shape.
Intervals are 1 s to keep this short. Every test removes what it made."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import tarfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from tests.daemon_fixture import Daemon, busybox_daemon, running_daemon, wharf_cli
from tests.integration.conftest import SeededRegistry

pytestmark = [pytest.mark.integration]
DOCKER = shutil.which("docker")
DOCKER_ENGINE = ["-H", "unix:///var/run/docker.sock"]
SECOND = 10**9
CHECK = ("--health-cmd", "test -f /tmp/ok", "--health-interval", "1s", "--health-retries", "2")


@pytest.fixture(scope="module")
def daemon(seeded_registry: SeededRegistry, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[Daemon]:
    base = tmp_path_factory.mktemp("wharfd-health")
    with busybox_daemon(base, seeded_registry.registry.url) as running:
        yield running


@pytest.fixture
def made(daemon: Daemon) -> Iterator[list[str]]:
    """Containers and images to remove after the test (containers first)."""
    names: list[str] = []
    yield names
    for name in names:
        daemon.request("DELETE", f"/containers/{name}?force=1")
    for name in reversed(names):
        daemon.request("DELETE", f"/images/{quote(name, safe='')}?force=1")


def wharf(daemon: Daemon, *args: str) -> str:
    return wharf_cli(daemon, *args).stdout


def inspect(daemon: Daemon, cid: str) -> dict[str, Any]:
    status, body = daemon.request("GET", f"/containers/{cid}/json")
    assert status == 200, body
    return dict(json.loads(body))


def ps_status(daemon: Daemon, cid: str, *flags: str) -> str:
    return wharf(daemon, "ps", "-a", "--no-trunc", "--filter", f"id={cid}", *flags,
                 "--format", "{{.Status}}").strip()


def wait_health(daemon: Daemon, cid: str, status: str, timeout: float = 20) -> dict[str, Any]:
    deadline, state = time.monotonic() + timeout, {}
    while time.monotonic() < deadline:
        state = inspect(daemon, cid)["State"]
        if (state.get("Health") or {}).get("Status") == status:
            return dict(state["Health"])
        time.sleep(0.1)
    raise AssertionError(f"no {status} health: {state}")


def events(daemon: Daemon, cid: str, since: float) -> list[dict[str, Any]]:
    filters = quote(json.dumps({"container": [cid]}))
    _, body = daemon.request("GET", f"/events?since={since}&until={time.time() + 1}"
                                    f"&filters={filters}")
    return [json.loads(line) for line in body.decode().splitlines() if line.strip()]


def test_starting_unhealthy_then_healthy_in_inspect_ps_and_events(
        daemon: Daemon, made: list[str]) -> None:
    since = time.time() - 1
    cid = wharf(daemon, "run", "-d", *CHECK, "busybox", "sleep", "300").strip()
    made.append(cid)
    starting = inspect(daemon, cid)
    assert starting["Config"]["Healthcheck"] == {
        "Test": ["CMD-SHELL", "test -f /tmp/ok"], "Interval": SECOND, "Retries": 2}
    assert starting["State"]["Health"] == {"Status": "starting", "FailingStreak": 0, "Log": []}
    assert ps_status(daemon, cid).endswith("(health: starting)")
    unhealthy = wait_health(daemon, cid, "unhealthy", timeout=10)
    assert unhealthy["FailingStreak"] >= 2
    first = unhealthy["Log"][0]
    assert set(first) == {"Start", "End", "ExitCode", "Output"}
    assert (first["ExitCode"], first["Output"]) == (1, "")
    assert first["Start"] <= first["End"]
    assert re.fullmatch(r"Up .* \(unhealthy\)", ps_status(daemon, cid))
    listed = wharf(daemon, "ps", "-q", "--no-trunc", "--filter", "health=unhealthy").split()
    assert cid in listed
    wharf(daemon, "exec", cid, "touch", "/tmp/ok")
    healthy = wait_health(daemon, cid, "healthy", timeout=10)
    assert (healthy["FailingStreak"], healthy["Log"][-1]["ExitCode"]) == (0, 0)
    assert len(healthy["Log"]) <= 5
    assert re.fullmatch(r"Up .* \(healthy\)", ps_status(daemon, cid))
    assert cid not in wharf(daemon, "ps", "-q", "--no-trunc", "--filter",
                            "health=unhealthy").split()
    seen = events(daemon, cid, since)
    health = [e for e in seen if e["Action"].startswith("health_status")]
    assert [e["Action"] for e in health] == ["health_status: unhealthy",
                                             "health_status: healthy"]
    assert health[0]["Type"] == "container" and health[0]["Actor"]["ID"] == cid
    assert health[0]["Actor"]["Attributes"]["image"] == "busybox"
    probes = [e for e in seen if e["Action"] == "exec_create: /bin/sh -c test -f /tmp/ok"]
    assert probes and "execID" in probes[0]["Actor"]["Attributes"]
    assert any(e["Action"] == "exec_die" and e["Actor"]["Attributes"]["exitCode"] == "1"
               for e in seen)
    wharf(daemon, "stop", "-t", "0", cid)  # the check stops; dockerd says unhealthy then
    stopped = inspect(daemon, cid)["State"]
    assert (stopped["Status"], stopped["Health"]["Status"]) == ("exited", "unhealthy")
    assert ps_status(daemon, cid).startswith("Exited (")


def test_a_timeout_fails_the_probe_with_dockers_message(daemon: Daemon,
                                                       made: list[str]) -> None:
    cid = wharf(daemon, "run", "-d", "--health-cmd", "echo started; sleep 5",
                "--health-interval", "1s", "--health-timeout", "500ms", "--health-retries",
                "1", "busybox", "sleep", "300").strip()
    made.append(cid)
    result = wait_health(daemon, cid, "unhealthy", timeout=10)["Log"][0]
    assert (result["ExitCode"], result["Output"]) == (
        -1, "Health check exceeded timeout (500ms): started\n")
    # the probe and the sleep it started are gone, not piling up
    top = json.loads(daemon.request("GET", f"/containers/{cid}/top")[1])
    assert sum("sleep 5" in " ".join(p) for p in top["Processes"]) <= 1


def _image_with_a_healthcheck(daemon: Daemon, tmp_path: Path, name: str) -> None:
    """busybox with ``HEALTHCHECK --interval=1s CMD true`` in its config, loaded as ``name``
    (an archive of busybox's layers with a changed config: a new image ID)."""
    saved = tmp_path / "busybox.tar"
    wharf(daemon, "save", "-o", str(saved), "busybox")
    out = tmp_path / "healthy.tar"
    with tarfile.open(saved) as source, tarfile.open(out, "w") as target:
        entry = json.load(source.extractfile("manifest.json"))[0]  # type: ignore[arg-type]
        config = json.load(source.extractfile(entry["Config"]))  # type: ignore[arg-type]
        config["config"]["Healthcheck"] = {"Test": ["CMD-SHELL", "true"], "Interval": SECOND}
        manifest = [{"Config": "config.json", "RepoTags": [name], "Layers": entry["Layers"]}]
        for member, data in (("config.json", json.dumps(config).encode()),
                             ("manifest.json", json.dumps(manifest).encode())):
            info = tarfile.TarInfo(member)
            info.size = len(data)
            target.addfile(info, io.BytesIO(data))
        for layer in entry["Layers"]:
            target.addfile(source.getmember(layer), source.extractfile(layer))
    wharf(daemon, "load", "-i", str(out))


def test_the_images_check_runs_and_no_healthcheck_turns_it_off(
        daemon: Daemon, made: list[str], tmp_path: Path) -> None:
    name = f"wharf-test/healthy:{uuid.uuid4().hex[:8]}"
    made.append(name)
    _image_with_a_healthcheck(daemon, tmp_path, name)
    checked = wharf(daemon, "run", "-d", name, "sleep", "300").strip()
    made.append(checked)
    off = wharf(daemon, "run", "-d", "--no-healthcheck", name, "sleep", "300").strip()
    made.append(off)
    assert wait_health(daemon, checked, "healthy", timeout=10)["Log"][-1]["ExitCode"] == 0
    shown = inspect(daemon, off)
    # merged field by field as dockerd does: its inspect shows the image's Interval too
    assert shown["Config"]["Healthcheck"] == {"Test": ["NONE"], "Interval": SECOND}
    assert "Health" not in shown["State"]
    assert re.fullmatch(r"Up [^(]*", ps_status(daemon, off))
    assert off in wharf(daemon, "ps", "-q", "--no-trunc", "--filter", "health=none").split()
    conflict = wharf_cli(daemon, "run", "--no-healthcheck", "--health-retries", "2", name,
                         check=False)
    assert conflict.returncode == 125
    assert "--no-healthcheck conflicts with --health-* options" in conflict.stderr


def test_the_check_goes_on_after_a_daemon_restart(seeded_registry: SeededRegistry,
                                                  tmp_path: Path) -> None:
    mirrors = [seeded_registry.registry.url]
    with running_daemon(tmp_path / "wharfd", mirrors=mirrors) as first:
        first.request("POST", "/images/create?fromImage=busybox&tag=latest")
        cid = wharf(first, "run", "-d", "--network", "none", *CHECK, "busybox",
                    "sleep", "300").strip()
        try:
            before = wait_health(first, cid, "unhealthy", timeout=10)
            first.process.terminate()  # live-restore: the container keeps running
            first.process.wait(15)
            with running_daemon(tmp_path / "wharfd", mirrors=mirrors) as second:
                assert inspect(second, cid)["State"]["Health"]["Status"] == "unhealthy"
                wharf(second, "exec", cid, "touch", "/tmp/ok")
                after = wait_health(second, cid, "healthy", timeout=10)
                assert after["Log"][0]["Start"] >= before["Log"][0]["Start"]
                assert after["Log"][-1]["Start"] > before["Log"][-1]["Start"]
                second.request("DELETE", f"/containers/{cid}?force=1")
        finally:
            if first.process.poll() is None:
                first.request("DELETE", f"/containers/{cid}?force=1")


def _docker_engine() -> bool:
    if DOCKER is None:
        return False
    probe = subprocess.run([DOCKER, *DOCKER_ENGINE, "info"], capture_output=True,
                           check=False, timeout=30)
    return probe.returncode == 0


@pytest.mark.docker_cli
def test_status_text_and_health_shape_match_dockerd(daemon: Daemon, made: list[str],
                                                    tmp_path: Path) -> None:
    if not _docker_engine():
        pytest.skip("no Docker engine on unix:///var/run/docker.sock (`make dockerd`)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
    env["DOCKER_CONFIG"] = str(tmp_path / "docker-config")

    def docker(*args: str, engine: list[str] = DOCKER_ENGINE) -> str:
        done = subprocess.run([str(DOCKER), *engine, *args], capture_output=True, text=True,
                              timeout=120, check=False, env=env)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    image = f"wharf-test/health-busybox:{uuid.uuid4().hex[:8]}"
    wharf(daemon, "tag", "busybox", image)
    made.append(image)
    archive = tmp_path / "busybox.tar"
    wharf(daemon, "save", "-o", str(archive), image)
    check = ("--network", "none", "--health-cmd", "echo out; exit 3", "--health-interval",
             "1s", "--health-retries", "1", image, "sleep", "300")
    theirs = ""
    try:
        docker("load", "-i", str(archive))
        theirs = docker("run", "-d", *check).strip()
        ours = docker("run", "-d", *check, engine=["-H", daemon.host]).strip()  # docker CLI
        made.append(ours)
        shapes: dict[str, tuple[Any, ...]] = {}
        for engine, cid in ((DOCKER_ENGINE, theirs), (["-H", daemon.host], ours)):
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                status = docker("ps", "--filter", f"id={cid}", "--format", "{{.Status}}",
                                engine=engine).strip()
                if status.endswith("(unhealthy)"):
                    break
                time.sleep(0.2)
            assert re.fullmatch(r"Up .* \(unhealthy\)", status), status
            shown = json.loads(docker("inspect", cid, engine=engine))[0]
            health = shown["State"]["Health"]
            shapes[cid] = (shown["Config"]["Healthcheck"], sorted(health), health["Status"],
                           sorted(health["Log"][0]), health["Log"][0]["ExitCode"],
                           health["Log"][0]["Output"])
            docker("stop", "-t", "0", cid, engine=engine)
            after = json.loads(docker("inspect", cid, engine=engine))[0]["State"]["Health"]
            shapes[cid] += (after["Status"],)
        assert shapes[ours] == shapes[theirs]
        assert shapes[ours][-1] == "unhealthy" and shapes[ours][4:6] == (3, "out\n")
    finally:
        if theirs:
            subprocess.run([str(DOCKER), *DOCKER_ENGINE, "rm", "-f", theirs],
                           capture_output=True, check=False, env=env)
        subprocess.run([str(DOCKER), *DOCKER_ENGINE, "rmi", image], capture_output=True,
                       check=False, env=env)
