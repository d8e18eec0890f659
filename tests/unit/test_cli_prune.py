"""``wharf system prune``, ``wharf builder prune`` and ``wharf image prune`` against a fake daemon.

The expected requests and outputs are what docker 28.2 sent and printed against a fake daemon
giving the same replies.
"""

from __future__ import annotations

import json

import httpx
import pytest

from tests.unit.test_cli_images import FakeDaemon, run
from wharf.cli.commands.prune import natural_key, system_warning

C2, C3 = "2" * 64, "3" * 64
IMAGE = "sha256:" + "b" * 64
PRUNED = {
    "/containers/prune": {"ContainersDeleted": [C2, C3], "SpaceReclaimed": 2048},
    "/networks/prune": {"NetworksDeleted": ["net1", "net2"]},
    "/volumes/prune": {"VolumesDeleted": ["f" * 64], "SpaceReclaimed": 1500000},
    "/images/prune": {"ImagesDeleted": [{"Untagged": "x:1"}, {"Deleted": IMAGE}],
                      "SpaceReclaimed": 999},
    "/build/prune": {"CachesDeleted": ["k1abcdefghijklmnop", "k3"], "SpaceReclaimed": 7000000},
}
REPORT = [
    "Deleted Containers:", C2, C3, "",
    "Deleted Networks:", "net1", "net2", "",
    "Deleted Images:", "untagged: x:1", f"deleted: {IMAGE}", "",
    "Deleted build cache objects:", "k1abcdefghijklmnop", "k3", "",
    "Total reclaimed space: 7.003MB",
]
WARNING = ("WARNING! This will remove:\n"
           "  - all stopped containers\n"
           "  - all networks not used by at least one container\n"
           "  - all dangling images\n"
           "  - unused build cache\n"
           "\n"
           "Are you sure you want to continue? [y/N] ")


@pytest.fixture
def daemon() -> FakeDaemon:
    fake = FakeDaemon()
    for path, reply in PRUNED.items():
        fake.route("POST", path, lambda r, reply=reply: httpx.Response(200, json=reply))
    return fake


def _calls(daemon: FakeDaemon) -> list[tuple[str, dict[str, str]]]:
    return [(r.url.path.removeprefix("/v1.41"), dict(r.url.params)) for r in daemon.seen]


def test_system_prune_runs_dockers_prunes_in_order_and_totals(daemon: FakeDaemon) -> None:
    result = run(daemon, "system", "prune", "-f")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == REPORT
    assert _calls(daemon) == [
        ("/containers/prune", {}), ("/networks/prune", {}),
        ("/images/prune", {"filters": '{"dangling":{"true":true}}'}),
        ("/build/prune", {"filters": ""}),
    ]


def test_system_prune_all_volumes_and_filters_reach_every_prune(daemon: FakeDaemon) -> None:
    result = run(daemon, "system", "prune", "-f", "-a", "--volumes", "--filter", "label=a=b",
                 "--filter", "label!=c")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[8:11] == ["Deleted Volumes:", "f" * 64, ""]
    assert lines[-1] == "Total reclaimed space: 8.503MB"
    labels = '"label":{"a=b":true},"label!":{"c":true}'
    assert _calls(daemon) == [
        ("/containers/prune", {"filters": "{" + labels + "}"}),
        ("/networks/prune", {"filters": "{" + labels + "}"}),
        ("/volumes/prune", {"filters": "{" + labels + "}"}),
        ("/images/prune", {"filters": '{"dangling":{"false":true},' + labels + "}"}),
        ("/build/prune", {"all": "1", "filters": "{" + labels + "}"}),
    ]


def test_system_prune_asks_and_reads_the_answer_from_stdin(daemon: FakeDaemon) -> None:
    for answer in ("", "n\n", "yes\n"):  # EOF, no, and docker's "only y is yes"
        result = run(daemon, "system", "prune", input=answer)
        assert result.exit_code == 0, result.output
        assert result.output == WARNING
    assert daemon.seen == []
    result = run(daemon, "system", "prune", input=" Y \n")
    assert result.output.splitlines() == [*WARNING.splitlines()[:-1],
                                          WARNING.splitlines()[-1] + REPORT[0], *REPORT[1:]]


def test_system_prune_warning_lists_what_goes_and_the_filters() -> None:
    filters = {"label": ["a=b", "10", "9"], "label!": ["z"], "until": ["1h"], "foo": ["bar"]}
    assert system_warning(True, True, filters) == (
        "WARNING! This will remove:\n"
        "  - all stopped containers\n"
        "  - all networks not used by at least one container\n"
        "  - all anonymous volumes not used by at least one container\n"
        "  - all images without at least one container associated to them\n"
        "  - all build cache\n"
        "\n"
        "  Items to be pruned will be filtered with:\n"
        "  - label!=z\n"
        "  - label=9\n"
        "  - label=10\n"
        "  - label=a=b\n"
        "  - until=1h\n"
        "\n"
        "Are you sure you want to continue?")


def test_natural_order_puts_digits_first_and_numbers_by_value() -> None:
    # sortorder.NaturalLess: equal numbers, fewer leading zeros first, decided at once
    words = ["a10", "a9", "a09", "a", "a=b", "a!", "b1", "a9x"]
    assert sorted(words, key=natural_key) == ["a", "a9", "a9x", "a09", "a10", "a!", "a=b", "b1"]


def test_until_with_volumes_is_refused_before_asking(daemon: FakeDaemon) -> None:
    result = run(daemon, "system", "prune", "--volumes", "--filter", "until=1h", input="y\n")
    assert result.exit_code == 1
    assert result.output == 'ERROR: The "until" filter is not supported with "--volumes"\n'
    assert daemon.seen == []


def test_a_failing_prune_stops_after_what_was_printed(daemon: FakeDaemon) -> None:
    daemon.routes.pop(("POST", "/v1.41/build/prune"))  # the docker CLI does not skip a 404
    result = run(daemon, "system", "prune", "-f")
    assert result.exit_code == 1
    assert result.output.splitlines()[:12] == REPORT[:12]
    assert result.output.splitlines()[-1] == "Error response from daemon: page not found: " \
        "/v1.41/build/prune"


def test_builder_prune_sends_all_keep_storage_and_filters(daemon: FakeDaemon) -> None:
    result = run(daemon, "builder", "prune", "-f", "-a", "--keep-storage", "1GB", "--filter",
                 "until=24h")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "Deleted build cache objects:", "k1abcdefghijklmnop", "k3", "",
        "Total reclaimed space: 7MB"]
    assert _calls(daemon) == [("/build/prune", {
        "all": "1", "keep-storage": "1073741824", "filters": '{"until":{"24h":true}}'})]


def test_builder_prune_asks_like_docker(daemon: FakeDaemon) -> None:
    result = run(daemon, "builder", "prune", input="n\n")
    assert result.output == ("WARNING! This will remove all dangling build cache. Are you sure "
                             "you want to continue? [y/N] ")
    result = run(daemon, "builder", "prune", "-a", input="")
    assert result.output.startswith("WARNING! This will remove all build cache. Are you sure")
    assert daemon.seen == []
    result = run(daemon, "builder", "prune", "--keep-storage", "lots")
    assert result.exit_code == 2
    assert "invalid size: 'lots'" in result.output


def test_image_prune_all_prints_dockers_report(daemon: FakeDaemon) -> None:
    result = run(daemon, "image", "prune", "-a", "-f", "--filter", "label=x")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "Deleted Images:", "untagged: x:1", f"deleted: {IMAGE}", "",
        "Total reclaimed space: 999B"]
    assert json.loads(_calls(daemon)[0][1]["filters"]) == {
        "dangling": {"false": True}, "label": {"x": True}}
    result = run(daemon, "image", "prune", input="y\n")
    assert result.output.startswith("WARNING! This will remove all dangling images.\n"
                                    "Are you sure you want to continue? [y/N] Deleted Images:")


def test_nothing_deleted_counts_no_space(daemon: FakeDaemon) -> None:
    daemon.route("POST", "/containers/prune", lambda r: httpx.Response(
        200, json={"ContainersDeleted": None, "SpaceReclaimed": 5}))
    daemon.route("POST", "/images/prune", lambda r: httpx.Response(
        200, json={"ImagesDeleted": None, "SpaceReclaimed": 0}))
    daemon.route("POST", "/build/prune", lambda r: httpx.Response(
        200, json={"CachesDeleted": [], "SpaceReclaimed": 0}))
    result = run(daemon, "system", "prune", "-f")
    assert result.output.splitlines() == ["Deleted Networks:", "net1", "net2", "",
                                          "Total reclaimed space: 0B"]
