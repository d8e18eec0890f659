"""``attach``, ``exec`` and ``logs``: the commands that carry a container's output.

``exec`` follows docker's sequence (Engine API reference §3): inspect the container (it must
exist) → POST /containers/X/exec (``-t`` on a terminal: its size as ``ConsoleSize``) → POST
/exec/ID/start hijacked → (``-t``: resize, and again on every SIGWINCH) → stream until EOF →
GET /exec/ID/json, and exits with its ``ExitCode``. ``logs`` reads ``Id`` and
``Config.Tty`` from the container inspect first, and demultiplexes unless it is a TTY.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from wharf.cli.commands.createbody import parse_env
from wharf.cli.commands.runflow import attach_params, exit_status
from wharf.cli.failure import CLIError
from wharf.cli.session import Session, current

_REFUSE = (("Paused", "You cannot attach to a paused container, unpause it first"),
           ("Restarting", "You cannot attach to a restarting container, wait until it is "
            "running"))


def _check_tty(session: Session, tty: bool, stdin: bool) -> None:
    if tty and stdin and not session.stdin_is_tty():
        raise CLIError("the input device is not a TTY")


def _exit(code: int) -> None:
    if code:
        click.get_current_context().exit(code)


@click.command("attach")
@click.argument("container")
@click.option("--no-stdin", is_flag=True, help="Do not attach STDIN.")
@click.option("--sig-proxy", type=click.BOOL, default=True, show_default=True,
              help="Proxy all received signals to the process.")
@click.option("--detach-keys", default=None, help="Override the key sequence for detaching.")
def attach_cmd(container: str, no_stdin: bool, sig_proxy: bool,
               detach_keys: str | None) -> None:
    """Attach local standard input, output, and error streams to a running container."""
    from wharf.cli.commands.interact import interact, proxy_signals  # noqa: PLC0415 - lazy: keeps `wharf --help` fast

    session = current()
    client = session.client()
    info = client.inspect_container(container)
    state: dict[str, Any] = info.get("State") or {}
    if not state.get("Running"):
        raise CLIError("You cannot attach to a stopped container, start it first")
    for key, message in _REFUSE:
        if state.get(key):
            raise CLIError(message)
    config: dict[str, Any] = info.get("Config") or {}
    cid, tty = str(info.get("Id", container)), bool(config.get("Tty"))
    stdin = not no_stdin and bool(config.get("OpenStdin"))
    _check_tty(session, tty, stdin)
    waiter = client.wait(cid)
    try:
        conn = client.attach(cid, attach_params(stdin, detach_keys))
        with proxy_signals(lambda sig: client.kill(cid, sig), sig_proxy and not tty):
            detached = interact(session, conn, tty=tty, stdin=stdin, detach_keys=detach_keys,
                                resize=lambda h, w: client.resize(cid, h, w),
                                on_resize=lambda: client.kill(cid, "WINCH"))
        code = 0 if detached else exit_status(waiter.result())
    finally:
        waiter.close()
    _exit(code)


@click.command("exec", context_settings={"allow_interspersed_args": False})
@click.argument("container")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@click.option("-d", "--detach", is_flag=True, help="Detached mode: run command in the "
              "background.")
@click.option("--detach-keys", default=None, help="Override the key sequence for detaching.")
@click.option("-e", "--env", "env", multiple=True, help="Set environment variables.")
@click.option("-i", "--interactive", is_flag=True, help="Keep STDIN open even if not attached.")
@click.option("--privileged", is_flag=True, help="Give extended privileges to the command.")
@click.option("-t", "--tty", is_flag=True, help="Allocate a pseudo-TTY.")
@click.option("-u", "--user", default="", help="Username or UID (format: "
              "<name|uid>[:<group|gid>]).")
@click.option("-w", "--workdir", default="", help="Working directory inside the container.")
def exec_cmd(container: str, command: tuple[str, ...], detach: bool, detach_keys: str | None,
             env: tuple[str, ...], interactive: bool, privileged: bool, tty: bool, user: str,
             workdir: str) -> None:
    """Run a command in a running container."""
    from wharf.cli.commands.interact import interact, terminal_size  # noqa: PLC0415 - lazy: keeps `wharf --help` fast

    session = current()
    client = session.client()
    client.inspect_container(container)  # docker checks that it exists first
    stdin = interactive and not detach
    _check_tty(session, tty, stdin)
    body = {"User": user, "Privileged": privileged, "Tty": tty, "AttachStdin": stdin,
            "AttachStderr": not detach, "AttachStdout": not detach, "Detach": detach,
            "DetachKeys": detach_keys or "", "Env": parse_env(env, os.environ) or None,
            "WorkingDir": workdir, "Cmd": list(command)}
    if tty and (size := terminal_size(session)) is not None:
        body["ConsoleSize"] = list(size)  # the first size, before the command runs (API 1.42)
    exec_id = client.exec_create(container, body)
    if detach:
        client.exec_start_detached(exec_id, tty)
        return
    conn = client.exec_start(exec_id, tty)
    detached = interact(session, conn, tty=tty, stdin=stdin, detach_keys=detach_keys,
                        resize=lambda h, w: client.exec_resize(exec_id, h, w))
    if not detached:
        _exit(int(client.exec_inspect(exec_id).get("ExitCode") or 0) & 0xFF)


def _log_params(follow: bool, tail: str, since: str, until: str, timestamps: bool,
                details: bool) -> dict[str, str | list[str]]:
    from wharf.cli.timestamps import TimestampError, add_time_range  # noqa: PLC0415 - lazy: keeps `wharf --help` fast

    params: dict[str, str | list[str]] = {"stdout": "1", "stderr": "1", "tail": tail or "all"}
    try:
        add_time_range(params, since, until)
    except TimestampError as exc:
        raise CLIError(str(exc)) from exc
    for key, on in (("follow", follow), ("timestamps", timestamps), ("details", details)):
        if on:
            params[key] = "1"
    return params


@click.command("logs")
@click.argument("container")
@click.option("--details", is_flag=True, help="Show extra details provided to logs.")
@click.option("-f", "--follow", is_flag=True, help="Follow log output.")
@click.option("--since", default="", help="Show logs since timestamp (e.g. "
              "2013-01-02T13:23:37Z) or relative (e.g. 42m for 42 minutes).")
@click.option("-n", "--tail", default="all", help="Number of lines to show from the end of "
              "the logs.")
@click.option("-t", "--timestamps", is_flag=True, help="Show timestamps.")
@click.option("--until", default="", help="Show logs before a timestamp or relative.")
def logs_cmd(container: str, details: bool, follow: bool, since: str, tail: str,
             timestamps: bool, until: str) -> None:
    """Fetch the logs of a container."""
    from wharf.cli.streams import FrameDemuxer, write_output  # noqa: PLC0415 - lazy: keeps `wharf --help` fast

    client = current().client()
    info = client.inspect_container(container)
    tty = bool((info.get("Config") or {}).get("Tty"))
    params = _log_params(follow, tail, since, until, timestamps, details)
    chunks = client.logs(str(info.get("Id", container)), params)
    out, err = sys.stdout.buffer, sys.stderr.buffer
    demux = FrameDemuxer()
    for chunk in chunks:
        write_output(demux, chunk, out, err, tty)

