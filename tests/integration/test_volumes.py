"""Volumes end to end: a real wharfd, real crun, the session registry's busybox.

Named volumes outlive containers; binds (read-only or not); ``-v`` creates a missing bind
source, ``--mount`` refuses it; tmpfs mounts; volumes in use cannot be removed; ``rm -v``
takes anonymous volumes along; a new volume is seeded with the image's content; the real
docker CLI drives all of it. Every test removes its containers, volumes and host dirs.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.daemon_fixture import Daemon, running_daemon
from tests.integration.conftest import SeededRegistry
from tests.integration.registry_fixture import build_busybox_layout, push_layout

pytestmark = [pytest.mark.integration]
DOCKER = shutil.which("docker")
WHARF = str(Path(sys.executable).parent / "wharf")


@pytest.fixture(scope="module")
def daemon(seeded_registry: SeededRegistry, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[Daemon]:
    # busybox with `VOLUME /etc`: its anonymous volume starts with the image's /etc
    workdir = tmp_path_factory.mktemp("volimage")
    layout = build_busybox_layout(workdir, "vol")
    subprocess.run(["umoci", "config", "--image", f"{layout}:vol", "--config.volume", "/etc"],
                   check=True, capture_output=True)
    push_layout(layout, "vol", seeded_registry.registry, "library/busybox:vol")
    base = tmp_path_factory.mktemp("wharfd-volumes")
    with running_daemon(base, mirrors=[seeded_registry.registry.url]) as running:
        for tag in ("latest", "vol"):
            status, _ = running.request("POST", f"/images/create?fromImage=busybox&tag={tag}")
            assert status == 200
        yield running
        for record in json.loads(running.request("GET", "/containers/json?all=1")[1]):
            running.request("DELETE", f"/containers/{record['Id']}?force=1&v=1")
        for volume in json.loads(running.request("GET", "/volumes")[1])["Volumes"]:
            running.request("DELETE", f"/volumes/{volume['Name']}")


def wharf(daemon: Daemon, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WHARF_")}
    env["WHARF_CONFIG"] = str(daemon.run_dir / "wharf-config")
    return subprocess.run([WHARF, "-H", daemon.host, *args], capture_output=True, text=True,
                          timeout=60, check=False, env=env)


def ok(daemon: Daemon, *args: str) -> str:
    result = wharf(daemon, *args)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def volume_names(daemon: Daemon) -> set[str]:
    return set(ok(daemon, "volume", "ls", "-q").split())


def test_a_named_volume_outlives_its_container(daemon: Daemon) -> None:
    try:
        ok(daemon, "run", "--rm", "-v", "keep-data:/data", "busybox",
           "sh", "-c", "echo persisted > /data/f")
        assert "keep-data" in volume_names(daemon)
        assert ok(daemon, "run", "--rm", "-v", "keep-data:/data:ro", "busybox",
                  "cat", "/data/f") == "persisted\n"
        info = json.loads(ok(daemon, "volume", "inspect", "keep-data"))[0]
        assert (Path(info["Mountpoint"]) / "f").read_text() == "persisted\n"
    finally:
        wharf(daemon, "volume", "rm", "keep-data")
    assert "keep-data" not in volume_names(daemon)


def test_bind_mounts_read_write_and_read_only(daemon: Daemon, tmp_path: Path) -> None:
    host = tmp_path / "host"
    host.mkdir()
    ok(daemon, "run", "--rm", "-v", f"{host}:/host", "busybox", "sh", "-c",
       "echo from-container > /host/w")
    assert (host / "w").read_text() == "from-container\n"
    refused = wharf(daemon, "run", "--rm", "-v", f"{host}:/host:ro", "busybox",
                    "touch", "/host/x")
    assert refused.returncode == 1
    assert "Read-only file system" in refused.stderr
    refused = wharf(daemon, "run", "--rm", "--mount",
                    f"type=bind,source={host},target=/host,readonly", "busybox",
                    "touch", "/host/x")
    assert refused.returncode == 1 and "Read-only file system" in refused.stderr
    assert not (host / "x").exists()


def test_v_creates_a_missing_source_and_mount_refuses_it(daemon: Daemon,
                                                         tmp_path: Path) -> None:
    made = tmp_path / "made/by/v"
    ok(daemon, "run", "--rm", "-v", f"{made}:/m", "busybox", "touch", "/m/ok")
    assert (made / "ok").exists() and made.is_dir()
    missing = tmp_path / "missing"
    refused = wharf(daemon, "run", "--rm", "--mount", f"type=bind,source={missing},target=/m",
                    "busybox", "true")
    assert refused.returncode == 125
    assert (f'invalid mount config for type "bind": bind source path does not exist: '
            f"{missing}") in refused.stderr
    assert not missing.exists()


def test_tmpfs_mounts_are_tmpfs(daemon: Daemon) -> None:
    out = ok(daemon, "run", "--rm", "--tmpfs", "/scratch:size=1m",
             "--mount", "type=tmpfs,target=/t2,tmpfs-size=2m,tmpfs-mode=1770",
             "busybox", "sh", "-c", "grep -E ' /(scratch|t2) ' /proc/mounts; stat -c %a /t2")
    lines = out.splitlines()
    assert any(line.startswith("tmpfs /scratch tmpfs") and "size=1024k" in line
               for line in lines), out
    assert any(line.startswith("tmpfs /t2 tmpfs") and "size=2048k" in line
               for line in lines), out
    assert lines[-1] == "1770"


def test_a_tmpfs_volume_is_mounted_at_use_and_unmounted_at_removal(daemon: Daemon) -> None:
    try:
        ok(daemon, "volume", "create", "-o", "type=tmpfs", "-o", "device=tmpfs",
           "-o", "o=size=3m", "memvol")
        out = ok(daemon, "run", "--rm", "-v", "memvol:/mem", "busybox",
                 "grep", " /mem ", "/proc/mounts")
        assert out.startswith("tmpfs /mem tmpfs") and "size=3072k" in out
        mountpoint = json.loads(ok(daemon, "volume", "inspect", "memvol"))[0]["Mountpoint"]
        assert mountpoint.encode() in Path("/proc/self/mountinfo").read_bytes()
    finally:
        ok(daemon, "volume", "rm", "memvol")
    assert mountpoint.encode() not in Path("/proc/self/mountinfo").read_bytes()


def test_a_volume_in_use_cannot_be_removed(daemon: Daemon) -> None:
    cid = ok(daemon, "create", "-v", "busy-vol:/data", "busybox", "true").strip()
    try:
        for flags in ((), ("-f",)):
            refused = wharf(daemon, "volume", "rm", *flags, "busy-vol")
            assert refused.returncode == 1
            assert f"remove busy-vol: volume is in use - [{cid}]" in refused.stderr
        assert "busy-vol" not in ok(daemon, "volume", "prune", "-f")
    finally:
        ok(daemon, "rm", cid)
    assert ok(daemon, "volume", "rm", "busy-vol") == "busy-vol\n"


def test_rm_v_removes_anonymous_volumes_only(daemon: Daemon) -> None:
    before = volume_names(daemon)
    cid = ok(daemon, "create", "-v", "/anon", "-v", "named-stays:/named",
             "busybox", "true").strip()
    mounts = json.loads(ok(daemon, "inspect", cid))[0]["Mounts"]
    anonymous = next(m["Name"] for m in mounts if m["Destination"] == "/anon")
    assert len(anonymous) == 64 and anonymous in volume_names(daemon)
    ok(daemon, "rm", "-v", cid)
    after = volume_names(daemon)
    try:
        assert anonymous not in after and "named-stays" in after
        assert after - before == {"named-stays"}
    finally:
        ok(daemon, "volume", "rm", "named-stays")


def test_new_volumes_are_seeded_with_the_image_content(daemon: Daemon) -> None:
    try:
        out = ok(daemon, "run", "--rm", "-v", "etc-copy:/etc", "busybox",
                 "sh", "-c", "head -1 /etc/passwd; stat -c '%a %u' /etc/passwd")
        assert out.splitlines()[0].startswith("root:x:0:0:")
        data = Path(json.loads(ok(daemon, "volume", "inspect", "etc-copy"))[0]["Mountpoint"])
        assert (data / "passwd").read_text().startswith("root:x:0:0:")
        nocopy = ok(daemon, "run", "--rm", "-v", "etc-empty:/etc:nocopy", "busybox",
                    "ls", "/etc")
        assert "passwd" not in nocopy
    finally:
        wharf(daemon, "volume", "rm", "etc-copy", "etc-empty")
    # the image's VOLUME /etc: an anonymous volume with the image's /etc, gone with --rm
    before = volume_names(daemon)
    out = ok(daemon, "run", "--rm", "busybox:vol", "sh", "-c",
             "grep -c root /etc/passwd; grep ' /etc ' /proc/mounts | wc -l")
    assert out.split() == ["1", "1"]
    assert volume_names(daemon) == before


@pytest.mark.docker_cli
@pytest.mark.skipif(DOCKER is None, reason="the docker CLI is not installed")
def test_the_docker_cli_drives_volumes(daemon: Daemon, tmp_path: Path) -> None:
    env = {**os.environ, "DOCKER_CONFIG": str(daemon.run_dir / "docker-config")}

    def docker(*args: str, code: int = 0) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([str(DOCKER), "-H", daemon.host, *args], capture_output=True,
                                text=True, timeout=60, check=False, env=env)
        assert result.returncode == code, result.stdout + result.stderr
        return result

    try:
        assert docker("volume", "create", "--label", "team=a", "cli-vol").stdout == "cli-vol\n"
        assert "local     cli-vol" in docker("volume", "ls").stdout
        assert docker("volume", "ls", "-q", "--filter", "label=team=a").stdout == "cli-vol\n"
        info = json.loads(docker("volume", "inspect", "cli-vol").stdout)[0]
        assert (info["Driver"], info["Scope"], info["Labels"]) == ("local", "local",
                                                                    {"team": "a"})
        host = tmp_path / "bind"
        host.mkdir()
        docker("run", "--name", "cli-ctr", "-v", "cli-vol:/data", "-v", f"{host}:/host:ro",
               "busybox", "sh", "-c", "echo hi > /data/f")
        mounts = json.loads(docker("inspect", "cli-ctr").stdout)[0]["Mounts"]
        assert {m["Type"]: (m["Destination"], m["RW"]) for m in mounts} == {
            "volume": ("/data", True), "bind": ("/host", False)}
        assert "volume is in use" in docker("volume", "rm", "cli-vol", code=1).stderr
        docker("rm", "cli-ctr")
        assert docker("run", "--rm", "-v", "cli-vol:/data", "busybox",
                      "cat", "/data/f").stdout == "hi\n"
        missing = docker("volume", "inspect", "nope", code=1).stderr
        # the daemon's message (newer CLIs print it) or the 404 in Docker 20.10's CLI's words
        assert "get nope: no such volume" in missing or "No such volume: nope" in missing
        pruned = docker("volume", "prune", "-f", "--filter", "label=team=a").stdout
        assert "cli-vol" in pruned
    finally:
        subprocess.run([str(DOCKER), "-H", daemon.host, "rm", "-f", "cli-ctr"],
                       capture_output=True, check=False, env=env)
        subprocess.run([str(DOCKER), "-H", daemon.host, "volume", "rm", "-f", "cli-vol"],
                       capture_output=True, check=False, env=env)
