"""What ``wharf run`` and ``wharf create`` do once their flags are read, without click.

``run`` follows the docker CLI's call sequence (Engine API reference §3): create (on 404: say
``Unable to find image … locally``, pull with the progress display on stderr, create again) →
attach (hijacked; stdin only with ``-i``) → wait (``next-exit``, or ``removed`` with ``--rm``),
whose headers are read before → start → stream until the daemon closes the attach stream → exit
with the wait result's ``StatusCode``. Daemon errors print ``wharf: Error response from daemon:
….`` plus a ``See 'wharf run --help'.`` hint and exit 125 (127/126 when start could not exec).

Both the click commands (:mod:`wharf.cli.commands.run`) and the click-free fast path
(:mod:`wharf.cli.fast`) call :func:`run`; each passes the command's path for the hints.
"""

from __future__ import annotations

import contextlib
import sys

from wharf.cli.commands.createbody import create_body
from wharf.cli.failure import CLIError, FlagError
from wharf.cli.transport import DaemonUnreachable
from wharf.errors import NotFound, WharfError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping, Sequence
    from typing import Any

    from wharf.cli.session import Session

_NOT_FOUND = ("executable file not found", "no such file or directory",
              "system cannot find the file specified")
_NOT_EXECUTABLE = ("permission denied", "is a directory")


def _say(text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def report(exc: Exception, path: str, exit_code: int = 125) -> CLIError:
    """docker's ``reportError``: ``wharf: <err>.`` and the ``--help`` hint of ``path``."""
    if isinstance(exc, CLIError):
        text = exc.format_message()
    elif isinstance(exc, DaemonUnreachable):
        text = str(exc)
    else:
        text = f"Error response from daemon: {exc}"
    return CLIError(f"wharf: {text.rstrip('.')}.\nSee '{path} --help'.", exit_code=exit_code)


def start_error(exc: WharfError, path: str) -> CLIError:
    """125, or 127 when the command was not found, 126 when it could not be executed."""
    text = str(exc)
    code = 125
    if any(s in text for s in _NOT_FOUND):
        code = 127
    elif any(s in text for s in _NOT_EXECUTABLE):
        code = 126
    return report(exc, path, code)


@contextlib.contextmanager
def daemon_errors(path: str, exit_code: int = 125) -> Iterator[None]:
    """Turn API errors (and pull failures) inside the block into run/create's report."""
    try:
        yield
    except WharfError as exc:
        raise report(exc, path, exit_code) from exc
    except FlagError as exc:
        raise exc.hinted(path) from exc
    except CLIError as exc:
        if exc.exit_code == 1:
            raise report(exc, path, exit_code) from exc
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
        _say(f"Unable to find image '{ref.familiar_string}' locally")
        pull_image(session, image, opts["platform"])
        created = client.create_container(body, opts["name"], opts["platform"])
    for warning in created.get("Warnings") or []:
        _say(f"WARNING: {warning}")
    return created


def attach_params(stdin: bool, detach_keys: str | None) -> dict[str, str | list[str]]:
    """The attach query the docker CLI sends."""
    params: dict[str, str | list[str]] = {"stream": "1", "stdout": "1", "stderr": "1"}
    if stdin:
        params["stdin"] = "1"
    if detach_keys:
        params["detachKeys"] = detach_keys
    return params


def create(session: Session, image: str, command: Sequence[str], opts: Mapping[str, Any],
           path: str) -> str:
    """``wharf create``: the new container's ID."""
    with daemon_errors(path):
        body = create_body(opts, image, command, attach=True)
        return str(create_with_pull(session, body, opts)["Id"])


def run(session: Session, image: str, command: Sequence[str], opts: Mapping[str, Any],
        path: str) -> int:
    """``wharf run``: its exit status. ``opts`` holds run's own flags (``detach``,
    ``sig_proxy``, ``detach_keys``, ``node``) and the create flags."""
    if opts["node"]:
        session.use_node(opts["node"])
    detach = bool(opts["detach"])
    stdin = opts["interactive"] and not detach
    if opts["tty"] and stdin and not session.stdin_is_tty():
        raise CLIError("the input device is not a TTY")
    with daemon_errors(path):
        body = create_body(opts, image, command, attach=not detach)
        cid = str(create_with_pull(session, body, opts)["Id"])
    return _run_created(session, cid, stdin=stdin, opts=opts, path=path)


def _run_created(session: Session, cid: str, *, stdin: bool, opts: Mapping[str, Any],
                 path: str) -> int:
    """attach → wait → start → stream; the exit status (0 when detached)."""
    from wharf.cli.commands.interact import interact, proxy_signals  # noqa: PLC0415 - lazy: keeps `wharf --help` fast

    client, tty, detach = session.client(), bool(opts["tty"]), bool(opts["detach"])
    detach_keys = opts["detach_keys"]
    with contextlib.ExitStack() as stack:
        conn = None
        with daemon_errors(path):
            if not detach:
                conn = client.attach(cid, attach_params(stdin, detach_keys))
                stack.callback(conn.close)
            # Through the gateway a detached run holds no connection to the node's daemon.
            waiter = None if detach and session.node else \
                client.wait(cid, "removed" if opts["auto_remove"] else "next-exit")
        if waiter is not None:
            stack.callback(waiter.close)
        if detach:
            sys.stdout.write(cid + "\n")
            sys.stdout.flush()
        try:
            client.start(cid)
        except WharfError as exc:
            raise start_error(exc, path) from exc
        if conn is None:
            return 0
        with proxy_signals(lambda sig: client.kill(cid, sig), opts["sig_proxy"] and not tty):
            detached = interact(session, conn, tty=tty, stdin=stdin, detach_keys=detach_keys,
                                resize=lambda h, w: client.resize(cid, h, w),
                                on_resize=lambda: client.kill(cid, "WINCH"))
        if detached:
            return 0
        assert waiter is not None
        with daemon_errors(path):
            result = waiter.result()
    return exit_status(result)


def exit_status(result: Mapping[str, Any]) -> int:
    """The wait result's StatusCode; its Error (if any) goes to stderr like docker's log line."""
    error = result.get("Error")
    if isinstance(error, dict) and error.get("Message"):
        _say(f"Error waiting for container: {error['Message']}")
    return int(result.get("StatusCode") or 0) & 0xFF
