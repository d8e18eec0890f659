"""``wharf run`` and ``wharf create`` (also ``wharf container run|create``).

``run`` follows the docker CLI's call sequence (Engine API reference §3): create (on 404: say
``Unable to find image … locally``, pull with the progress display on stderr, create again) →
attach (hijacked; stdin only with ``-i``) → wait (``next-exit``, or ``removed`` with ``--rm``),
whose headers are read before → start → stream until the daemon closes the attach stream → exit
with the wait result's ``StatusCode``. Daemon errors print ``wharf: Error response from daemon:
….`` plus a ``See 'wharf run --help'.`` hint and exit 125 (127/126 when start could not exec).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator, Mapping
from typing import Any

import click

from wharf.cli.commands.createopts import create_body, create_options
from wharf.cli.failure import CLIError
from wharf.cli.session import Session, current
from wharf.cli.transport import DaemonUnreachable
from wharf.errors import NotFound, WharfError

_NOT_FOUND = ("executable file not found", "no such file or directory",
              "system cannot find the file specified")
_NOT_EXECUTABLE = ("permission denied", "is a directory")


class RunCommand(click.Command):
    """Flag errors the docker way for run/create: message, ``See … --help``, exit 125."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as exc:
            raise CLIError(f"{exc.format_message()}\nSee '{ctx.command_path} --help'.",
                           exit_code=125) from exc


def report(exc: Exception, exit_code: int = 125) -> CLIError:
    """docker's ``reportError``: ``wharf: <err>.`` and the ``--help`` hint."""
    text = str(exc) if isinstance(exc, DaemonUnreachable | CLIError) else \
        f"Error response from daemon: {exc}"
    if isinstance(exc, CLIError):
        text = exc.format_message()
    ctx = click.get_current_context()
    return CLIError(f"wharf: {text.rstrip('.')}.\nSee '{ctx.command_path} --help'.",
                    exit_code=exit_code)


def start_error(exc: WharfError) -> CLIError:
    """125, or 127 when the command was not found, 126 when it could not be executed."""
    text = str(exc)
    code = 125
    if any(s in text for s in _NOT_FOUND):
        code = 127
    elif any(s in text for s in _NOT_EXECUTABLE):
        code = 126
    return report(exc, code)


@contextlib.contextmanager
def daemon_errors(exit_code: int = 125) -> Iterator[None]:
    """Turn API errors (and pull failures) inside the block into run/create's report."""
    try:
        yield
    except WharfError as exc:
        raise report(exc, exit_code) from exc
    except CLIError as exc:
        if exc.exit_code == 1:
            raise report(exc, exit_code) from exc
        raise


def pull_image(session: Session, image: str, platform: str) -> None:
    """Pull ``image`` showing docker's progress display on stderr."""
    from wharf.cli import progress  # noqa: PLC0415 - lazy: only a pull needs these
    from wharf.cli.commands.transfer import parse_ref  # noqa: PLC0415
    from wharf.cli.config import auth_header  # noqa: PLC0415

    ref = parse_ref(image).with_default_tag()
    messages = session.client().pull(ref.familiar, ref.tag_or_digest,
                                     auth_header(session.config(), ref.domain), platform)
    progress.display(messages, sys.stderr, sys.stderr.isatty())


def create_with_pull(session: Session, body: Mapping[str, Any],
                     opts: Mapping[str, Any]) -> dict[str, Any]:
    """create → (404 and ``--pull missing``: announce, pull, create again); prints warnings."""
    client, image = session.client(), str(body["Image"])
    if opts["pull"] == "always":
        pull_image(session, image, opts["platform"])
    try:
        created = client.create_container(body, opts["name"], opts["platform"])
    except NotFound:
        if opts["pull"] != "missing":
            raise
        from wharf.cli.commands.transfer import parse_ref  # noqa: PLC0415 - only a pull

        ref = parse_ref(image).with_default_tag()
        click.echo(f"Unable to find image '{ref.familiar_string}' locally", err=True)
        pull_image(session, image, opts["platform"])
        created = client.create_container(body, opts["name"], opts["platform"])
    for warning in created.get("Warnings") or []:
        click.echo(f"WARNING: {warning}", err=True)
    return created


def attach_params(stdin: bool, detach_keys: str | None) -> dict[str, str | list[str]]:
    """The attach query the docker CLI sends."""
    params: dict[str, str | list[str]] = {"stream": "1", "stdout": "1", "stderr": "1"}
    if stdin:
        params["stdin"] = "1"
    if detach_keys:
        params["detachKeys"] = detach_keys
    return params


_RUN_SETTINGS = {"help_option_names": ["--help"], "allow_interspersed_args": False}


@click.command("run", cls=RunCommand, context_settings=_RUN_SETTINGS)
@click.argument("image")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.option("-d", "--detach", is_flag=True,
              help="Run container in background and print container ID.")
@click.option("--sig-proxy", type=click.BOOL, default=True, show_default=True,
              help="Proxy received signals to the process.")
@click.option("--detach-keys", default=None, help="Override the key sequence for detaching.")
@click.option("--node", "node", default=None, metavar="NAME",
              help="Run on node NAME through the gateway ('any': the gateway places it).")
@create_options
def run_cmd(image: str, command: tuple[str, ...], detach: bool, sig_proxy: bool,
            detach_keys: str | None, node: str | None, **opts: Any) -> None:
    """Run a command in a new container."""
    session = current()
    if node:
        session.use_node(node)
    stdin = opts["interactive"] and not detach
    if opts["tty"] and stdin and not session.stdin_is_tty():
        raise CLIError("the input device is not a TTY")
    body = create_body(opts, image, command, attach=not detach)
    with daemon_errors():
        cid = str(create_with_pull(session, body, opts)["Id"])
    code = _run_created(session, cid, detach=detach, stdin=stdin, sig_proxy=sig_proxy,
                        detach_keys=detach_keys, opts=opts)
    if code:
        click.get_current_context().exit(code)


def _run_created(session: Session, cid: str, *, detach: bool, stdin: bool, sig_proxy: bool,
                 detach_keys: str | None, opts: Mapping[str, Any]) -> int:
    """attach → wait → start → stream; the exit status (0 when detached)."""
    from wharf.cli.commands.interact import interact, proxy_signals  # noqa: PLC0415 - lazy: keeps `wharf --help` fast

    client, tty = session.client(), bool(opts["tty"])
    with contextlib.ExitStack() as stack:
        conn = None
        with daemon_errors():
            if not detach:
                conn = client.attach(cid, attach_params(stdin, detach_keys))
                stack.callback(conn.close)
            # Through the gateway a detached run holds no connection to the node's daemon.
            waiter = None if detach and session.node else \
                client.wait(cid, "removed" if opts["auto_remove"] else "next-exit")
        if waiter is not None:
            stack.callback(waiter.close)
        if detach:
            click.echo(cid)
        try:
            client.start(cid)
        except WharfError as exc:
            raise start_error(exc) from exc
        if conn is None:
            return 0
        with proxy_signals(lambda sig: client.kill(cid, sig), sig_proxy and not tty):
            detached = interact(session, conn, tty=tty, stdin=stdin, detach_keys=detach_keys,
                                resize=lambda h, w: client.resize(cid, h, w),
                                on_resize=lambda: client.kill(cid, "WINCH"))
        if detached:
            return 0
        assert waiter is not None
        with daemon_errors():
            result = waiter.result()
    return exit_status(result)


def exit_status(result: Mapping[str, Any]) -> int:
    """The wait result's StatusCode; its Error (if any) goes to stderr like docker's log line."""
    error = result.get("Error")
    if isinstance(error, Mapping) and error.get("Message"):
        click.echo(f"Error waiting for container: {error['Message']}", err=True)
    return int(result.get("StatusCode") or 0) & 0xFF


@click.command("create", cls=RunCommand, context_settings=_RUN_SETTINGS)
@click.argument("image")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@create_options
def create_cmd(image: str, command: tuple[str, ...], **opts: Any) -> None:
    """Create a new container."""
    session = current()
    body = create_body(opts, image, command, attach=True)
    with daemon_errors():
        created = create_with_pull(session, body, opts)
    click.echo(created["Id"])

