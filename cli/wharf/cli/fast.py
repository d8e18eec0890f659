"""The ``wharf`` entry point: the most used command lines without importing click.

Importing click costs ~25 ms on a small VM, more than everything else ``wharf run`` does before
its first byte reaches the daemon. :func:`main` serves these command lines itself:

- ``wharf --help`` / ``-h`` (on a terminal of 80+ columns: the text click prints there, generated
  into :mod:`wharf.cli.commandhelp`), ``wharf --version``;
- ``wharf version`` (no flags);
- ``wharf run …`` / ``wharf container run …`` whose flags :func:`runflags.parse` reads exactly as
  click would, on a local unix socket (``-H`` / ``--host`` / ``WHARF_HOST`` unset or
  ``unix://``; no gateway or node in the environment).

It runs the same code as the click commands (:mod:`wharf.cli.commands.runflow`,
:mod:`wharf.cli.commands.versioninfo`) and prints the same errors with the same exit codes.
Anything else (other commands, global options but ``-H``, a flag it does not know, ``--help`` of a
command, a narrow terminal) goes to the click root, :func:`wharf.cli.main.main`, untouched.
docs/cli.md "Start-up" has the figures.
"""

from __future__ import annotations

import os
import sys

from wharf.cli.failure import CLIError, from_api

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from wharf.cli.session import Session

DEFAULT_HOST = "unix:///run/wharf/wharfd.sock"  # the root's -H default too


def main() -> None:
    """Console-script entry point (``wharf = wharf.cli.fast:main``)."""
    code = serve(sys.argv[1:])
    if code is None:
        from wharf.cli.main import main as click_main  # noqa: PLC0415 - the general case

        click_main()
        return
    sys.exit(code)


def serve(args: Sequence[str]) -> int | None:
    """The exit status of a command line served here; None when click must serve it."""
    if os.environ.get("WHARF_NODE") or os.environ.get("WHARF_GATEWAY"):
        return None  # the root checks and uses the gateway settings: click's
    host, args = _host_option(args)
    if host is not None and not host.startswith("unix://"):
        return None  # tcp:// (TLS options), node://NAME (the gateway): click's
    if list(args) in (["--help"], ["-h"]):
        return _root_help()
    if list(args) == ["--version"]:
        from wharf.version import __version__  # noqa: PLC0415

        _out(f"wharf version {__version__}")
        return 0
    if list(args) == ["version"]:
        return _session_call(_version, host)
    if args[:1] == ["run"]:
        return _run(args[1:], "wharf run", host)
    if args[:2] == ["container", "run"]:
        return _run(args[2:], "wharf container run", host)
    return None


def _host_option(args: Sequence[str]) -> tuple[str | None, Sequence[str]]:
    """A leading ``-H URL`` / ``--host URL`` / ``--host=URL`` (the one global option served
    here) and the arguments after it; (None, args) without one."""
    if args[:1] in (["-H"], ["--host"]) and len(args) > 1:
        return args[1], args[2:]
    if args and args[0].startswith("--host="):
        return args[0].removeprefix("--host="), args[1:]
    return None, args


def _out(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _columns() -> int:
    """The terminal's width as click's help formatter sees it (shutil.get_terminal_size)."""
    try:
        return int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        pass
    if sys.__stdout__ is None:
        return 80
    try:
        return os.get_terminal_size(sys.__stdout__.fileno()).columns or 80
    except (ValueError, OSError):
        return 80


def _root_help() -> int | None:
    from wharf.cli.commandhelp import HELP_COLUMNS, ROOT_HELP  # noqa: PLC0415

    if _columns() < HELP_COLUMNS:
        return None  # click wraps it narrower
    sys.stdout.write(ROOT_HELP)
    sys.stdout.flush()
    return 0


def _session(host: str | None) -> Session | None:
    """The session the root command would make from ``host`` (``-H``) or the environment: a
    unix socket only."""
    host = host or os.environ.get("WHARF_HOST") or DEFAULT_HOST
    if not host.startswith("unix://"):
        return None  # TCP means TLS options: click's
    from wharf.cli.session import Session  # noqa: PLC0415
    from wharf.cli.transport import parse_host  # noqa: PLC0415

    home = os.path.expanduser("~")
    config_dir = os.environ.get("WHARF_CONFIG") or os.path.join(home, ".wharf")
    return Session(host=parse_host(host, None), config_dir=config_dir)


def _session_call(call: Callable[[Session], int], host: str | None) -> int | None:
    """``call`` with a session; errors printed as the click root prints them."""
    from wharf.errors import InvalidArgument  # noqa: PLC0415

    try:
        session = _session(host)
    except InvalidArgument:
        return None  # a bad WHARF_HOST: click says it
    if session is None:
        return None
    try:
        return call(session)
    except CLIError as exc:
        exc.show()
        return exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("Aborted!\n")  # click's words for ^C
        return 1
    except BrokenPipeError:
        return 1
    except Exception as exc:
        error = from_api(exc)
        if error is None:
            raise
        error.show()
        return error.exit_code
    finally:
        session.close()


def _version(session: Session) -> int:
    from wharf.cli.commands.versioninfo import client_version, render_version  # noqa: PLC0415
    from wharf.errors import WharfError  # noqa: PLC0415

    client = client_version()
    try:
        server, error = session.client().version(), None
    except WharfError as exc:
        server, error = None, exc
    _out(render_version(client, session.host.url, server))
    if error is not None:
        raise error
    return 0


def _run(args: Sequence[str], path: str, host: str | None) -> int | None:
    from wharf.cli.commands import runflags  # noqa: PLC0415

    parsed = runflags.parse(args, runflags.RUN_FLAGS + runflags.CREATE_FLAGS)
    if parsed is None or parsed.values["node"]:
        return None

    def run(session: Session) -> int:
        from wharf.cli.commands.runflow import run  # noqa: PLC0415

        return run(session, parsed.image, parsed.command, parsed.values, path)

    return _session_call(run, host)
