"""Extra processes in a running container (``docker exec``) through ``runtime exec``.

``runtime exec --process <process.json> --pid-file <f> [--tty --console-socket <s>] <id>``
runs in the foreground as our child and exits with the process's code, so ``wait`` is the
child's exit (a signal N becomes 128+N). Without a terminal the process's stdio are the
subprocess's pipes. With one, crun creates the pty inside the container and hands the master
to us over the console socket (``SCM_RIGHTS``); we read and write the master. runc refuses a
console socket in the foreground, so it gets a pty of ours as its stdio and relays it (a
resize is then our TIOCSWINSZ plus SIGWINCH to runc). A first size (``ExecConfig.console_size``)
is the process's ``consoleSize``, which the runtime sets before the command runs (runc then
copies our pty's size, so ours gets it too).
The exec does not outlive wharfd (dockerd's exec instances are in-memory too).

When the command cannot be started the runtime prints one line and exits 255 (or 1);
``ExecProcess`` holds such a first line back and, if nothing else follows, ``wait`` returns
Docker's code (127 not found, 126 otherwise) and ``start_error`` Docker's message (see
``exec_errors``). A container that is not running makes ``start_exec`` raise ``Conflict``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import tempfile
import termios
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wharf.daemon.core.runtime import capabilities
from wharf.daemon.core.runtime.exec_errors import NOT_RUNNING, docker_start_error, failure_line
from wharf.daemon.core.runtime.oci import _ENV, OciRuntime, RuntimeKind
from wharf.daemon.core.runtime.users import UserIds
from wharf.errors import Conflict, Internal

_CHUNK = 32768
_PID_TIMEOUT = 10.0
_SUN_PATH = 107
@dataclass
class ExecConfig:
    args: list[str]
    env: list[str]
    cwd: str
    user: UserIds
    terminal: bool
    capabilities: list[str] = field(default_factory=list)
    no_new_privileges: bool = False
    privileged: bool = False
    console_size: tuple[int, int] | None = None  # (rows, cols) for the pty, set before exec


def process_spec(config: ExecConfig) -> dict[str, Any]:
    """The OCI ``process`` object for ``runtime exec --process`` (pure apart from reading the
    daemon's bounding set for a privileged exec, which gets every capability it holds)."""
    user: dict[str, Any] = {"uid": config.user.uid, "gid": config.user.gid}
    if config.user.additional_gids:
        user["additionalGids"] = list(config.user.additional_gids)
    caps = list(config.capabilities)
    if config.privileged:
        held = capabilities.bounding_set()
        caps = [c for c in capabilities.CAPABILITIES if c in held]
    env = list(config.env)
    if config.terminal and not any(e.startswith("TERM=") for e in env):
        env.append("TERM=xterm")
    spec: dict[str, Any] = {
        "terminal": config.terminal, "user": user, "args": list(config.args), "env": env,
        "cwd": config.cwd or "/",
        "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
        "noNewPrivileges": config.no_new_privileges and not config.privileged,
    }
    if config.terminal and config.console_size is not None:
        spec["consoleSize"] = dict(zip(("height", "width"), config.console_size, strict=True))
    return spec


class ExecProcess:
    """A started exec: ``read`` output, ``write`` stdin, ``wait`` for the exit code."""

    def __init__(self, proc: asyncio.subprocess.Process, master: int | None, workdir: Path,
                 pid: int, command: str, prefetched: tuple[tuple[str, bytes], ...] = (), *,
                 relay: bool = False) -> None:
        self._proc = proc
        self._relay = relay  # runc relays a pty of ours: it resizes its own on SIGWINCH
        self._master = master
        self._workdir = workdir
        self.pid = pid
        self._command = command
        self.start_error: str | None = None  # Docker's message when the command never ran
        self._queue: asyncio.Queue[tuple[str, bytes] | None] = asyncio.Queue()
        for item in prefetched:
            self._queue.put_nowait(item)
        self._held: tuple[str, bytes] | None = None
        self._seen_output = False
        self._readers = [asyncio.get_running_loop().create_task(r) for r in self._sources()]
        self._open = len(self._readers)
        self._code: int | None = None

    def _sources(self) -> list[Coroutine[Any, Any, None]]:
        if self._master is not None:
            return [self._pump_master()]
        assert self._proc.stdout is not None and self._proc.stderr is not None
        return [self._pump(self._proc.stdout, "stdout"), self._pump(self._proc.stderr, "stderr")]

    async def _pump(self, reader: asyncio.StreamReader, name: str) -> None:
        try:
            while chunk := await reader.read(_CHUNK):
                await self._queue.put((name, chunk))
        finally:
            await self._queue.put(None)

    async def _pump_master(self) -> None:
        assert self._master is not None
        master = self._master
        loop = asyncio.get_running_loop()
        readable = asyncio.Event()
        loop.add_reader(master, readable.set)
        try:
            while True:
                await readable.wait()
                readable.clear()
                try:
                    chunk = os.read(master, _CHUNK)
                except BlockingIOError:
                    continue
                except OSError:  # EIO: every holder of the pty's slave side is gone
                    break
                if not chunk:
                    break
                await self._queue.put(("stdout", chunk))
        finally:
            loop.remove_reader(master)
            await self._queue.put(None)

    async def read(self) -> tuple[str, bytes] | None:
        """The next ``(stream, bytes)``; a TTY's output is all "stdout". None once every
        stream reached EOF (then ``wait`` returns without blocking on output)."""
        while self._open:
            item = await self._queue.get()
            if item is None:
                self._open -= 1
                continue
            if not self._seen_output and self._held is None and self._may_be_failure(item[1]):
                self._held = item  # maybe crun's start failure: decided at the exit
                continue
            self._seen_output = True
            if self._held is not None:
                held, self._held = self._held, None
                self._queue.put_nowait(item)  # keep the order: the held chunk first
                return held
            return item
        if self._held is not None:
            held, self._held = self._held, None
            if not await self._start_failed(held[1]):
                return held
        return None

    def _may_be_failure(self, chunk: bytes) -> bool:
        line = failure_line(chunk)
        return line is not None and docker_start_error(line, self._command) is not None

    async def _start_failed(self, chunk: bytes) -> bool:
        code = await self._proc.wait()
        line = failure_line(chunk)
        mapped = docker_start_error(line, self._command) if line and code in (1, 255) else None
        if mapped is None:
            return False
        self._code, self.start_error = mapped
        return True

    async def write(self, data: bytes) -> None:
        """Feed stdin (the pty for a TTY). Raises ConnectionError once the process is gone."""
        if self._master is not None:
            await _write_fd(self._master, data)
        elif self._proc.stdin is not None:
            self._proc.stdin.write(data)
            await self._proc.stdin.drain()

    async def close_stdin(self) -> None:
        """End stdin: close the pipe, or send the terminal's EOF character (^D) to a pty."""
        if self._master is not None:
            with contextlib.suppress(OSError):
                await _write_fd(self._master, b"\x04")
        elif self._proc.stdin is not None:
            self._proc.stdin.close()

    def resize(self, height: int, width: int) -> None:
        """Set the pty's window size (TIOCSWINSZ on the master, which sends the foreground
        process SIGWINCH); a no-op without a TTY or after ``wait``."""
        if self._master is not None:
            with contextlib.suppress(OSError):
                termios.tcsetwinsize(self._master, (height, width))
                if self._relay and self._proc.returncode is None:
                    self._proc.send_signal(signal.SIGWINCH)

    async def wait(self) -> int:
        """The exit code once the process and its output are done: the command's code, 128+N
        after signal N, 127/126 when it could not start (see ``start_error``). Drains output
        nobody read. Idempotent; frees the pty and the temp files."""
        while await self.read() is not None:
            pass
        code = await self._proc.wait()
        for task in self._readers:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._master is not None:
            os.close(self._master)
            self._master = None
        shutil.rmtree(self._workdir, ignore_errors=True)
        if self._code is None:
            self._code = 128 - code if code < 0 else code
        return self._code


async def start_exec(oci: OciRuntime, container_id: str, config: ExecConfig, *,
                     stdin: bool) -> ExecProcess:
    """Start ``runtime exec`` for ``config`` in the running container ``container_id``.

    Returns once the process exists (its pid is known) or the runtime gave up. A command that
    is missing or not executable still returns: see ``ExecProcess.start_error``.

    Raises:
        Conflict: the container is not running.
        Internal: the runtime failed before creating the process.
    """
    workdir = _workdir(oci)
    relay = config.terminal and oci.kind is RuntimeKind.RUNC
    console = master = None
    try:
        spec_file, pidfile, sock_path = (workdir / n for n in ("process.json", "pid", "console"))
        spec_file.write_text(json.dumps(process_spec(config)))
        argv = [str(oci.executable), *oci.global_args, "exec", "--process", str(spec_file),
                "--pid-file", str(pidfile)]
        if config.terminal and not relay:
            console = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
            console.bind(str(sock_path))
            console.listen(1)
            argv += ["--console-socket", str(sock_path)]
        argv += ["--tty", container_id] if config.terminal else [container_id]
        proc, master = await _spawn(argv, stdin=stdin and not config.terminal, relay=relay,
                                    size=config.console_size)
        if console is not None:
            master = await _receive_master(console, proc, container_id)
        pid = await _await_pid(pidfile, proc)
        early = () if pid or console else await _early_output(proc, master, container_id)
    except BaseException:
        if console is not None:
            console.close()
        if master is not None:
            os.close(master)
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    return ExecProcess(proc, master, workdir, pid, config.args[0] if config.args else "", early,
                       relay=relay)


async def _spawn(argv: list[str], *, stdin: bool, relay: bool, size: tuple[int, int] | None
                 ) -> tuple[asyncio.subprocess.Process, int | None]:
    """Start the runtime with pipes, or (``relay``, runc with a TTY: it will not hand over the
    pty in the foreground) with a pty of ours as its stdio, of ``size`` (runc copies that size
    to the container's pty at start); returns it and that pty's master."""
    pipe, null = asyncio.subprocess.PIPE, asyncio.subprocess.DEVNULL
    if not relay:
        proc = await asyncio.create_subprocess_exec(
            *argv, env=_ENV, stdin=pipe if stdin else null, stdout=pipe, stderr=pipe,
            start_new_session=True)
        return proc, None
    master, slave = os.openpty()
    if size is not None:
        termios.tcsetwinsize(master, size)
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv, env=_ENV, stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
    except BaseException:
        os.close(master)
        raise
    finally:
        os.close(slave)
    os.set_blocking(master, False)
    return proc, master


def _workdir(oci: OciRuntime) -> Path:
    """A private dir for process.json, the pidfile and the console socket, next to the
    runtime's state root (not inside it: ``crun list`` reads every dir there). Falls back to
    the system temp dir when the socket path would not fit in sun_path."""
    base = oci.root.parent / "exec"
    base.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="x-", dir=base))
    if len(str(workdir / "console")) > _SUN_PATH:
        workdir.rmdir()
        workdir = Path(tempfile.mkdtemp(prefix="wharf-exec-"))
    return workdir


async def _failure(proc: asyncio.subprocess.Process, container_id: str) -> Exception:
    await proc.wait()
    err = (await proc.stderr.read()).decode(errors="replace").strip() if proc.stderr else ""
    if "not running" in err or "does not exist" in err or "No such file" in err:
        return Conflict(f"Container {container_id} is not running")
    return Internal(f"OCI runtime exec failed: {err or f'exit status {proc.returncode}'}")


async def _early_output(proc: asyncio.subprocess.Process, master: int | None,
                        container_id: str) -> tuple[tuple[str, bytes], ...]:
    """The whole output of a runtime that exited without starting the process.

    Raises:
        Conflict: the runtime says the container is not running.
    """
    items: tuple[tuple[str, bytes], ...]
    if master is not None:
        items = (("stdout", _drain_fd(master)),)
    else:
        assert proc.stdout is not None and proc.stderr is not None
        out, err = await asyncio.wait_for(
            asyncio.gather(proc.stdout.read(), proc.stderr.read()), _PID_TIMEOUT)
        items = (("stdout", out), ("stderr", err))
    text = b"".join(data for _, data in items).strip()
    if b"\n" not in text and NOT_RUNNING.search(text):
        raise Conflict(f"Container {container_id} is not running")
    return tuple((name, data) for name, data in items if data)


def _drain_fd(fd: int) -> bytes:
    """What is left to read on a non-blocking pty master whose other side is gone."""
    data = b""
    with contextlib.suppress(OSError):  # EIO at the end, or EAGAIN
        while chunk := os.read(fd, _CHUNK):
            data += chunk
    return data


async def _await_pid(pidfile: Path, proc: asyncio.subprocess.Process) -> int:
    """The exec'd process's host pid from the runtime's pidfile; 0 when the runtime exited
    without writing it (the command failed to start: the output says why)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + _PID_TIMEOUT
    delay = 0.001
    while loop.time() < deadline:
        with contextlib.suppress(FileNotFoundError, ValueError):
            return int(pidfile.read_text().strip())
        if proc.returncode is not None:
            return 0
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.02)
    return 0  # the runtime is slow to write it: the exec still runs; its pid is unknown


async def _receive_master(console: socket.socket, proc: asyncio.subprocess.Process,
                          container_id: str) -> int:
    """Accept the runtime's connection on the console socket and take the pty master."""
    loop = asyncio.get_running_loop()
    console.setblocking(False)
    try:
        accept = loop.create_task(loop.sock_accept(console))
        exited = loop.create_task(proc.wait())
        done, _ = await asyncio.wait({accept, exited}, return_when=asyncio.FIRST_COMPLETED)
        if accept not in done:
            accept.cancel()
            raise await _failure(proc, container_id)
        exited.cancel()
        conn, _ = accept.result()
        with conn:
            conn.settimeout(_PID_TIMEOUT)
            _, fds, _, _ = await asyncio.to_thread(socket.recv_fds, conn, 4096, 4)
        if not fds:
            raise Internal("OCI runtime exec failed: no terminal was handed over")
        for extra in fds[1:]:
            os.close(extra)
        os.set_blocking(fds[0], False)
        return fds[0]
    finally:
        console.close()


async def _write_fd(fd: int, data: bytes) -> None:
    """Write all of ``data`` to the non-blocking ``fd``, waiting for room in the event loop."""
    loop = asyncio.get_running_loop()
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view):]
        except BlockingIOError:
            ready = loop.create_future()
            loop.add_writer(fd, ready.set_result, None)
            try:
                await ready
            finally:
                loop.remove_writer(fd)
        except OSError as exc:
            raise ConnectionError(f"exec terminal closed: {exc}") from exc

