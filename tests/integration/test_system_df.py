"""``system df`` and ``system prune`` for real: a wharfd with busybox from the session registry,
the wharf CLI and, when it is installed, the docker CLI pointed at the same wharfd (both must
print the same thing). The tests run in order on one daemon, the last one pruning everything.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.daemon_fixture import WHARFD, Daemon, busybox_daemon, wharf_cli
from tests.integration.conftest import SeededRegistry

pytestmark = [pytest.mark.integration]
DOCKER = shutil.which("docker")
WRITE = ("dd if=/dev/zero of=/big bs=1000 count=5 2>/dev/null && "
         "dd if=/dev/zero of=/data/v bs=1000 count=3 2>/dev/null")


@pytest.fixture(scope="module")
def daemon(seeded_registry: SeededRegistry, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[Daemon]:
    base = tmp_path_factory.mktemp("wharfd-df")
    with busybox_daemon(base, seeded_registry.registry.url) as running:
        yield running


def wharf(daemon: Daemon, *args: str, stdin: str | None = None) -> str:
    """The CLI's stdout; with ``stdin`` it is fed to the CLI (a pipe, not a terminal)."""
    if stdin is None:
        return wharf_cli(daemon, *args).stdout
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WHARF_", "DOCKER_"))}
    result = subprocess.run([str(Path(WHARFD).parent / "wharf"), "-H", daemon.host, *args],
                            input=stdin, capture_output=True, text=True, check=True, env=env,
                            timeout=120)
    return result.stdout


def docker(daemon: Daemon, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
    env["DOCKER_CONFIG"] = str(daemon.run_dir / "docker-config")
    result = subprocess.run([str(DOCKER), "-H", daemon.host, *args], capture_output=True,
                            text=True, timeout=120, check=True, env=env)
    return result.stdout


def df(daemon: Daemon) -> dict[str, Any]:
    status, body = daemon.request("GET", "/v1.41/system/df")
    assert status == 200, body
    document: dict[str, Any] = json.loads(body)
    return document


def _calm(text: str) -> str:
    """Times ("3 seconds ago") and the padding they change, out of the way."""
    text = re.sub(r"(\d+|About an?|Less than a) \w+ ago", "AGO", text)
    return re.sub(r" {2,}", "  ", text)


def test_df_counts_what_a_container_wrote_its_volume_and_shared_layers(daemon: Daemon) -> None:
    cid = wharf(daemon, "create", "--name", "df-writer", "-v", "dfvol:/data", "busybox",
                "sh", "-c", WRITE).strip()
    wharf(daemon, "start", "-a", cid)
    committed = wharf(daemon, "commit", cid, "wharf-test/df:1").strip()
    usage = df(daemon)
    images = {i["Id"]: i for i in usage["Images"]}
    busybox = next(i for i in usage["Images"] if i["RepoTags"] == ["busybox:latest"])
    mine = images[committed]
    assert (busybox["Containers"], mine["Containers"]) == (1, 0)
    assert busybox["SharedSize"] == busybox["Size"] == busybox["VirtualSize"]
    assert mine["SharedSize"] == busybox["Size"] and mine["Size"] >= busybox["Size"] + 5000
    assert usage["LayersSize"] == mine["Size"]  # busybox's layer, counted once, and the new one
    [container] = usage["Containers"]
    assert container["Id"] == cid and container["Names"] == ["/df-writer"]
    assert container["SizeRw"] == 5000
    assert container["SizeRootFs"] == busybox["Size"] + 5000
    [volume] = usage["Volumes"]
    assert (volume["Name"], volume["UsageData"]) == ("dfvol", {"Size": 3000, "RefCount": 1})
    assert isinstance(usage["BuildCache"], list) and isinstance(usage["BuilderSize"], int)
    summary = wharf(daemon, "system", "df").splitlines()
    assert summary[0].split() == ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]
    assert summary[1].startswith("Images          2         1         ")
    assert summary[2] == "Containers      1         0         5kB       5kB (100%)"
    assert summary[3] == "Local Volumes   1         1         3kB       0B (0%)"
    verbose = wharf(daemon, "system", "df", "-v")
    assert "df-writer" in verbose and "wharf-test/df   1 " in verbose
    if DOCKER is not None:  # the docker CLI reads wharfd's reply the same way
        assert docker(daemon, "system", "df") == "\n".join(summary) + "\n"
        assert _calm(docker(daemon, "system", "df", "-v")) == _calm(verbose)


def test_df_type_filter_and_its_refusal(daemon: Daemon) -> None:
    status, body = daemon.request("GET", "/system/df?type=volume")
    usage = json.loads(body)
    assert status == 200 and usage["Images"] is None and usage["Containers"] is None
    assert [v["Name"] for v in usage["Volumes"]] == ["dfvol"]
    status, body = daemon.request("GET", "/system/df?type=nope")
    assert (status, json.loads(body)) == (400, {"message": "unknown object type: nope"})


def test_system_prune_asks_then_removes_stopped_containers_and_dangling_images(
        daemon: Daemon) -> None:
    keeper = wharf(daemon, "run", "-d", "busybox", "sleep", "300").strip()
    dangling = wharf(daemon, "commit", keeper).strip()
    refused = wharf(daemon, "system", "prune", stdin="n\n")
    assert refused.startswith("WARNING! This will remove:\n  - all stopped containers\n")
    assert refused.endswith("Are you sure you want to continue? [y/N] ")
    assert len(df(daemon)["Containers"]) == 2
    out = wharf(daemon, "system", "prune", "-f")
    lines = out.splitlines()
    assert lines[:2] == ["Deleted Containers:", lines[1]] and len(lines[1]) == 64
    assert f"deleted: {dangling}" in lines
    assert lines[-1].startswith("Total reclaimed space: ")
    assert [c["Id"] for c in df(daemon)["Containers"]] == [keeper]
    daemon.request("DELETE", f"/containers/{keeper}?force=1")


def test_system_prune_all_with_volumes_leaves_nothing(daemon: Daemon) -> None:
    out = wharf(daemon, "system", "prune", "-a", "-f", "--volumes").splitlines()
    assert out[out.index("Deleted Volumes:") + 1] == "dfvol"
    assert "untagged: busybox:latest" in out and "untagged: wharf-test/df:1" in out
    usage = df(daemon)
    assert (usage["Images"], usage["Containers"], usage["Volumes"], usage["LayersSize"]) == (
        [], [], [], 0)
    assert wharf(daemon, "system", "df").splitlines()[1:4] == [
        "Images          0         0         0B        0B",
        "Containers      0         0         0B        0B",
        "Local Volumes   0         0         0B        0B"]
