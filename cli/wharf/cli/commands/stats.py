"""``stats``: containers' resource usage, live, as ``docker stats`` shows it.

Each container is followed by a thread of its own on the daemon's stats stream (``stream=1``;
one sample, ``stream=0``, with ``--no-stream``), which keeps that container's latest row on a
:class:`Board`; the main thread draws the board every second. On a terminal each frame clears
the screen and draws the whole table again in one write, as docker does; otherwise the frames
are printed one after the other. Named containers are followed as named; with no names the
containers are listed again before each frame, so containers that start appear and those that
stop leave (``-a`` keeps the stopped ones, shown ``--``, as docker does when no sample comes).
Through the gateway (``--node``), the same requests reach the node's daemon, relayed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Protocol

import click

from wharf.cli.failure import CLIError
from wharf.cli.formatting import bytes_size, human_size
from wharf.cli.session import current
from wharf.cli.templates import Row, Template, TemplateError, parse, render_rows
from wharf.errors import WharfError

STATS_HEADERS = {"Container": "CONTAINER", "ID": "CONTAINER ID", "Name": "NAME",
                 "CPUPerc": "CPU %", "MemUsage": "MEM USAGE / LIMIT", "MemPerc": "MEM %",
                 "NetIO": "NET I/O", "BlockIO": "BLOCK I/O", "PIDs": "PIDS"}
STATS_TABLE = ("table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t"
               "{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}")
ROW_TYPE = "*container.statsContext"  # docker's name for the row, in template errors
CLEAR = "\x1b[2J\x1b[H"  # erase the screen, cursor home: docker's redraw
REFRESH_SECONDS = 1.0
FIRST_SAMPLE_SECONDS = 2.0  # docker's wait for a container's first sample before "--"


class StatsSource(Protocol):
    """What stats needs of the API client (a daemon's, or a node's through the gateway)."""

    def containers(self, all: bool = False) -> list[dict[str, Any]]: ...

    def stats(self, name: str) -> dict[str, Any]: ...

    def stats_stream(self, name: str) -> Iterator[dict[str, Any]]: ...


def cpu_percent(stats: Mapping[str, Any]) -> float:
    """docker's ``calculateCPUPercentUnix`` from cpu_stats and precpu_stats."""
    cpu, pre = stats.get("cpu_stats") or {}, stats.get("precpu_stats") or {}
    usage, pre_usage = cpu.get("cpu_usage") or {}, pre.get("cpu_usage") or {}
    cpu_delta = float(usage.get("total_usage") or 0) - float(pre_usage.get("total_usage") or 0)
    system_delta = float(cpu.get("system_cpu_usage") or 0) - float(
        pre.get("system_cpu_usage") or 0)
    online = int(cpu.get("online_cpus") or 0) or len(usage.get("percpu_usage") or [])
    if system_delta > 0 and cpu_delta > 0:
        return cpu_delta / system_delta * online * 100.0
    return 0.0


def memory_usage(mem: Mapping[str, Any]) -> float:
    """Usage without the page cache (cgroup v1 total_inactive_file, v2 inactive_file)."""
    usage = float(mem.get("usage") or 0)
    detail = mem.get("stats") or {}
    for key in ("total_inactive_file", "inactive_file"):
        if key in detail and float(detail[key]) < usage:
            return usage - float(detail[key])
    return usage


def _pair(first: float, second: float) -> str:
    return f"{human_size(first, 3)} / {human_size(second, 3)}"


def stats_row(doc: Mapping[str, Any], container: str, trunc: bool = True) -> Row:
    """docker's ``statsContext`` for one stats document; ``container`` is the name or ID the
    container was asked by (``{{.Container}}``)."""
    mem = doc.get("memory_stats") or {}
    usage, limit = memory_usage(mem), float(mem.get("limit") or 0)
    nets = (doc.get("networks") or {}).values()
    blkio = (doc.get("blkio_stats") or {}).get("io_service_bytes_recursive") or []

    def io(op: str) -> float:
        return sum(float(e.get("value") or 0) for e in blkio if str(e.get("op")).lower() == op)

    return Row({
        "Container": container, "ID": _id(doc, trunc), "Name": _name(doc),
        "CPUPerc": f"{cpu_percent(doc):.2f}%",
        "MemUsage": f"{bytes_size(usage)} / {bytes_size(limit)}",
        "MemPerc": f"{usage / limit * 100 if limit else 0:.2f}%",
        "NetIO": _pair(sum(float(n.get("rx_bytes") or 0) for n in nets),
                       sum(float(n.get("tx_bytes") or 0) for n in nets)),
        "BlockIO": _pair(io("read"), io("write")),
        "PIDs": str(int((doc.get("pids_stats") or {}).get("current") or 0)),
    }, ROW_TYPE)


def invalid_row(container: str, before: Row | None = None) -> Row:
    """A container with no sample (stopped, or none came in time): its values are ``--``,
    its ID and name what the last sample said."""
    known = before.fields if before is not None else {}
    return Row({"Container": container, "ID": known.get("ID", ""),
                "Name": known.get("Name", "--"), "CPUPerc": "--", "MemUsage": "-- / --",
                "MemPerc": "--", "NetIO": "--", "BlockIO": "--", "PIDs": "--"}, ROW_TYPE)


def _id(doc: Mapping[str, Any], trunc: bool) -> str:
    full = str(doc.get("id") or "")
    return full[:12] if trunc else full


def _name(doc: Mapping[str, Any]) -> str:
    name = str(doc.get("name") or "")
    return name[1:] if len(name) > 1 else "--"


def draw(template: Template, rows: Sequence[Row], clear: bool) -> str:
    """One frame: the rows through the template, after the screen's erasure on a terminal."""
    try:
        text = render_rows(template, rows, STATS_HEADERS)
    except TemplateError as exc:
        raise CLIError(str(exc)) from exc
    return (CLEAR if clear else "") + text + ("\n" if text else "")


class Board:
    """The latest row of each followed container: written by the followers' threads, read
    by the thread that draws."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rows: dict[str, Row] = {}
        self._errors: dict[str, str] = {}
        self._first: dict[str, threading.Event] = {}

    def expect(self, key: str) -> None:
        """A follower starts for ``key``: :meth:`wait_first` waits for its first word."""
        with self._lock:
            self._errors.pop(key, None)
            self._first.setdefault(key, threading.Event())

    def put(self, key: str, row: Row) -> None:
        with self._lock:
            self._rows[key] = row
            self._first.setdefault(key, threading.Event()).set()

    def ended(self, key: str, container: str, error: str | None = None) -> None:
        """``key``'s stream is over (the container stopped), or failed with ``error``."""
        with self._lock:
            self._rows[key] = invalid_row(container, self._rows.get(key))
            if error is not None:
                self._errors[key] = error
            self._first.setdefault(key, threading.Event()).set()

    def wait_first(self, keys: Sequence[str], timeout: float) -> None:
        """Wait (at most ``timeout`` in all) until each of ``keys`` had a sample or an end."""
        deadline = time.monotonic() + timeout
        for key in keys:
            with self._lock:
                first = self._first.get(key)
            if first is not None:
                first.wait(max(0.0, deadline - time.monotonic()))

    def rows(self, wanted: Mapping[str, str]) -> list[Row]:
        """``wanted`` (key → the container as shown) in order; ``--`` for those with none."""
        with self._lock:
            return [self._rows.get(key) or invalid_row(shown) for key, shown in wanted.items()]

    def errors(self, keys: Sequence[str]) -> list[str]:
        with self._lock:
            return [self._errors[k] for k in keys if k in self._errors]

    def forget(self, keys: Sequence[str]) -> None:
        with self._lock:
            for key in keys:
                self._rows.pop(key, None)
                self._errors.pop(key, None)
                self._first.pop(key, None)


def follow(source: StatsSource, key: str, shown: str, board: Board, stream: bool,
           trunc: bool) -> None:
    """Keep ``key``'s row on the board until its stream ends (a follower thread's body)."""
    try:
        if not stream:
            board.put(key, stats_row(source.stats(key), shown, trunc))
            return
        for doc in source.stats_stream(key):
            board.put(key, stats_row(doc, shown, trunc))
        board.ended(key, shown)
    except WharfError as exc:
        board.ended(key, shown, str(exc))


class Watch:
    """``wharf stats``: what to show, where from, and the frames drawn."""

    def __init__(self, source: StatsSource, names: Sequence[str], all_: bool, stream: bool,
                 trunc: bool, template: Template) -> None:
        self.source, self.names, self.all, self.stream = source, list(names), all_, stream
        self.trunc, self.template = trunc, template
        self.board = Board()
        self.threads: dict[str, threading.Thread] = {}
        self.drawn = 0

    def wanted(self) -> tuple[dict[str, str], set[str]]:
        """The containers to show (key → shown as) and those of them to follow now."""
        if self.names:
            return {n: n for n in self.names}, set(self.names)
        listed = self.source.containers(all=self.all)
        shown = {str(c["Id"]): str(c["Id"])[:12] for c in listed}
        running = {str(c["Id"]) for c in listed if c.get("State", "running") == "running"}
        return shown, running if self.stream else set(shown)

    def frame(self, clear: bool) -> str:
        """Start followers for what is new, wait for their first samples, draw."""
        wanted, live = self.wanted()
        # a follower whose container left the list ends with its stream; one still going (a
        # paused container) is not started twice when its container comes back
        self.board.forget([k for k, follower in self.threads.items()
                           if k not in wanted and not follower.is_alive()])
        fresh = [k for k in wanted if k in live and
                 (k not in self.threads or not self.threads[k].is_alive())]
        for key in fresh:
            self.board.expect(key)
            thread = threading.Thread(target=follow, daemon=True, name=f"stats {key[:12]}",
                                      args=(self.source, key, wanted[key], self.board,
                                            self.stream, self.trunc))
            self.threads[key] = thread
            thread.start()
        self.board.wait_first(fresh, FIRST_SAMPLE_SECONDS if self.stream else 3600.0)
        failed = self.board.errors(fresh)
        if failed and self.names and not self.drawn:  # docker's refusal of a bad name
            raise CLIError("\n".join(failed))
        if not self.names:  # removed between the listing and its stats: not shown
            wanted = {k: v for k, v in wanted.items() if not (k in fresh and
                                                             self.board.errors([k]))}
        return draw(self.template, self.board.rows(wanted), clear)

    def run(self, write: Callable[[str], None], tty: bool, frames: int | None = None,
            sleep: Callable[[float], None] = time.sleep) -> None:
        """Draw until interrupted (``frames`` of them when given); one with ``--no-stream``."""
        while True:
            write(self.frame(clear=tty and self.stream))
            self.drawn += 1
            if not self.stream or (frames is not None and self.drawn >= frames):
                return
            sleep(REFRESH_SECONDS)


@click.command("stats")
@click.argument("containers", nargs=-1)
@click.option("-a", "--all", "all_", is_flag=True, help="Show all containers (default shows "
              "just running).")
@click.option("--format", "fmt", help="Format output: table, json or a Go template.")
@click.option("--no-stream", is_flag=True, help="Disable streaming stats and only pull the "
              "first result.")
@click.option("--no-trunc", is_flag=True, help="Do not truncate output.")
def stats_cmd(containers: tuple[str, ...], all_: bool, fmt: str | None, no_stream: bool,
              no_trunc: bool) -> None:
    """Display a live stream of container(s) resource usage statistics."""
    try:
        template = parse(STATS_TABLE if not fmt or fmt == "table" else fmt)
    except TemplateError as exc:
        raise CLIError(str(exc)) from exc
    session = current()
    watch = Watch(session.client(), containers, all_, not no_stream, not no_trunc, template)
    watch.run(lambda text: click.echo(text, nl=False), session.stdout_is_tty())
