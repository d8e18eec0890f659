"""``cp`` and ``diff`` for real: a wharfd with busybox from the session registry, the wharf CLI
and the docker CLI. Every test removes the containers it made; host files live in tmp_path."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.daemon_fixture import Daemon, busybox_daemon
from tests.integration.conftest import SeededRegistry

pytestmark = [pytest.mark.integration]
WHARF = str(Path(sys.executable).parent / "wharf")
DOCKER = shutil.which("docker")


@pytest.fixture(scope="module")
def daemon(seeded_registry: SeededRegistry, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[Daemon]:
    base = tmp_path_factory.mktemp("wharfd-copy")
    with busybox_daemon(base, seeded_registry.registry.url) as running:
        yield running


def wharf(daemon: Daemon, *args: str, stdin: bytes | None = None
          ) -> subprocess.CompletedProcess[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WHARF_")}
    env["WHARF_CONFIG"] = str(daemon.run_dir / "wharf-config")
    return subprocess.run([WHARF, "-H", daemon.host, *args], capture_output=True, timeout=60,
                          check=False, env=env, input=stdin)


def ok(result: subprocess.CompletedProcess[bytes]) -> str:
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout.decode()


@pytest.fixture
def containers(daemon: Daemon) -> Iterator[list[str]]:
    """Container IDs to remove after the test."""
    made: list[str] = []
    yield made
    for cid in made:
        daemon.request("DELETE", f"/containers/{cid}?force=1")


def test_cp_a_host_file_into_a_running_container(daemon: Daemon, containers: list[str],
                                                 tmp_path: Path) -> None:
    cid = ok(wharf(daemon, "run", "-d", "busybox", "sleep", "300")).strip()
    containers.append(cid)
    (tmp_path / "hello.txt").write_text("hello from the host\n")
    ok(wharf(daemon, "cp", str(tmp_path / "hello.txt"), f"{cid}:/tmp/"))
    ok(wharf(daemon, "cp", str(tmp_path / "hello.txt"), f"{cid}:/tmp/renamed.txt"))
    assert ok(wharf(daemon, "exec", cid, "cat", "/tmp/hello.txt",
                    "/tmp/renamed.txt")) == "hello from the host\n" * 2
    assert ok(wharf(daemon, "exec", cid, "stat", "-c", "%u:%g", "/tmp/hello.txt")) == "0:0\n"


def test_cp_a_dir_out_of_an_exited_container(daemon: Daemon, containers: list[str],
                                             tmp_path: Path) -> None:
    cid = ok(wharf(daemon, "create", "busybox", "sh", "-c",
                   "mkdir -p /out/sub && echo one > /out/a && echo two > /out/sub/b")).strip()
    containers.append(cid)
    ok(wharf(daemon, "start", "-a", cid))
    ok(wharf(daemon, "cp", f"{cid}:/out", str(tmp_path / "copy")))
    assert (tmp_path / "copy/a").read_text() == "one\n"
    assert (tmp_path / "copy/sub/b").read_text() == "two\n"
    (tmp_path / "content").mkdir()
    ok(wharf(daemon, "cp", f"{cid}:/out/.", str(tmp_path / "content")))
    assert sorted(p.name for p in (tmp_path / "content").iterdir()) == ["a", "sub"]
    missing = wharf(daemon, "cp", f"{cid}:/nope", str(tmp_path / "x"))
    assert missing.returncode == 1 and b"Could not find the file /nope" in missing.stderr


def test_cp_into_a_created_container_is_seen_when_it_starts(daemon: Daemon,
                                                            containers: list[str],
                                                            tmp_path: Path) -> None:
    cid = ok(wharf(daemon, "create", "busybox", "cat", "/conf/app.conf")).strip()
    containers.append(cid)
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf/app.conf").write_text("key=value\n")
    ok(wharf(daemon, "cp", str(tmp_path / "conf"), f"{cid}:/conf"))
    assert ok(wharf(daemon, "start", "-a", cid)) == "key=value\n"


def test_diff_shows_added_changed_and_deleted(daemon: Daemon, containers: list[str]) -> None:
    cid = ok(wharf(daemon, "run", "-d", "busybox", "sleep", "300")).strip()
    containers.append(cid)
    assert ok(wharf(daemon, "diff", cid)) == ""
    ok(wharf(daemon, "exec", cid, "sh", "-c", "touch /new; rm /etc/group; echo >> /etc/passwd"))
    assert ok(wharf(daemon, "diff", cid)).splitlines() == [
        "C /etc", "D /etc/group", "C /etc/passwd", "A /new"]


def test_an_escaping_tar_is_refused_with_400(daemon: Daemon, containers: list[str]) -> None:
    cid = ok(wharf(daemon, "create", "busybox", "true")).strip()
    containers.append(cid)
    body = io.BytesIO()
    with tarfile.open(fileobj=body, mode="w") as tf:
        info = tarfile.TarInfo("../../escaped")
        info.size = 3
        tf.addfile(info, io.BytesIO(b"bad"))
    status, reply = daemon.request("PUT", f"/containers/{cid}/archive?path=/tmp",
                                   body=body.getvalue())
    assert status == 400, reply
    assert "'..'" in json.loads(reply)["message"]
    assert daemon.request("PUT", f"/containers/{cid}/archive?path=/tmp",
                          body=b"not a tar" * 200)[0] == 400
    assert daemon.request("PUT", f"/containers/{cid}/archive?path=/nope",
                          body=_one_file_tar())[0] == 404
    assert daemon.request("HEAD", f"/containers/{cid}/archive?path=/nope")[0] == 404
    assert daemon.request("PUT", f"/containers/{cid}/archive")[0] == 400


def test_a_read_only_rootfs_refuses_a_copy_with_403(daemon: Daemon,
                                                    containers: list[str]) -> None:
    status, reply = daemon.request(
        "POST", "/containers/create", json.dumps(
            {"Image": "busybox", "Cmd": ["true"], "HostConfig": {"ReadonlyRootfs": True}}
        ).encode(), {"Content-Type": "application/json"})
    assert status == 201, reply
    cid = json.loads(reply)["Id"]
    containers.append(cid)
    assert daemon.request("PUT", f"/containers/{cid}/archive?path=/tmp",
                          body=_one_file_tar())[0] == 403


def _one_file_tar() -> bytes:
    body = io.BytesIO()
    with tarfile.open(fileobj=body, mode="w") as tf:
        tf.addfile(tarfile.TarInfo("empty"))
    return body.getvalue()


@pytest.mark.docker_cli
def test_docker_cli_cp_both_ways_and_diff(daemon: Daemon, containers: list[str],
                                          tmp_path: Path) -> None:
    if DOCKER is None:
        pytest.skip("the docker CLI is not installed")
    env = {**os.environ, "DOCKER_CONFIG": str(daemon.run_dir / "docker-config")}

    def docker(*args: str) -> str:
        result = subprocess.run([DOCKER, "-H", daemon.host, *args], capture_output=True,
                                text=True, timeout=60, check=False, env=env)
        assert result.returncode == 0, result.stderr
        return result.stdout

    cid = docker("run", "-d", "busybox", "sleep", "300").strip()
    containers.append(cid)
    (tmp_path / "in.txt").write_text("via docker\n")
    docker("cp", str(tmp_path / "in.txt"), f"{cid}:/in.txt")
    assert docker("exec", cid, "cat", "/in.txt") == "via docker\n"
    docker("cp", f"{cid}:/etc/passwd", str(tmp_path / "passwd"))
    assert (tmp_path / "passwd").read_text().startswith("root:")
    docker("cp", f"{cid}:/etc", str(tmp_path / "etc"))
    assert (tmp_path / "etc/passwd").is_file()
    assert docker("diff", cid).splitlines() == ["A /in.txt"]
