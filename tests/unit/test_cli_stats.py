"""``wharf stats``: docker's row values and ``--format``, the redraw on a terminal and the
frames off one, and which containers are followed as they come and go (a fake source; the
real streams are tests/integration/test_stats_live.py's)."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from tests.unit.test_cli_gateway import FakeGateway, run
from wharf.cli.commands.stats import CLEAR, STATS_TABLE, Watch, draw, invalid_row, stats_row
from wharf.cli.failure import CLIError
from wharf.cli.main import build_cli
from wharf.cli.session import Hooks
from wharf.cli.templates import parse
from wharf.errors import NotFound

CID = "4eab07" + "a" * 58
OTHER = "77bc01" + "c" * 58


def sample(cid: str = CID, name: str = "/web", total: int = 300, pids: int = 3) -> dict[str, Any]:
    return {"id": cid, "name": name,
            "cpu_stats": {"cpu_usage": {"total_usage": total}, "system_cpu_usage": 2000,
                          "online_cpus": 2},
            "precpu_stats": {"cpu_usage": {"total_usage": 100}, "system_cpu_usage": 1000},
            "memory_stats": {"usage": 2 * 1048576, "limit": 8 * 1048576,
                             "stats": {"inactive_file": 1048576}},
            "networks": {"eth0": {"rx_bytes": 1000, "tx_bytes": 2000}},
            "blkio_stats": {"io_service_bytes_recursive": [{"op": "Read", "value": 4096},
                                                           {"op": "Write", "value": 0}]},
            "pids_stats": {"current": pids}}


class Source:
    """A daemon's containers and stats streams, changed by the test between frames."""

    def __init__(self) -> None:
        self.listed: list[dict[str, Any]] = []
        self.samples: dict[str, list[dict[str, Any]]] = {}
        self.release: dict[str, threading.Event] = {}  # a stream's second sample waits on it
        self.stop = threading.Event()  # the streams end (their containers stopped)
        self.opened: list[str] = []

    def containers(self, all: bool = False) -> list[dict[str, Any]]:
        return [c for c in self.listed if all or c["State"] == "running"]

    def stats(self, name: str) -> dict[str, Any]:
        if name not in self.samples:
            raise NotFound(f"No such container: {name}")
        return self.samples[name][0]

    def stats_stream(self, name: str) -> Iterator[dict[str, Any]]:
        if name not in self.samples:
            raise NotFound(f"No such container: {name}")
        self.opened.append(name)
        gate = self.release.setdefault(name, threading.Event())

        def gen() -> Iterator[dict[str, Any]]:
            if self.stop.is_set():  # a stopped container's stream is empty
                return
            for index, doc in enumerate(self.samples[name]):
                if index:
                    assert gate.wait(5), "the test never released the next sample"
                yield doc
            self.stop.wait(30)  # a running container's stream does not end by itself
        return gen()


def test_a_row_says_what_docker_says() -> None:
    row = stats_row(sample(), "web")
    assert row.fields == {"Container": "web", "ID": CID[:12], "Name": "web", "CPUPerc": "40.00%",
                          "MemUsage": "1MiB / 8MiB", "MemPerc": "12.50%",
                          "NetIO": "1kB / 2kB", "BlockIO": "4.1kB / 0B", "PIDs": "3"}
    assert stats_row(sample(), "web", trunc=False).fields["ID"] == CID
    gone = invalid_row("web", row)
    assert [gone.fields[k] for k in ("ID", "Name", "CPUPerc", "MemUsage", "PIDs")] == [
        CID[:12], "web", "--", "-- / --", "--"]
    assert invalid_row("x").fields["Name"] == "--"


def test_formats_table_json_and_templates() -> None:
    rows = [stats_row(sample(), "web"), stats_row(sample(OTHER, "/db", pids=7), OTHER[:12])]
    table = draw(parse(STATS_TABLE), rows, clear=False).splitlines()
    assert table[0].split("   ")[0:2] == ["CONTAINER ID", "NAME"]
    assert [c.strip() for c in table[0].split("   ") if c.strip()] == [
        "CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "NET I/O", "BLOCK I/O",
        "PIDS"]
    assert table[2].split()[:2] == [OTHER[:12], "db"] and table[2].split()[-1] == "7"
    custom = draw(parse("table {{.Container}}\t{{.CPUPerc}}\t{{.PIDs}}"), rows, clear=False)
    assert custom.splitlines()[0].split() == ["CONTAINER", "CPU", "%", "PIDS"]
    assert draw(parse("{{.Name}}: {{.MemPerc}}"), rows, False) == "web: 12.50%\ndb: 12.50%\n"
    first = json.loads(draw(parse("json"), rows, False).splitlines()[0])
    assert sorted(first) == ["BlockIO", "CPUPerc", "Container", "ID", "MemPerc", "MemUsage",
                             "Name", "NetIO", "PIDs"]
    with pytest.raises(CLIError, match="can't evaluate field Nope"):
        draw(parse("{{.Nope}}"), rows, False)


def test_on_a_terminal_each_frame_clears_and_redraws_the_whole_table() -> None:
    source = Source()
    source.samples[CID] = [sample(total=300), sample(total=500, pids=4)]
    frames: list[str] = []
    watch = Watch(source, [CID], all_=False, stream=True, trunc=True,
                  template=parse("{{.CPUPerc}} {{.PIDs}}"))
    watch.run(frames.append, tty=True, frames=2,
              sleep=lambda _: _settle(source.release[CID], watch, CID, "4"))
    assert frames == [CLEAR + "40.00% 3\n", CLEAR + "80.00% 4\n"]
    assert source.opened == [CID]  # one stream, followed: not one request a frame


def test_off_a_terminal_the_frames_follow_each_other_and_no_stream_draws_once() -> None:
    source = Source()
    source.samples[CID] = [sample(total=300), sample(total=500, pids=4)]
    frames: list[str] = []
    watch = Watch(source, [CID], False, True, True, parse(STATS_TABLE))
    watch.run(frames.append, tty=False, frames=2,
              sleep=lambda _: _settle(source.release[CID], watch, CID, "4"))
    assert len(frames) == 2 and "\x1b" not in "".join(frames)
    assert [f.splitlines()[1].split()[-1] for f in frames] == ["3", "4"]
    once: list[str] = []
    Watch(source, [CID], False, False, True, parse("{{.PIDs}}")).run(once.append, tty=True)
    assert once == ["3\n"] and source.opened == [CID]  # no-stream: stream=0, no clearing


def test_without_names_containers_come_and_go_between_frames() -> None:
    source = Source()
    source.listed = [{"Id": CID, "State": "running"}]
    source.samples = {CID: [sample()], OTHER: [sample(OTHER, "/db")]}
    frames: list[str] = []

    def between(_: float) -> None:  # web stops, db starts
        source.listed = [{"Id": CID, "State": "exited"}, {"Id": OTHER, "State": "running"}]

    watch = Watch(source, [], False, True, True, parse("{{.Container}} {{.Name}}"))
    watch.run(frames.append, tty=False, frames=2, sleep=between)
    assert frames == [f"{CID[:12]} web\n", f"{OTHER[:12]} db\n"]
    shown: list[str] = []
    every = Watch(source, [], True, True, True, parse("{{.Name}} {{.CPUPerc}}"))
    every.run(shown.append, tty=False, frames=1)
    assert shown == ["-- --\ndb 40.00%\n"]  # -a: the stopped one stays, with no sample


def test_a_named_container_that_is_not_there_is_an_error() -> None:
    source = Source()
    source.samples[CID] = [sample()]
    with pytest.raises(CLIError, match="No such container: nope"):
        Watch(source, [CID, "nope"], False, True, True, parse(STATS_TABLE)).run(
            lambda _: None, tty=False, frames=1)
    source.listed = [{"Id": "gone" * 16, "State": "running"}, {"Id": CID, "State": "running"}]
    out: list[str] = []  # listed, then removed before its stats: left out, no error
    Watch(source, [], False, True, True, parse("{{.Name}}")).run(out.append, False, 1)
    assert out == ["web\n"]


def test_the_command_draws_with_the_format_and_refuses_a_bad_one() -> None:
    samples = {CID: sample()}

    def daemon(request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix("/v1.41")
        if path == "/containers/json":
            return httpx.Response(200, json=[{"Id": CID, "State": "running"}])
        assert request.url.params["stream"] == "0"
        return httpx.Response(200, json=samples[path.split("/")[2]])

    runner = CliRunner()
    hooks = Hooks(wire=httpx.MockTransport(daemon), stdout_tty=True)
    done = runner.invoke(build_cli(), ["stats", "--no-stream", "--format",
                                       "table {{.Name}}\t{{.MemUsage}}"], obj=hooks)
    assert done.exit_code == 0, done.output
    assert [re.split(r"\s{2,}", line) for line in done.output.splitlines()] == [
        ["NAME", "MEM USAGE / LIMIT"], ["web", "1MiB / 8MiB"]]
    assert CLEAR not in done.output  # --no-stream: one table, no redraw
    bad = runner.invoke(build_cli(), ["stats", "--no-stream", "--format", "{{.CPUPerc"],
                        obj=hooks)
    assert bad.exit_code == 1 and "unclosed action" in bad.output


def _settle(gate: threading.Event, watch: Watch, key: str, pids: str) -> None:
    """Release the second sample and wait until the board has it (the follower's thread)."""
    gate.set()
    for _ in range(500):
        rows = watch.board.rows({key: key})
        if rows[0].fields["PIDs"] == pids:
            return
        threading.Event().wait(0.01)
    raise AssertionError("the second sample never reached the board")


def test_a_named_container_that_stops_stays_with_dashes() -> None:
    source = Source()
    source.samples[CID] = [sample()]
    frames: list[str] = []
    watch = Watch(source, ["web"], False, True, True, parse("{{.Container}} {{.Name}} "
                                                              "{{.CPUPerc}} {{.MemUsage}}"))
    source.samples["web"] = source.samples[CID]

    def stopped(_: float) -> None:
        source.stop.set()
        watch.threads["web"].join(5)

    watch.run(frames.append, tty=False, frames=2, sleep=stopped)
    assert frames == ["web web 40.00% 1MiB / 8MiB\n", "web web -- -- / --\n"]


def test_a_container_that_leaves_the_list_and_comes_back_is_followed_once() -> None:
    source = Source()  # paused: not listed without -a, its stream still open
    source.samples[CID] = [sample()]
    states = iter(["running", "paused", "running"])
    source.listed = [{"Id": CID, "State": next(states)}]
    frames: list[str] = []

    def between(_: float) -> None:
        source.listed = [{"Id": CID, "State": next(states)}]

    Watch(source, [], False, True, True, parse("{{.Name}}")).run(frames.append, False, 3,
                                                                  sleep=between)
    assert frames == ["web\n", "", "web\n"] and source.opened == [CID]


def test_node_stats_go_through_the_gateway_relay() -> None:
    fake = FakeGateway()
    fake.route("GET", "/v1/nodes/n1/containers/json",
               lambda r: httpx.Response(200, json=[{"Id": CID, "State": "running"}]))
    fake.route("GET", f"/v1/nodes/n1/containers/{CID}/stats",
               lambda r: httpx.Response(200, json=sample()))
    done = run(fake, "--node", "n1", "stats", "--no-stream", "--format", "{{.Name}} {{.PIDs}}")
    assert done.exit_code == 0, done.output
    assert done.output == "web 3\n"
    relayed = fake.seen[-1]
    assert relayed.url.params["stream"] == "0" and "wait" not in relayed.url.params
