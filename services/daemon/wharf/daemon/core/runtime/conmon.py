"""conmon, the per-container monitor: its command line and its start/sync pipe protocol.

conmon (api-version 1) double-forks, so the container and its monitor outlive wharfd
(live-restore). The handshake: wharfd passes two pipe fds via ``_OCI_SYNCPIPE`` and
``_OCI_STARTPIPE`` (through ``pass_fds``: a dup2 in preexec_fn would be closed by Popen);
conmon waits for one byte on the start pipe, runs ``runtime create``, then writes one JSON
line to the sync pipe: ``{"data": <pid>}`` or ``{"data": -1, "message": "..."}``.
With ``-t`` conmon makes the console socket itself and passes ``--console-socket`` to the
runtime; with ``-i`` it keeps the container's stdin open behind the attach socket.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import select
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from wharf.daemon.core.runtime.oci import OciRuntime
from wharf.errors import DeadlineExceeded, Internal

CONMON = Path("/usr/bin/conmon")
_SYNC_TIMEOUT = 30.0
_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class ContainerPaths:
    """Where one container's files live. The container dir is also the OCI bundle (like
    podman's userdata): config.json, ctr.log, persist/, pidfiles, and conmon's attach/ctl."""

    run_dir: Path
    container_dir: Path
    container_id: str

    @property
    def bundle(self) -> Path:
        return self.container_dir

    @property
    def config(self) -> Path:
        return self.container_dir / "config.json"

    @property
    def log(self) -> Path:
        return self.container_dir / "ctr.log"

    @property
    def persist_dir(self) -> Path:
        return self.container_dir / "persist"

    @property
    def oom_file(self) -> Path:
        return self.persist_dir / "oom"

    @property
    def pidfile(self) -> Path:
        return self.container_dir / "pidfile"

    @property
    def conmon_pidfile(self) -> Path:
        return self.container_dir / "conmon.pid"

    @property
    def exit_dir(self) -> Path:
        return self.run_dir / "exits"

    @property
    def exit_file(self) -> Path:
        return self.exit_dir / self.container_id

    @property
    def socket_dir(self) -> Path:
        return self.run_dir / "socks"

    @property
    def attach_socket(self) -> Path:
        """SOCK_SEQPACKET; conmon links ``socks/<id>`` to the bundle (sun_path is 108 bytes)."""
        return self.socket_dir / self.container_id / "attach"

    @property
    def ctl_fifo(self) -> Path:
        """Lines ``1 <h> <w>`` resize the terminal, ``2 0 0`` reopens the log."""
        return self.container_dir / "ctl"


def conmon_argv(
    runtime: OciRuntime,
    paths: ContainerPaths,
    *,
    name: str,
    terminal: bool = False,
    stdin: bool = False,
    leave_stdin_open: bool = False,
    log_level: str = "warning",
    log_size_max: int | None = None,
    conmon: Path = CONMON,
) -> list[str]:
    """conmon's command line for creating one container (pure); ``log_size_max`` caps the
    log file (conmon starts it over rather than let it grow past that many bytes)."""
    cid = paths.container_id
    argv = [
        str(conmon), "--api-version", "1",
        "-c", cid, "-u", cid, "-n", name,
        "-r", str(runtime.executable),
        "-b", str(paths.bundle),
        "-p", str(paths.pidfile),
        "--conmon-pidfile", str(paths.conmon_pidfile),
        "--exit-dir", str(paths.exit_dir),
        "--persist-dir", str(paths.persist_dir),
        "--socket-dir-path", str(paths.socket_dir),
        "-l", f"k8s-file:{paths.log}",
        "--log-level", log_level,
    ]
    if log_size_max is not None:
        argv += ["--log-size-max", str(log_size_max)]
    for arg in runtime.global_args:
        argv += ["--runtime-arg", arg]
    if terminal:
        argv.append("-t")
    if stdin:
        argv.append("-i")
        if leave_stdin_open:
            argv.append("--leave-stdin-open")
    return argv


def prepare_dirs(paths: ContainerPaths) -> None:
    """Pre-create what conmon expects (without persist/ it dies after an OOM, §2)."""
    for d in (paths.persist_dir, paths.exit_dir, paths.socket_dir):
        d.mkdir(parents=True, exist_ok=True)


def launch(argv: list[str], cwd: Path, timeout: float = _SYNC_TIMEOUT) -> int:
    """Start conmon in ``cwd`` (the bundle: conmon 2.1 also drops an ``oom`` file into its
    working directory), release it through the start pipe, return the container's host pid.

    Raises:
        Internal: conmon or the runtime failed (message carries the runtime's error).
        DeadlineExceeded: no answer on the sync pipe within ``timeout``.
    """
    sync_r, sync_w = _pipe_above_stdio()
    start_r, start_w = _pipe_above_stdio()
    try:
        env = {"PATH": _PATH, "_OCI_SYNCPIPE": str(sync_w), "_OCI_STARTPIPE": str(start_r)}
        proc = subprocess.Popen(
            argv, pass_fds=(sync_w, start_r), env=env, cwd=cwd, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        os.close(sync_w)
        os.close(start_r)
        sync_w = start_r = -1
        with contextlib.suppress(BrokenPipeError):  # conmon died early: the sync read says so
            os.write(start_w, b"\0")
        reply = _read_sync(sync_r, timeout)
        proc.wait(timeout=timeout)  # the first conmon process exits after its double fork
    finally:
        for fd in (sync_r, sync_w, start_r, start_w):
            if fd >= 0:
                os.close(fd)
    return _parse_sync(reply)


def _pipe_above_stdio() -> tuple[int, int]:
    """A pipe whose fds are >= 3: Popen dup2s stdio onto 0-2 and would clobber a pipe that
    landed there (possible when the daemon runs with stdin closed)."""
    ends = []
    for fd in os.pipe():
        high = fd
        if fd < 3:
            high = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3)
            os.close(fd)
        ends.append(high)
    return ends[0], ends[1]


def _read_sync(fd: int, timeout: float) -> bytes:
    deadline = time.monotonic() + timeout
    data = b""
    while b"\n" not in data:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise DeadlineExceeded(f"conmon gave no sync reply within {timeout}s")
        ready, _, _ = select.select([fd], [], [], remaining)
        if not ready:
            continue
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        data += chunk
    return data


def _parse_sync(reply: bytes) -> int:
    line = reply.split(b"\n", 1)[0].strip()
    if not line:
        raise Internal("conmon exited without reporting the container's pid")
    try:
        message = json.loads(line)
    except ValueError as exc:
        raise Internal(f"conmon sent an unreadable sync message: {line!r}") from exc
    pid = message.get("data", message.get("pid", -1)) if isinstance(message, dict) else -1
    if not isinstance(pid, int) or pid <= 0:
        detail = message.get("message", line.decode()) if isinstance(message, dict) else line
        raise Internal(f"container create failed: {str(detail).strip()}")
    return pid
