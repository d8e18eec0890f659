"""``wharf system df [-v] [--format]`` against a fake daemon.

The expected outputs are what docker 28.2 printed for the same ``/system/df`` document, served
by a fake daemon (times relative to now, far from the wording's boundaries).
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from tests.unit.test_cli_images import FakeDaemon, run
from wharf.cli.commands.diskusage import summary_rows
from wharf.cli.formatting import go_time_text

DAY = 86400


def _rfc(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _images(now: int) -> list[dict[str, Any]]:
    return [
        {"Containers": 2, "Created": now - 3 * DAY - 100, "Id": "sha256:" + "a" * 64,
         "Labels": {"x": "y"}, "ParentId": "", "RepoDigests": ["busybox@sha256:" + "d" * 64],
         "RepoTags": ["busybox:latest", "127.0.0.1:5000/library/busybox:v1"],
         "SharedSize": 4000000, "Size": 4500000, "VirtualSize": 4500000},
        {"Containers": 0, "Created": now - 7230, "Id": "sha256:" + "b" * 64, "Labels": None,
         "ParentId": "", "RepoDigests": None, "RepoTags": None, "SharedSize": 0, "Size": 999,
         "VirtualSize": 999},
        # docker leaves out an image whose first tag does not parse and that is not dangling
        {"Containers": 0, "Created": now - 90, "Id": "sha256:" + "c" * 64, "Labels": None,
         "ParentId": "", "RepoDigests": ["repo/x@sha256:" + "e" * 64],
         "RepoTags": ["<none>:<none>"], "SharedSize": 4000000, "Size": 118000000,
         "VirtualSize": 118000000},
    ]


def _container(n: str, name: str, image: str, command: str, created: int, state: str,
               status: str, **extra: Any) -> dict[str, Any]:
    return {"Id": n * 64, "Names": [f"/{name}"], "Image": image,
            "ImageID": "sha256:" + "a" * 64, "Command": command, "Created": created,
            "Ports": [], "Labels": {}, "State": state, "Status": status,
            "HostConfig": {"NetworkMode": "default"}, "NetworkSettings": {"Networks": {}},
            "Mounts": [], **extra}


def _volume(name: str, driver: str, size: int, refs: int) -> dict[str, Any]:
    return {"CreatedAt": "2026-01-01T00:00:00Z", "Driver": driver, "Labels": None,
            "Mountpoint": f"/v/{name[:2]}", "Name": name, "Options": None, "Scope": "local",
            "UsageData": {"Size": size, "RefCount": refs}}


def _cache(now: int) -> list[dict[str, Any]]:
    return [
        {"ID": "k1abcdefghijklmnop", "Parent": "", "Type": "regular", "Description": "RUN x",
         "InUse": False, "Shared": False, "Size": 7000000, "CreatedAt": _rfc(now - 40 * DAY),
         "LastUsedAt": _rfc(now - 20 * DAY), "UsageCount": 3},
        {"ID": "k2", "Parent": "k1abcdefghijklmnop", "Type": "source.local",
         "Description": "local source", "InUse": True, "Shared": True, "Size": 1000,
         "CreatedAt": _rfc(now - 40 * DAY), "LastUsedAt": None, "UsageCount": 1},
        {"ID": "k0", "Parent": "", "Type": "regular", "Description": "COPY . /", "InUse": True,
         "Shared": False, "Size": 3000, "CreatedAt": _rfc(now - 40 * DAY),
         "LastUsedAt": _rfc(now - 30 * DAY), "UsageCount": 1},
    ]


def df_document() -> dict[str, Any]:
    now = int(time.time())
    return {
        "LayersSize": 123456789,
        "Images": _images(now),
        "Containers": [
            _container("1", "web", "busybox", "sleep 1000000 with a long tail", now - 330,
                       "running", "Up 5 minutes", SizeRw=12345, SizeRootFs=4512345,
                       Mounts=[{"Type": "volume", "Name": "v1", "Driver": "local"}]),
            _container("2", "old", "sha256:" + "a" * 64, "true", now - DAY - 100, "exited",
                       "Exited (0) 23 hours ago", SizeRw=2048, SizeRootFs=4502048),
            _container("3", "fresh", "busybox", "", now - 630, "created", "Created",
                       SizeRootFs=4500000),
        ],
        "Volumes": [_volume("v1", "local", 5000, 1), _volume("f" * 64, "local", 1500000, 0),
                    _volume("remote", "other", -1, 0)],
        "BuildCache": _cache(now),
        "BuilderSize": 7004000,
    }


@pytest.fixture
def daemon() -> FakeDaemon:
    fake = FakeDaemon()
    fake.route("GET", "/system/df", lambda r: httpx.Response(200, json=df_document()))
    return fake


def test_df_summary_is_dockers_table(daemon: FakeDaemon) -> None:
    result = run(daemon, "system", "df")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "TYPE            TOTAL     ACTIVE    SIZE      RECLAIMABLE",
        "Images          3         1         123.5MB   123MB (99%)",
        "Containers      3         1         14.39kB   2.048kB (14%)",
        "Local Volumes   3         1         1.505MB   1.5MB (99%)",
        "Build Cache     3         2         7.003MB   7MB",
    ]
    assert daemon.seen[0].url.params.get("type") is None  # API 1.41: no type filter sent


def test_df_verbose_prints_dockers_four_sections(daemon: FakeDaemon) -> None:
    result = run(daemon, "system", "df", "-v")
    assert result.exit_code == 0, result.output
    long_name = "f" * 64
    assert result.output == "\n".join([
        "Images space usage:",
        "",
        "REPOSITORY   TAG       IMAGE ID       CREATED       SIZE      SHARED SIZE   "
        "UNIQUE SIZE   CONTAINERS",
        "busybox      latest    aaaaaaaaaaaa   3 days ago    4.5MB     4MB           "
        "500kB         2",
        "<none>       <none>    bbbbbbbbbbbb   2 hours ago   999B      0B            "
        "999B          0",
        "",
        "Containers space usage:",
        "",
        "CONTAINER ID   IMAGE          COMMAND                  LOCAL VOLUMES   SIZE      "
        "CREATED          STATUS                    NAMES",
        '111111111111   busybox        "sleep 1000000 with …"   1               12.3kB    '
        "5 minutes ago    Up 5 minutes              web",
        '222222222222   aaaaaaaaaaaa   "true"                   0               2.05kB    '
        "24 hours ago     Exited (0) 23 hours ago   old",
        '333333333333   busybox        ""                       0               0B        '
        "10 minutes ago   Created                   fresh",
        "",
        "Local Volumes space usage:",
        "",
        "VOLUME NAME" + " " * 56 + "LINKS     SIZE",
        "v1" + " " * 65 + "1         5kB",
        f"{long_name}   0         1.5MB",
        "remote" + " " * 61 + "0         -1B",
        "",
        "Build cache usage: 7.003MB",
        "",
        "CACHE ID       CACHE TYPE     SIZE      CREATED       LAST USED     USAGE     SHARED",
        "k2*            source.local   1kB       5 weeks ago                 1         true",
        "k0*            regular        3kB       5 weeks ago   4 weeks ago   1         false",
        "k1abcdefghij   regular        7MB       5 weeks ago   2 weeks ago   3         false",
    ]) + "\n"


def test_df_formats(daemon: FakeDaemon) -> None:
    result = run(daemon, "system", "df", "--format", "json")
    assert result.output.splitlines()[0] == (
        '{"Active":"1","Reclaimable":"123MB (99%)","Size":"123.5MB","TotalCount":"3",'
        '"Type":"Images"}')
    result = run(daemon, "system", "df", "--format", "table {{.Type}}\\t{{.Size}}")
    assert result.output.splitlines()[:2] == ["TYPE            SIZE", "Images          123.5MB"]
    result = run(daemon, "system", "df", "--format", "raw")
    assert result.output.startswith("type: Images\ntotal: 3\nactive: 1\nsize: 123.5MB\n"
                                    "reclaimable: 123MB (99%)\n\ntype: Containers\n")
    result = run(daemon, "system", "df", "--format", "{{.Nope}}")
    assert result.exit_code == 1
    assert "can't evaluate field Nope in type *formatter.diskUsageImagesContext" in (
        result.output)


def test_df_verbose_json_is_every_row_untruncated(daemon: FakeDaemon) -> None:
    result = run(daemon, "system", "df", "-v", "--format", "json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    assert list(document) == ["Images", "Containers", "Volumes", "BuildCache"]
    assert document["Images"][1]["Repository"] == "<none>"
    assert "\\u003cnone\\u003e" in result.output  # Go's json.Marshal escapes < and >
    assert document["Containers"][0] == {
        "Command": '"sleep 1000000 with a long tail"',
        "CreatedAt": document["Containers"][0]["CreatedAt"], "ID": "1" * 64,
        "Image": "busybox", "Labels": "", "LocalVolumes": "1", "Mounts": "v1", "Names": "web",
        "Networks": "", "Platform": None, "Ports": "", "RunningFor": "5 minutes ago",
        "Size": "12.3kB", "State": "running", "Status": "Up 5 minutes"}
    assert document["Volumes"][0] == {
        "Availability": "N/A", "Driver": "local", "Group": "N/A", "Labels": "", "Links": "1",
        "Mountpoint": "/v/v1", "Name": "v1", "Scope": "local", "Size": "5kB", "Status": "N/A"}
    cache = document["BuildCache"][1]
    assert (cache["ID"], cache["Parent"], cache["InUse"], cache["LastUsedSince"]) == (
        "k0*", "", "true", "4 weeks ago")
    assert document["BuildCache"][0]["Parent"] == "k1abcdefghijklmnop"
    result = run(daemon, "system", "df", "-v", "--format", "{{json .Volumes}}")
    assert json.loads(result.output)[2]["Size"] == "-1B"


def test_df_of_an_empty_daemon_has_no_percentages() -> None:
    rows = summary_rows({"LayersSize": 0, "Images": [], "Containers": [], "Volumes": [],
                         "BuildCache": None, "BuilderSize": 0})
    assert [r.fields["Reclaimable"] for r in rows] == ["0B", "0B", "0B", "0B"]


def test_go_time_text_keeps_the_zone_and_only_needed_fractions() -> None:
    assert go_time_text(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)) == (
        "2026-01-02 03:04:05 +0000 UTC")
    assert go_time_text(datetime(2026, 1, 2, 3, 4, 5, 500000, tzinfo=UTC)) == (
        "2026-01-02 03:04:05.5 +0000 UTC")
