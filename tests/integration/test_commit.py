"""``commit`` for real: a wharfd with busybox from the session registry, the wharf CLI and, when
a Docker engine answers, ``docker load`` of what wharf saves. Every test removes what it made."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.daemon_fixture import Daemon, busybox_daemon, wharf_cli
from tests.integration.conftest import SeededRegistry

pytestmark = [pytest.mark.integration]
DOCKER = shutil.which("docker")
DOCKER_ENGINE = ["-H", "unix:///var/run/docker.sock"]
WRITE = ("rm /etc/group && echo committed > /marker && rm -rf /var && mkdir -p /var/new"
         " && touch /var/new/file")


@pytest.fixture(scope="module")
def daemon(seeded_registry: SeededRegistry, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[Daemon]:
    base = tmp_path_factory.mktemp("wharfd-commit")
    with busybox_daemon(base, seeded_registry.registry.url) as running:
        yield running


def wharf(daemon: Daemon, *args: str) -> str:
    return wharf_cli(daemon, *args).stdout


@pytest.fixture
def made(daemon: Daemon) -> Iterator[list[str]]:
    """Containers and images to remove after the test (containers first)."""
    names: list[str] = []
    yield names
    for name in names:
        daemon.request("DELETE", f"/containers/{name}?force=1")
    for name in reversed(names):
        daemon.request("DELETE", f"/images/{quote(name, safe='')}?force=1")


def _image_ids(daemon: Daemon) -> set[str]:
    return {i["Id"] for i in json.loads(daemon.request("GET", "/images/json?all=1")[1])}


def _committed(daemon: Daemon, made: list[str]) -> tuple[str, str]:
    """An exited container that wrote /marker, deleted /etc/group and replaced /var,
    committed as a new tag with a CMD change; (image name, image ID)."""
    cid = wharf(daemon, "create", "busybox", "sh", "-c", WRITE).strip()
    made.append(cid)
    wharf(daemon, "start", "-a", cid)
    name = f"wharf-test/committed:{uuid.uuid4().hex[:12]}"
    made.append(name)
    out = wharf(daemon, "commit", "-m", "the commit's comment", "-a", "A. Tester",
                "--change", 'CMD ["cat","/marker"]', "-c", "ENV COMMITTED=yes", cid, name)
    image_id = out.strip()
    assert image_id.startswith("sha256:") and len(image_id) == 71, out
    return name, image_id


def test_commit_makes_an_image_of_the_changes(daemon: Daemon, made: list[str]) -> None:
    name, image_id = _committed(daemon, made)
    assert wharf(daemon, "run", "--rm", name) == "committed\n"
    listing = wharf(daemon, "run", "--rm", name, "sh", "-c",
                    "ls /etc/group 2>&1; ls /var; ls /var/new; echo $COMMITTED")
    assert "No such file" in listing.splitlines()[0], listing
    assert listing.splitlines()[1:] == ["new", "file", "yes"], listing
    inspected = json.loads(wharf(daemon, "image", "inspect", name))[0]
    assert inspected["Id"] == image_id
    assert inspected["Config"]["Cmd"] == ["cat", "/marker"]
    assert inspected["Author"] == "A. Tester"
    base = json.loads(wharf(daemon, "image", "inspect", "busybox"))[0]
    assert len(inspected["RootFS"]["Layers"]) == len(base["RootFS"]["Layers"]) + 1
    assert "the commit's comment" in wharf(daemon, "image", "history", "--no-trunc", name)
    assert "consistent" in wharf(daemon, "system", "check")


def test_commit_emits_the_event(daemon: Daemon, made: list[str]) -> None:
    since = int(time.time()) - 1
    _name, image_id = _committed(daemon, made)
    _, body = daemon.request("GET", f"/events?since={since}&until={int(time.time()) + 1}")
    events = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
    commits = [e for e in events if e.get("Action") == "commit"]
    assert commits and commits[-1]["Type"] == "container", events
    assert commits[-1]["Actor"]["Attributes"]["imageID"] == image_id


def test_commit_of_a_running_container_pauses_and_resumes_it(
        daemon: Daemon, made: list[str]) -> None:
    cid = wharf(daemon, "run", "-d", "busybox", "sh", "-c",
                "echo live > /live; sleep 300").strip()
    made.append(cid)
    for _ in range(50):
        if wharf_cli(daemon, "exec", cid, "cat", "/live", check=False).stdout == "live\n":
            break
        time.sleep(0.1)
    image_id = wharf(daemon, "container", "commit", cid).strip()
    made.append(image_id)
    state = json.loads(wharf(daemon, "inspect", cid))[0]["State"]
    assert (state["Running"], state["Paused"]) == (True, False)
    assert wharf(daemon, "run", "--rm", image_id, "cat", "/live") == "live\n"


def test_a_bad_change_is_a_400_and_creates_nothing(daemon: Daemon, made: list[str]) -> None:
    cid = wharf(daemon, "create", "busybox", "true").strip()
    made.append(cid)
    before = _image_ids(daemon)
    status, body = daemon.request(
        "POST", f"/commit?container={cid}&repo=wharf-test/bad&changes=FOO%20bar")
    assert status == 400, body
    assert "FOO" in json.loads(body)["message"]
    failed = wharf_cli(daemon, "commit", "--change", "FOO bar", cid, "wharf-test/bad",
                       check=False)
    assert failed.returncode != 0 and "FOO" in failed.stderr
    assert _image_ids(daemon) == before
    assert daemon.request("GET", "/images/wharf-test/bad/json")[0] == 404


def test_a_missing_container_is_a_404(daemon: Daemon) -> None:
    status, body = daemon.request("POST", "/commit?container=no-such-container&repo=x")
    assert status == 404, body
    assert "no-such-container" in json.loads(body)["message"]


def _docker_engine() -> bool:
    if DOCKER is None:
        return False
    probe = subprocess.run([DOCKER, *DOCKER_ENGINE, "info"], capture_output=True,
                           check=False, timeout=30)
    return probe.returncode == 0


def test_docker_loads_a_committed_image(daemon: Daemon, made: list[str],
                                        tmp_path: Path) -> None:
    if not _docker_engine():
        pytest.skip("no Docker engine on unix:///var/run/docker.sock (`make dockerd`)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
    env["DOCKER_CONFIG"] = str(tmp_path / "docker-config")

    def docker(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(DOCKER), *DOCKER_ENGINE, *args], capture_output=True,
                              text=True, timeout=120, check=False, env=env)

    name, image_id = _committed(daemon, made)
    archive = tmp_path / "committed.tar"
    wharf(daemon, "save", "-o", str(archive), name)
    try:
        loaded = docker("load", "-i", str(archive))
        assert loaded.returncode == 0, loaded.stdout + loaded.stderr
        assert docker("image", "inspect", "-f", "{{.Id}}", name).stdout.strip() == image_id
        ran = docker("run", "--rm", "--network", "none", name)
        assert (ran.returncode, ran.stdout) == (0, "committed\n"), ran.stderr
        gone = docker("run", "--rm", "--network", "none", name, "ls", "/etc/group")
        assert gone.returncode != 0
    finally:
        docker("rmi", name)
