"""``export`` for real: a wharfd with busybox from the session registry, the wharf CLI and the
docker CLI. Every test removes the containers and images it made; tars live in tmp_path."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.daemon_fixture import Daemon, busybox_daemon
from tests.integration.conftest import SeededRegistry

pytestmark = [pytest.mark.integration]
WHARF = str(Path(sys.executable).parent / "wharf")
DOCKER = shutil.which("docker")
CHANGES = ("echo hi > /marker; rm /etc/group; echo v > /data/invol; echo t > /scratch/t; "
           "mkfifo /fifo; ln /marker /zhard; ln -s /marker /link")


@pytest.fixture(scope="module")
def daemon(seeded_registry: SeededRegistry, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[Daemon]:
    base = tmp_path_factory.mktemp("wharfd-export")
    with busybox_daemon(base, seeded_registry.registry.url) as running:
        yield running


def wharf(daemon: Daemon, *args: str) -> subprocess.CompletedProcess[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WHARF_")}
    env["WHARF_CONFIG"] = str(daemon.run_dir / "wharf-config")
    return subprocess.run([WHARF, "-H", daemon.host, *args], capture_output=True, timeout=120,
                          check=False, env=env)


def ok(result: subprocess.CompletedProcess[bytes]) -> str:
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout.decode()


@pytest.fixture
def made(daemon: Daemon) -> Iterator[list[str]]:
    """Containers and images to remove after the test."""
    things: list[str] = []
    yield things
    for thing in things:
        if ":" in thing:
            daemon.request("DELETE", f"/images/{thing}?force=1")
        else:
            daemon.request("DELETE", f"/containers/{thing}?force=1&v=1")


def members(path: Path) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(path) as tar:
        return {m.name.rstrip("/"): m for m in tar.getmembers()}


@pytest.fixture(scope="module")
def image_modes(daemon: Daemon) -> dict[str, tuple[int, int, int]]:
    """{path: (st_mode, uid, gid)} of some of busybox's files, as a container sees them."""
    paths = ["bin", "bin/busybox", "bin/sh", "etc", "etc/passwd", "tmp", "root"]
    text = ok(wharf(daemon, "run", "--rm", "busybox", "stat", "-c", "%f %u %g %n",
                    *(f"/{p}" for p in paths)))
    modes = {}
    for line in text.splitlines():
        raw, uid, gid, name = line.split()
        modes[name.lstrip("/")] = (int(raw, 16), int(uid), int(gid))
    return modes


def check_busybox_tree(found: dict[str, tarfile.TarInfo],
                       modes: dict[str, tuple[int, int, int]]) -> None:
    for name, (st_mode, uid, gid) in modes.items():
        entry = found[name]
        assert (entry.mode, entry.uid, entry.gid) == (st_mode & 0o7777, uid, gid), name
        kinds = (entry.isdir(), entry.isreg() or entry.islnk(), entry.issym())
        assert kinds == (stat.S_ISDIR(st_mode), stat.S_ISREG(st_mode),
                         stat.S_ISLNK(st_mode)), name
    assert found["bin/busybox"].isreg() and found["bin/busybox"].size > 0
    assert not any(name.startswith(("./", "/")) for name in found)


def test_export_of_a_running_container(daemon: Daemon, made: list[str], tmp_path: Path,
                                       image_modes: dict[str, tuple[int, int, int]]) -> None:
    cid = ok(wharf(daemon, "run", "-d", "-v", "/data", "--tmpfs", "/scratch", "busybox", "sh",
                   "-c", CHANGES + "; sleep 300")).strip()
    made.append(cid)
    for _ in range(100):
        if wharf(daemon, "exec", cid, "test", "-L", "/link").returncode == 0:
            break
        time.sleep(0.1)
    out = tmp_path / "c.tar"
    ok(wharf(daemon, "export", "-o", str(out), cid))
    found = members(out)
    check_busybox_tree(found, image_modes)
    assert found["marker"].isreg() and "etc/group" not in found
    assert found["fifo"].isfifo() and found["link"].issym()
    assert found["link"].linkname == "/marker"
    assert found["zhard"].islnk() and found["zhard"].linkname == "marker"
    assert "data/invol" not in found and "scratch/t" not in found  # volumes and tmpfs left out
    assert found["proc"].isdir() and not any(n.startswith(("proc/", "sys/")) for n in found)
    with tarfile.open(out) as tar:
        marker = tar.extractfile("marker")
        assert marker is not None and marker.read() == b"hi\n"

    ok(wharf(daemon, "import", str(out), "exported:test"))
    made.append("exported:test")
    assert ok(wharf(daemon, "run", "--rm", "exported:test", "cat", "/marker")) == "hi\n"


def test_export_of_created_and_exited_containers_to_stdout(
        daemon: Daemon, made: list[str], tmp_path: Path,
        image_modes: dict[str, tuple[int, int, int]]) -> None:
    created = ok(wharf(daemon, "create", "busybox", "true")).strip()
    made.append(created)
    out = tmp_path / "created.tar"
    out.write_bytes(wharf(daemon, "container", "export", created).stdout)
    check_busybox_tree(members(out), image_modes)

    exited = ok(wharf(daemon, "create", "busybox", "sh", "-c", "echo bye > /marker2")).strip()
    made.append(exited)
    ok(wharf(daemon, "start", "-a", exited))
    state = json.loads(ok(wharf(daemon, "inspect", exited)))[0]["State"]
    assert state["Status"] == "exited"
    result = wharf(daemon, "export", exited)
    assert result.returncode == 0, result.stderr.decode()
    (tmp_path / "exited.tar").write_bytes(result.stdout)
    found = members(tmp_path / "exited.tar")
    check_busybox_tree(found, image_modes)
    assert found["marker2"].size == 4


def test_export_of_an_unknown_container(daemon: Daemon, tmp_path: Path) -> None:
    status, body = daemon.request("GET", "/v1.41/containers/nosuch/export")
    assert status == 404 and "No such container" in json.loads(body)["message"]
    result = wharf(daemon, "export", "-o", str(tmp_path / "x.tar"), "nosuch")
    assert result.returncode != 0 and "No such container" in result.stderr.decode()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.docker_cli
def test_docker_cli_export(daemon: Daemon, made: list[str], tmp_path: Path,
                           image_modes: dict[str, tuple[int, int, int]]) -> None:
    if DOCKER is None:
        pytest.skip("the docker CLI is not installed")
    env = {**os.environ, "DOCKER_CONFIG": str(daemon.run_dir / "docker-config")}

    def docker(*args: str) -> bytes:
        result = subprocess.run([DOCKER, "-H", daemon.host, *args], capture_output=True,
                                timeout=120, check=False, env=env)
        assert result.returncode == 0, result.stderr.decode()
        return result.stdout

    cid = docker("create", "busybox", "sh").decode().strip()
    made.append(cid)
    docker("export", "-o", str(tmp_path / "d.tar"), cid)
    check_busybox_tree(members(tmp_path / "d.tar"), image_modes)
    (tmp_path / "s.tar").write_bytes(docker("export", cid))
    assert members(tmp_path / "s.tar").keys() == members(tmp_path / "d.tar").keys()
