"""Prune filters for real (``label``, ``label!``, ``until``; dockerd's refusals): containers,
networks, images and volumes on a wharfd with busybox from the session registry, through the
API, the wharf CLI (``system prune --filter`` goes through every prune) and, when it is
installed, the docker CLI. What each prune keeps is what dockerd 20.10 kept in the same checks
(docs/disk-usage.md, "Prune filters"). Every test removes what it made.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.parse
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.daemon_fixture import Daemon, busybox_daemon, wharf_cli
from tests.integration.conftest import SeededRegistry

pytestmark = [pytest.mark.integration]
DOCKER = shutil.which("docker")
LABELS = {"c1": {"a": "1"}, "c2": {"a": "2", "b": ""}, "c3": {"b": "x"}, "c4": {}}


@pytest.fixture(scope="module")
def daemon(seeded_registry: SeededRegistry, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[Daemon]:
    base = tmp_path_factory.mktemp("wharfd-prune")
    with busybox_daemon(base, seeded_registry.registry.url) as running:
        yield running


def call(daemon: Daemon, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"} if data is not None else {}
    status, reply = daemon.request(method, path, data, headers)
    return status, (json.loads(reply) if reply.strip() else None)


def prune(daemon: Daemon, kind: str, filters: dict[str, list[str]]) -> tuple[int, Any]:
    query = urllib.parse.urlencode({"filters": json.dumps(filters)})
    return call(daemon, "POST", f"/v1.41/{kind}/prune?{query}")


def create(daemon: Daemon, name: str, labels: dict[str, str], *cmd: str) -> str:
    body = {"Image": "busybox", "Cmd": list(cmd or ("true",)), "Labels": labels}
    status, reply = call(daemon, "POST", f"/containers/create?name={name}", body)
    assert status == 201, reply
    return str(reply["Id"])


def names(daemon: Daemon, scope: str) -> list[str]:
    query = urllib.parse.urlencode({"all": "1", "filters": json.dumps({"label": [scope]})})
    _, listed = call(daemon, "GET", f"/containers/json?{query}")
    return sorted(c["Names"][0].lstrip("/").removeprefix(scope + "-") for c in listed)


def remove_containers(daemon: Daemon, scope: str) -> None:
    query = urllib.parse.urlencode({"all": "1", "filters": json.dumps({"label": [scope]})})
    for record in call(daemon, "GET", f"/containers/json?{query}")[1]:
        daemon.request("DELETE", f"/containers/{record['Id']}?force=1")


def four(daemon: Daemon, scope: str) -> None:
    for name, labels in LABELS.items():
        create(daemon, f"{scope}-{name}", {scope: "", **labels})


@pytest.mark.parametrize(("filters", "left"), [
    ({"label!": ["a"]}, ["c1", "c2"]),
    ({"label!": ["a", "b"]}, ["c2"]),  # dockerd: kept only when every label! term matches
    ({"label!": ["a=1"]}, ["c1"]),
    ({"label": ["a=2"]}, ["c1", "c3", "c4"]),
    ({"label": ["a", "b"]}, ["c1", "c3", "c4"]),
    ({"label": ["b="]}, ["c1", "c3", "c4"]),
])
def test_container_prune_labels_as_dockerd(daemon: Daemon, filters: dict[str, list[str]],
                                          left: list[str]) -> None:
    scope = "pl"
    four(daemon, scope)
    try:
        status, reply = prune(daemon, "containers",
                              {**filters, "label": [scope, *filters.get("label", [])]})
        assert status == 200, reply
        assert names(daemon, scope) == left
        assert len(reply["ContainersDeleted"]) == 4 - len(left)
    finally:
        remove_containers(daemon, scope)


def test_container_prune_keeps_others_reports_space_and_honours_until(daemon: Daemon) -> None:
    other = create(daemon, "unlabelled", {})  # the data-loss bug: it went with any filter
    running = create(daemon, "up", {"pu": ""}, "sleep", "300")
    writer = create(daemon, "pu-writer", {"pu": ""}, "sh", "-c",
                    "dd if=/dev/zero of=/big bs=1000 count=5 2>/dev/null")
    try:
        assert call(daemon, "POST", f"/containers/{running}/start")[0] == 204
        assert call(daemon, "POST", f"/containers/{writer}/start")[0] == 204
        assert call(daemon, "POST", f"/containers/{writer}/wait")[1]["StatusCode"] == 0
        old = create(daemon, "pu-old", {"pu": ""})
        time.sleep(1.2)
        cut = time.time()
        time.sleep(1.2)
        new = create(daemon, "pu-new", {"pu": ""})
        status, reply = prune(daemon, "containers", {"label": ["pu"], "until": [f"{cut:.3f}"]})
        assert status == 200, reply
        assert sorted(reply["ContainersDeleted"]) == sorted([writer, old])
        assert reply["SpaceReclaimed"] == 5000  # the writable layer, measured before removal
        stamp = datetime.fromtimestamp(cut, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        assert prune(daemon, "containers", {"label": ["pu"], "until": [stamp]})[1] == {
            "ContainersDeleted": None, "SpaceReclaimed": 0}
        assert prune(daemon, "containers", {"label": ["pu"], "until": ["-1m"]})[1] == {
            "ContainersDeleted": [new], "SpaceReclaimed": 0}
        assert names(daemon, "pu") == ["up"]  # running: never pruned
        assert call(daemon, "GET", f"/containers/{other}/json")[0] == 200
    finally:
        remove_containers(daemon, "pu")
        daemon.request("DELETE", f"/containers/{other}?force=1")


@pytest.mark.parametrize("kind", ["containers", "networks", "images", "volumes"])
def test_bad_filters_are_refused_in_dockerds_words_and_remove_nothing(daemon: Daemon,
                                                                     kind: str) -> None:
    stopped = create(daemon, "refused", {})
    try:
        cases = [({"foo": ["x"]}, "invalid filter 'foo'"),
                 ({"label": ["x"], "bar": ["1"]}, "invalid filter 'bar'")]
        if kind == "volumes":
            cases.append(({"until": ["1h"]}, "invalid filter 'until'"))
        else:
            cases += [
                ({"until": ["abc"]}, 'failed to parse value as time or duration: "abc"'),
                ({"until": ["1h", "2h"]}, "more than one until filter specified"),
                ({"until": ["2020-13-01"]}, 'parsing time "2020-13-01": month out of range'),
                ({"until": ["2020-1-1"]}, 'parsing time "2020-1-1" as "2006-01-02": cannot '
                                          'parse "1-1" as "01"')]
        for filters, message in cases:
            assert prune(daemon, kind, filters) == (400, {"message": message})
        assert call(daemon, "GET", f"/containers/{stopped}/json")[0] == 200
    finally:
        daemon.request("DELETE", f"/containers/{stopped}?force=1")


def _network(daemon: Daemon, name: str, subnet: str, labels: dict[str, str]) -> None:
    body = {"Name": name, "Labels": labels, "IPAM": {"Config": [{"Subnet": subnet}]}}
    status, reply = call(daemon, "POST", "/networks/create", body)
    assert status == 201, reply


def _networks(daemon: Daemon) -> list[str]:
    return sorted(n["Name"] for n in call(daemon, "GET", "/networks")[1]
                  if n["Name"].startswith("pn-"))


def test_network_prune_labels_and_until(daemon: Daemon) -> None:
    for i, (name, labels) in enumerate(LABELS.items()):
        _network(daemon, f"pn-{name}", f"10.124.{40 + i}.0/24", {"pn": "", **labels})
    try:
        status, reply = prune(daemon, "networks", {"label": ["pn"], "label!": ["a", "b"]})
        assert status == 200, reply
        assert sorted(reply["NetworksDeleted"]) == ["pn-c1", "pn-c3", "pn-c4"]
        assert prune(daemon, "networks", {"label": ["pn"], "until": ["1h"]}) == (
            200, {"NetworksDeleted": None})  # created just now
        assert _networks(daemon) == ["pn-c2"]
        assert prune(daemon, "networks", {"label": ["pn=nope"]}) == (
            200, {"NetworksDeleted": None})
        assert prune(daemon, "networks", {"label": ["a=2"], "until": ["-1h"]}) == (
            200, {"NetworksDeleted": ["pn-c2"]})
    finally:
        for name in _networks(daemon):
            daemon.request("DELETE", f"/networks/{name}")


def _commit(daemon: Daemon, container: str, label: str, repo: str = "") -> str:
    query = urllib.parse.urlencode({"container": container, "repo": repo,
                                    "changes": f"LABEL {label}"})
    status, reply = call(daemon, "POST", f"/commit?{query}")
    assert status == 201, reply
    return str(reply["Id"])


def _image_ids(daemon: Daemon) -> set[str]:
    return {i["Id"] for i in call(daemon, "GET", "/images/json?all=1")[1]}


def test_image_prune_labels_and_until(daemon: Daemon) -> None:
    source = create(daemon, "image-source", {})
    try:
        keep = _commit(daemon, source, "keep=1")
        junk = _commit(daemon, source, "junk=1")
        tagged = _commit(daemon, source, "junk=2", repo="wharf-test/prune-tagged")
    finally:
        daemon.request("DELETE", f"/containers/{source}?force=1")
    busybox = call(daemon, "GET", "/images/busybox/json")[1]["Id"]
    try:
        assert prune(daemon, "images", {"until": ["1h"]})[1]["ImagesDeleted"] is None
        status, reply = prune(daemon, "images", {"label!": ["keep"]})
        assert status == 200, reply
        assert reply["ImagesDeleted"] == [{"Deleted": junk}]  # untagged only, keep stays
        status, reply = prune(daemon, "images", {"dangling": ["false"], "label": ["junk"]})
        assert status == 200, reply
        assert {"Deleted": tagged} in reply["ImagesDeleted"]  # tagged, but every unused one
        assert {keep, busybox} <= _image_ids(daemon) and tagged not in _image_ids(daemon)
        assert prune(daemon, "images", {"dangling": ["maybe"]}) == (
            400, {"message": "invalid filter 'dangling=[maybe]'"})
        assert prune(daemon, "images", {"reference": ["busybox"]}) == (
            400, {"message": "invalid filter 'reference'"})
    finally:
        for image in (keep, junk, tagged):
            daemon.request("DELETE", f"/images/{image}?force=1")
    assert busybox in _image_ids(daemon)


def test_volume_prune_labels_as_dockerd(daemon: Daemon) -> None:
    for name, labels in LABELS.items():
        call(daemon, "POST", "/volumes/create", {"Name": f"pv-{name}", "Labels": labels})
    call(daemon, "POST", "/volumes/create", {"Name": "pv-other", "Labels": {"x": ""}})
    try:
        status, reply = prune(daemon, "volumes", {"label!": ["a", "b", "x"]})
        assert status == 200, reply
        # c2 has a and b but not x: dockerd keeps only what every label! term matches
        assert sorted(reply["VolumesDeleted"]) == ["pv-c1", "pv-c2", "pv-c3", "pv-c4",
                                                    "pv-other"]
    finally:
        for name in [*LABELS, "other"]:
            daemon.request("DELETE", f"/volumes/pv-{name}")


def test_system_prune_filter_goes_through_every_prune(daemon: Daemon) -> None:
    zap = create(daemon, "zap-1", {"zap": ""})
    other = create(daemon, "other-1", {})
    _network(daemon, "pn-zap", "10.124.44.0/24", {"zap": ""})
    _network(daemon, "pn-other", "10.124.45.0/24", {})
    try:
        result = wharf_cli(daemon, "system", "prune", "-f", "--filter", "label=zap",
                           check=False)
        lines = result.stdout.splitlines()
        assert lines[:2] == ["Deleted Containers:", zap]
        assert "Deleted Networks:" in lines and "pn-zap" in lines
        assert result.returncode == 0, result.stderr  # /build/prune takes the filter too
        assert lines[-1].startswith("Total reclaimed space: ")
        assert call(daemon, "GET", f"/containers/{other}/json")[0] == 200
        assert _networks(daemon) == ["pn-other"]
        cli = wharf_cli(daemon, "container", "prune", "-f", "--filter", "until=nope",
                        check=False)
        assert cli.returncode != 0
        assert 'failed to parse value as time or duration: "nope"' in cli.stdout + cli.stderr
        assert call(daemon, "GET", f"/containers/{other}/json")[0] == 200
    finally:
        daemon.request("DELETE", f"/containers/{zap}?force=1")
        daemon.request("DELETE", f"/containers/{other}?force=1")
        for name in _networks(daemon):
            daemon.request("DELETE", f"/networks/{name}")


@pytest.mark.skipif(DOCKER is None, reason="the docker CLI is not installed")
def test_docker_cli_container_prune_with_filters(daemon: Daemon) -> None:
    four(daemon, "pd")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
    env["DOCKER_CONFIG"] = str(daemon.run_dir / "docker-config")
    try:
        result = subprocess.run([str(DOCKER), "-H", daemon.host, "container", "prune", "-f",
                                 "--filter", "label=pd", "--filter", "label!=a"],
                                capture_output=True, text=True, timeout=120, check=True,
                                env=env)
        assert result.stdout.startswith("Deleted Containers:\n")
        assert names(daemon, "pd") == ["c1", "c2"]
        refused = subprocess.run([str(DOCKER), "-H", daemon.host, "container", "prune", "-f",
                                  "--filter", "colour=red"], capture_output=True, text=True,
                                 timeout=120, check=False, env=env)
        assert refused.returncode != 0
        assert "invalid filter 'colour'" in refused.stderr
        assert names(daemon, "pd") == ["c1", "c2"]
    finally:
        remove_containers(daemon, "pd")
