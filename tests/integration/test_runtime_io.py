"""Container I/O for real: conmon's attach socket (streams, stdin, EOF), TTY containers
(resize through the ctl fifo), the k8s-file log read back, and ``crun exec`` (pipes and pty).

Uses the busybox rootfs and the create/cleanup machinery of test_runtime_containers.py:
every container is deleted, unmounted and checked for leftover cgroups and conmon.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration import test_runtime_containers as base
from tests.integration.test_runtime_containers import Env
from wharf.daemon.core.runtime import oci
from wharf.daemon.core.runtime.attach import AttachConnection
from wharf.daemon.core.runtime.exec import ExecConfig, ExecProcess, start_exec
from wharf.daemon.core.runtime.logs import LogEntry, follow_logs, read_logs
from wharf.daemon.core.runtime.monitor import CreateRequest
from wharf.daemon.core.runtime.users import UserIds
from wharf.errors import Conflict, NotFound

pytestmark = base.pytestmark
TIMEOUT = 10.0


@pytest.fixture(scope="module")
def layer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("busybox-io-layer")
    for d in ("bin", "etc", "tmp"):
        (path / d).mkdir()
    shutil.copy("/bin/busybox", path / "bin/busybox")
    for applet in (*base.APPLETS, "tty", "stty", "pwd"):
        (path / "bin" / applet).symlink_to("busybox")
    (path / "bin/garbage").write_bytes(b"\0\1 not a program")
    (path / "bin/garbage").chmod(0o755)
    (path / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (path / "etc/group").write_text("root:x:0:root\n")
    return path


@pytest.fixture
def env(tmp_path: Path, layer: Path) -> Iterator[Env]:
    yield from base._env(tmp_path, layer, oci.RuntimeKind.CRUN)
    assert not list((tmp_path / "run" / "exec").glob("*"))  # exec temp dirs are gone


@pytest.fixture(params=["crun", "runc"])
def exec_env(request: pytest.FixtureRequest, tmp_path: Path, layer: Path) -> Iterator[Env]:
    """Exec tests run on both runtimes (crun hands over the pty, runc relays one of ours)."""
    kind = oci.RuntimeKind(request.param)
    if kind is oci.RuntimeKind.RUNC and not Path("/usr/sbin/runc").exists():
        pytest.skip("runc not installed")
    yield from base._env(tmp_path, layer, kind)
    assert not list((tmp_path / "run" / "exec").glob("*"))


async def drain(conn: AttachConnection | ExecProcess) -> list[tuple[str, bytes]]:
    """Everything until EOF (fails the test if EOF does not come)."""
    out = []
    while (item := await asyncio.wait_for(conn.recv() if isinstance(conn, AttachConnection)
                                          else conn.read(), TIMEOUT)) is not None:
        out.append(item)
    return out


def joined(items: list[tuple[str, bytes]], stream: str = "stdout") -> bytes:
    return b"".join(data for name, data in items if name == stream)


async def read_until(conn: AttachConnection | ExecProcess, needle: bytes) -> bytes:
    seen = b""
    while needle not in seen:
        item = await asyncio.wait_for(conn.recv() if isinstance(conn, AttachConnection)
                                      else conn.read(), TIMEOUT)
        assert item is not None, f"EOF before {needle!r}; got {seen!r}"
        seen += item[1]
    return seen


# --- attach ---------------------------------------------------------------------------------

def test_attach_between_create_and_start_sees_all_output_then_eof(env: Env) -> None:
    cid = env.prepare(("/bin/sh", "-c", "echo hi; sleep 0.05; echo err >&2; echo bye"))
    env.runtime.create(CreateRequest(cid, "t"))
    assert len(str(env.runtime.attach_socket(cid))) > 108  # the O_PATH route is exercised

    async def scenario() -> list[tuple[str, bytes]]:
        conn = await AttachConnection.open(env.runtime.attach_socket(cid))
        try:
            env.runtime.start(cid)
            return await drain(conn)  # conmon closes the connection at the exit
        finally:
            conn.close()

    out = asyncio.run(scenario())
    assert (joined(out), joined(out, "stderr")) == (b"hi\nbye\n", b"err\n")
    assert env.runtime.wait(cid, TIMEOUT).code == 0
    logged = read_logs(env.runtime.log_path(cid))  # two pipes: no order between streams
    assert sorted((e.stream, e.data) for e in logged) == [
        ("stderr", b"err\n"), ("stdout", b"bye\n"), ("stdout", b"hi\n")]


def test_raw_packets_carry_stream_byte_2_for_stdout_and_3_for_stderr(env: Env) -> None:
    cid = env.prepare(("/bin/sh", "-c", "echo out; sleep 0.1; echo err >&2"))
    env.runtime.create(CreateRequest(cid, "t"))
    path = env.runtime.attach_socket(cid)
    link = Path(f"/tmp/wharf-io-{os.getpid()}")
    link.symlink_to(path.parent)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as sock:
            sock.settimeout(TIMEOUT)
            sock.connect(str(link / "attach"))
            env.runtime.start(cid)
            packets = list(iter(lambda: sock.recv(65536), b""))
    finally:
        link.unlink()
    assert packets == [b"\x02out\n", b"\x03err\n"]


def test_stdin_through_attach_and_half_close_ends_it(env: Env) -> None:
    cid = env.prepare(("/bin/cat",))
    env.runtime.create(CreateRequest(cid, "t", stdin=True))

    async def scenario() -> tuple[bytes, list[tuple[str, bytes]]]:
        conn = await AttachConnection.open(env.runtime.attach_socket(cid))
        try:
            await conn.send(b"line one\n")  # before start, as `echo x | docker run -i` does
            env.runtime.start(cid)
            first = await read_until(conn, b"line one\n")
            await conn.send(b"x" * 20000 + b"\n")  # more than one 8 KiB packet
            await conn.close_stdin()  # cat sees EOF and exits
            return first, await drain(conn)
        finally:
            conn.close()

    first, rest = asyncio.run(scenario())
    assert first == b"line one\n" and joined(rest) == b"x" * 20000 + b"\n"
    assert env.runtime.wait(cid, TIMEOUT).code == 0


def test_any_attach_client_leaving_closes_stdin_by_default(env: Env) -> None:
    """conmon without --leave-stdin-open: a second client that merely connects and leaves
    ends the container's stdin (cat exits, and the first client gets EOF)."""
    cid = env.prepare(("/bin/cat",))
    env.runtime.create(CreateRequest(cid, "t", stdin=True))

    async def scenario() -> list[tuple[str, bytes]]:
        first = await AttachConnection.open(env.runtime.attach_socket(cid))
        try:
            env.runtime.start(cid)
            (await AttachConnection.open(env.runtime.attach_socket(cid))).close()
            return await drain(first)
        finally:
            first.close()

    assert asyncio.run(scenario()) == []
    assert env.runtime.wait(cid, TIMEOUT).code == 0


def test_leave_stdin_open_survives_clients_leaving(env: Env) -> None:
    """Docker's StdinOnce=false: clients come and go (even half-closing), stdin stays open."""
    cid = env.prepare(("/bin/cat",))
    env.runtime.create(CreateRequest(cid, "t", stdin=True, leave_stdin_open=True))

    async def scenario() -> bytes:
        first = await AttachConnection.open(env.runtime.attach_socket(cid))
        env.runtime.start(cid)
        await first.send(b"one\n")
        await read_until(first, b"one\n")
        await first.close_stdin()
        first.close()
        second = await AttachConnection.open(env.runtime.attach_socket(cid))
        try:
            await second.send(b"two\n")
            return await read_until(second, b"two\n")
        finally:
            second.close()

    assert asyncio.run(scenario()) == b"two\n"
    assert env.runtime.exit_status(cid) is None  # cat is still reading
    env.runtime.kill(cid, 9)
    assert env.runtime.wait(cid, TIMEOUT).code == 137


def test_open_without_a_monitor_is_not_found(env: Env) -> None:
    cid = env.prepare(("/bin/true",))

    async def scenario() -> None:
        await AttachConnection.open(env.runtime.attach_socket(cid))

    with pytest.raises(NotFound):
        asyncio.run(scenario())


def test_attach_gets_a_large_burst_complete(env: Env) -> None:
    cid = env.prepare(("/bin/seq", "1", "50000"))
    env.runtime.create(CreateRequest(cid, "t"))

    async def scenario() -> bytes:
        conn = await AttachConnection.open(env.runtime.attach_socket(cid))
        try:
            env.runtime.start(cid)
            await asyncio.sleep(0.2)  # a slow reader: conmon must buffer, not drop
            return joined(await drain(conn))
        finally:
            conn.close()

    expected = "".join(f"{i}\n" for i in range(1, 50001)).encode()
    assert asyncio.run(scenario()) == expected
    env.runtime.wait(cid, TIMEOUT)
    assert b"".join(e.data for e in read_logs(env.runtime.log_path(cid))) == expected
    assert [e.data for e in read_logs(env.runtime.log_path(cid), tail=2)] == [b"49999\n",
                                                                             b"50000\n"]


def test_follow_a_live_log_joins_partial_lines_and_stops_at_exit(env: Env) -> None:
    script = "echo one; printf 'two-'; sleep 0.2; echo 'and-a-half'; sleep 0.2; printf end"
    cid = env.prepare(("/bin/sh", "-c", script))
    env.runtime.create(CreateRequest(cid, "t"))

    async def scenario() -> list[LogEntry]:
        env.runtime.start(cid)
        out = []
        async for entry in follow_logs(env.runtime.log_path(cid), finished=lambda: (
                env.runtime.exit_status(cid) is not None), poll=0.01):
            out.append(entry)
        return out

    entries = asyncio.run(asyncio.wait_for(scenario(), TIMEOUT))
    assert [e.data for e in entries] == [b"one\n", b"two-and-a-half\n", b"end"]
    assert " stdout P two-" in env.runtime.log_path(cid).read_text()


# --- TTY containers -------------------------------------------------------------------------

def test_tty_container_output_stdin_resize_and_log(env: Env) -> None:
    cid = env.prepare(("/bin/sh",), terminal=True)
    env.runtime.create(CreateRequest(cid, "t", terminal=True, stdin=True))

    async def scenario() -> tuple[bytes, list[tuple[str, bytes]]]:
        conn = await AttachConnection.open(env.runtime.attach_socket(cid))
        try:
            env.runtime.start(cid)
            seen = await read_until(conn, b"# ")  # the prompt
            env.runtime.resize(cid, 33, 101)
            await conn.send(b"stty size; tty; echo to-err >&2; read x; echo got=$x; exit 7\n")
            seen += await read_until(conn, b"/dev/pts/")
            await conn.send(b"abc\n")
            return seen, await drain(conn)
        finally:
            conn.close()

    seen, out = asyncio.run(scenario())
    assert {name for name, _ in out} == {"stdout"}  # a pty has one stream (byte 2)
    text = seen + joined(out)
    assert b"33 101\r\n" in text and b"to-err\r\n" in text and b"got=abc\r\n" in text
    assert env.runtime.wait(cid, TIMEOUT).code == 7
    logged = b"".join(e.data for e in read_logs(env.runtime.log_path(cid)))
    assert b"33 101\r\n" in logged and b"got=abc\r\n" in logged


# --- exec -----------------------------------------------------------------------------------

def running(env: Env) -> str:
    cid = env.prepare(("/bin/sleep", "60"))
    env.runtime.create(CreateRequest(cid, "t"))
    env.runtime.start(cid)
    return cid


def stop(env: Env, cid: str) -> None:
    env.runtime.kill(cid, 9)
    env.runtime.wait(cid, TIMEOUT)


def config(*args: str, terminal: bool = False, cwd: str = "/") -> ExecConfig:
    return ExecConfig(args=list(args), env=["PATH=/bin", "FOO=bar"], cwd=cwd, user=UserIds(),
                      terminal=terminal)


def run_exec(env: Env, cid: str, cfg: ExecConfig) -> tuple[list[tuple[str, bytes]], int,
                                                          ExecProcess]:
    async def scenario() -> tuple[list[tuple[str, bytes]], int, ExecProcess]:
        process = await start_exec(env.runtime.oci, cid, cfg, stdin=False)
        out = await drain(process)
        return out, await asyncio.wait_for(process.wait(), TIMEOUT), process

    return asyncio.run(scenario())


def test_exec_env_cwd_streams_and_exit_code(exec_env: Env) -> None:
    cid = running(exec_env)
    out, code, process = run_exec(exec_env, cid, config(
        "sh", "-c", "echo $FOO; pwd; echo oops >&2; exit 5", cwd="/tmp"))
    stop(exec_env, cid)
    assert (joined(out), joined(out, "stderr"), code) == (b"bar\n/tmp\n", b"oops\n", 5)
    assert process.pid > 0 and process.start_error is None


def test_exec_signal_exit_is_128_plus_n(exec_env: Env) -> None:
    cid = running(exec_env)
    _, code, _ = run_exec(exec_env, cid, config("sh", "-c", "kill -9 $$"))
    stop(exec_env, cid)
    assert code == 137


@pytest.mark.parametrize(("args", "terminal", "code", "reason"), [
    (("nope",), False, 127, 'exec: "nope": executable file not found in $PATH'),
    (("nope",), True, 127, 'exec: "nope": executable file not found in $PATH'),
    (("/etc/passwd",), False, 126, 'exec: "/etc/passwd": permission denied'),
    (("/etc",), False, 126, 'exec: "/etc": permission denied'),
    (("garbage",), False, 126, 'exec: "garbage": exec format error'),
])
def test_exec_of_what_cannot_run_maps_like_docker(exec_env: Env, args: tuple[str, ...],
                                                  terminal: bool, code: int, reason: str
                                                  ) -> None:
    cid = running(exec_env)
    out, got, process = run_exec(exec_env, cid, config(*args, terminal=terminal))
    stop(exec_env, cid)
    assert (out, got) == ([], code)  # crun's own error line is not passed on as output
    assert process.start_error == ("OCI runtime exec failed: exec failed: unable to start "
                                   f"container process: {reason}: unknown")


def test_exec_output_that_looks_like_an_error_is_kept(exec_env: Env) -> None:
    cid = running(exec_env)
    line = "executable file `x` not found in $PATH: No such file or directory"
    out, code, process = run_exec(exec_env, cid, config("sh", "-c", f"echo '{line}' >&2; exit 3"))
    stop(exec_env, cid)
    assert (joined(out, "stderr"), code, process.start_error) == (line.encode() + b"\n", 3,
                                                                 None)


def test_exec_stdin_to_cat_comes_back(exec_env: Env) -> None:
    cid = running(exec_env)

    async def scenario() -> tuple[bytes, int]:
        process = await start_exec(exec_env.runtime.oci, cid, config("cat"), stdin=True)
        await process.write(b"ping\n" * 5000)
        await process.close_stdin()
        return joined(await drain(process)), await process.wait()

    data, code = asyncio.run(scenario())
    stop(exec_env, cid)
    assert (data, code) == (b"ping\n" * 5000, 0)


def test_tty_exec_has_a_pty_resize_and_stdin(exec_env: Env) -> None:
    cid = running(exec_env)

    async def scenario() -> tuple[bytes, int]:
        cfg = config("sh", "-c", "tty; read x; stty size; echo got=$x; echo $TERM; exit 4",
                     terminal=True)
        process = await start_exec(exec_env.runtime.oci, cid, cfg, stdin=True)
        first = await read_until(process, b"\n")
        process.resize(40, 120)
        await asyncio.sleep(0.2)  # runc applies a resize asynchronously (on SIGWINCH)
        await process.write(b"hello\n")
        rest = joined(await drain(process))
        return first + rest, await process.wait()

    text, code = asyncio.run(scenario())
    stop(exec_env, cid)
    assert text.startswith(b"/dev/pts/") and code == 4
    assert b"40 120\r\ngot=hello\r\nxterm\r\n" in text


def test_tty_exec_close_stdin_sends_eof(exec_env: Env) -> None:
    cid = running(exec_env)

    async def scenario() -> int:
        process = await start_exec(exec_env.runtime.oci, cid, config("cat", terminal=True),
                                   stdin=True)
        await process.write(b"echo\n")
        await read_until(process, b"echo\r\n")
        await process.close_stdin()
        await drain(process)
        return await process.wait()

    code = asyncio.run(scenario())
    stop(exec_env, cid)
    assert code == 0


@pytest.mark.parametrize("terminal", [False, True])
def test_exec_in_a_stopped_container_is_a_conflict(exec_env: Env, terminal: bool) -> None:
    cid = running(exec_env)
    stop(exec_env, cid)

    async def scenario() -> None:
        await start_exec(exec_env.runtime.oci, cid, config("true", terminal=terminal),
                         stdin=False)

    with pytest.raises(Conflict, match="is not running"):
        asyncio.run(scenario())
