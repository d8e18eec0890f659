"""The ``Runtime`` contract the engine drives, and its conmon + crun/runc implementation.

Lifecycle of one container (ids are the engine's 64-hex container ids):

    create(request) -> pid   the bundle's config.json exists and the rootfs is mounted;
                             the process is created but has not exec'd the command yet
    start(id)                the command runs; its exit is recorded by the monitor in the
                             exit file even while wharfd is down
    state(id)                the runtime's view: created / running / stopped / paused
    kill(id, signal)         signal the init process (or all with all_processes)
    exit_status(id)          None while running; exit code + OOM flag once it ended
    wait(id, timeout)        block until exit_status is known
    delete(id, force)        remove the runtime's record and the cgroups; force kills first.
                             Idempotent. The rootfs and container dir belong to the engine.

Implementations: ``ConmonRuntime`` (real) and the engine's test fakes.
"""

from __future__ import annotations

import contextlib
import os
import signal as signals
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from wharf.daemon.core.runtime import cgroups, conmon, logfiles
from wharf.daemon.core.runtime.conmon import ContainerPaths
from wharf.daemon.core.runtime.oci import OciRuntime
from wharf.errors import DeadlineExceeded, Internal, InvalidArgument, NotFound


@dataclass(frozen=True)
class CreateRequest:
    """What ``create`` needs beyond the bundle the engine prepared."""

    container_id: str
    name: str
    terminal: bool = False
    stdin: bool = False
    # Docker's StdinOnce=false: an attach client that leaves (or half-closes) does not close
    # the container's stdin. Without it, conmon closes stdin when any attach client's input ends.
    leave_stdin_open: bool = False


@dataclass(frozen=True)
class RuntimeState:
    """The OCI runtime's state of a container."""

    status: str  # creating | created | running | stopped | paused
    pid: int


@dataclass(frozen=True)
class ExitStatus:
    """How the container's process ended; ``finished_at`` is epoch seconds."""

    code: int
    oom_killed: bool
    finished_at: float


class Runtime(Protocol):
    """Creates, starts, signals and removes containers; see the module docstring."""

    def create(self, request: CreateRequest) -> int: ...
    def start(self, container_id: str) -> None: ...
    def state(self, container_id: str) -> RuntimeState: ...
    def kill(self, container_id: str, signal: int = signals.SIGTERM,
             all_processes: bool = False) -> None: ...
    def exit_status(self, container_id: str) -> ExitStatus | None: ...
    def wait(self, container_id: str, timeout: float | None = None) -> ExitStatus: ...
    def delete(self, container_id: str, force: bool = False) -> None: ...
    def resize(self, container_id: str, height: int, width: int) -> None: ...
    def attach_socket(self, container_id: str) -> Path: ...
    def log_path(self, container_id: str) -> Path: ...


class ConmonRuntime:
    """One conmon per container, driving crun (default) or runc.

    Container dirs are ``containers_root/<id>`` (the OCI bundle; config.json written by the
    engine before ``create``); the runtime's volatile files live under ``run_dir``.
    """

    def __init__(self, oci: OciRuntime, run_dir: Path, containers_root: Path,
                 conmon_binary: Path = conmon.CONMON) -> None:
        self.oci = oci
        self._run_dir = run_dir
        self._containers = containers_root
        self._conmon = conmon_binary

    def paths(self, container_id: str) -> ContainerPaths:
        if not container_id or "/" in container_id or container_id.startswith("."):
            raise InvalidArgument(f"invalid container id {container_id!r}")
        return ContainerPaths(self._run_dir, self._containers / container_id, container_id)

    def create(self, request: CreateRequest) -> int:
        """Launch conmon, which runs ``runtime create``; returns the container's host pid.

        Raises:
            NotFound: the bundle has no config.json.
            Internal: conmon or the runtime failed.
        """
        paths = self.paths(request.container_id)
        if not paths.config.is_file():
            raise NotFound(f"bundle {paths.bundle} has no config.json")
        conmon.prepare_dirs(paths)
        limits = logfiles.read_limits(paths.container_dir) or logfiles.LogLimits()
        logfiles.start_new_file(paths.log, limits)
        argv = conmon.conmon_argv(self.oci, paths, name=request.name,
                                  terminal=request.terminal, stdin=request.stdin,
                                  leave_stdin_open=request.leave_stdin_open,
                                  log_size_max=limits.max_size, conmon=self._conmon)
        return conmon.launch(argv, cwd=paths.bundle)

    def start(self, container_id: str) -> None:
        self.oci.start(self.paths(container_id).container_id)

    def state(self, container_id: str) -> RuntimeState:
        data = self.oci.state(self.paths(container_id).container_id)
        return RuntimeState(status=str(data.get("status", "unknown")), pid=int(data.get("pid", 0)))

    def kill(self, container_id: str, signal: int = signals.SIGTERM,
             all_processes: bool = False) -> None:
        self.oci.kill(self.paths(container_id).container_id, signal, all_processes=all_processes)

    def exit_status(self, container_id: str) -> ExitStatus | None:
        """The exit code from conmon's exit file, and whether the kernel OOM-killed it."""
        paths = self.paths(container_id)
        try:
            text = paths.exit_file.read_text().strip()
            finished = paths.exit_file.stat().st_mtime
        except FileNotFoundError:
            return None
        if not text:
            return None  # conmon is still writing it
        try:
            code = int(text)
        except ValueError as exc:
            raise Internal(f"exit file {paths.exit_file} holds {text!r}") from exc
        return ExitStatus(code, paths.oom_file.exists(), finished)

    def wait(self, container_id: str, timeout: float | None = None) -> ExitStatus:
        """Poll the exit file (1 ms at first, backing off to 50 ms).

        Raises:
            DeadlineExceeded: still running after ``timeout`` seconds.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = 0.001
        while (status := self.exit_status(container_id)) is None:
            if deadline is not None and time.monotonic() >= deadline:
                raise DeadlineExceeded(f"container {container_id} still running after {timeout}s")
            time.sleep(delay)
            delay = min(delay * 1.5, 0.05)
        return status

    def delete(self, container_id: str, force: bool = False) -> None:
        """Delete the runtime's container, wait for its conmon, remove cgroups, exit file and
        attach link. Missing pieces are skipped (idempotent)."""
        paths = self.paths(container_id)
        if self.oci.knows(container_id):
            with contextlib.suppress(NotFound):
                self.oci.delete(container_id, force=force)
        _wait_gone(_read_pid(paths.conmon_pidfile), timeout=5.0)
        cgroups.remove_container_cgroups(container_id, cgroups.host_mounts())
        paths.exit_file.unlink(missing_ok=True)
        (paths.socket_dir / container_id).unlink(missing_ok=True)

    def resize(self, container_id: str, height: int, width: int) -> None:
        """Resize the container's terminal through conmon's ctl fifo.

        Raises:
            NotFound: no monitor is listening on the container's ctl fifo.
        """
        ctl = self.paths(container_id).ctl_fifo
        try:
            fd = os.open(ctl, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            raise NotFound(f"container {container_id} has no running monitor: {exc}") from exc
        try:
            os.write(fd, f"1 {height} {width}\n".encode())
        finally:
            os.close(fd)

    def attach_socket(self, container_id: str) -> Path:
        return self.paths(container_id).attach_socket

    def log_path(self, container_id: str) -> Path:
        return self.paths(container_id).log

    def conmon_pid(self, container_id: str) -> int | None:
        """conmon's pid as it recorded it (for live-restore checks)."""
        return _read_pid(self.paths(container_id).conmon_pidfile)


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def alive(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def _wait_gone(pid: int | None, timeout: float) -> None:
    if pid is None:
        return
    deadline = time.monotonic() + timeout
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.005)
