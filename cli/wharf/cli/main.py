"""The ``wharf`` command: root group, global options, error printing.

Start-up cost matters: this module imports only click, the command tree and a few small
modules; a command's module is imported when that command runs (:mod:`wharf.cli.commandtree`
declares the tree and imports lazily), and httpx and pydantic only inside the commands that
need them. The session, transport and TLS modules are imported when a command runs, not for
``wharf --help``.
"""

from __future__ import annotations

import os
from typing import Any

import click

from wharf.cli.commandtree import ROOT, LazyGroup
from wharf.cli.failure import CLIError, from_api
from wharf.cli.fast import DEFAULT_HOST
from wharf.errors import InvalidArgument
from wharf.version import __version__

DEFAULT_TOKEN_FILE = ".config/wharf/token"  # noqa: S105 - a path under the home directory


class Stop(click.ClickException):
    """A :class:`CLIError` inside click: printed bare (no ``Error:``), with its exit code."""

    def __init__(self, error: CLIError) -> None:
        super().__init__(error.format_message())
        self.error = error
        self.exit_code = error.exit_code  # type: ignore[misc] # click: a class attribute

    def show(self, file: Any = None) -> None:
        self.error.show(file)


class RootGroup(LazyGroup):
    """Turns the API client's error kinds into Docker's messages and exit codes, and the CLI's
    own :class:`CLIError` (click-free, shared with :mod:`wharf.cli.fast`) into click's."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except CLIError as exc:
            raise Stop(exc) from exc
        except Exception as exc:
            error = from_api(exc)
            if error is None:
                raise
            raise Stop(error) from exc


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        click.echo(f"wharf version {__version__}")
        ctx.exit()


def _with_root_options(fn: Any) -> Any:
    """Apply the global options (``-H``, ``--config``, ``-D``, TLS, ``--version``) to ``fn``."""
    options = [
        click.option("-H", "--host", envvar="WHARF_HOST", default=DEFAULT_HOST,
                     show_default=True, metavar="URL",
                     help="Daemon socket to connect to (unix:///path or tcp://host:port; the port "
                     "defaults to 2376 with TLS)."),
        click.option("--config", "config_dir", envvar="WHARF_CONFIG", metavar="DIR",
                     type=click.Path(file_okay=False),
                     help="Location of client config files (default ~/.wharf)."),
        click.option("-D", "--debug", is_flag=True, help="Enable debug mode."),
        click.option("--tls", is_flag=True, help="Use TLS; implied by --tlsverify."),
        click.option("--tlsverify", is_flag=True,
                     help="Use TLS and verify the daemon (env WHARF_TLS_VERIFY non-empty)."),
        click.option("--tlscacert", metavar="FILE",
                     help="Trust certs signed only by this CA (default $WHARF_CERT_PATH/ca.pem, "
                     "WHARF_CERT_PATH defaults to ~/.wharf)."),
        click.option("--tlscert", metavar="FILE",
                     help="TLS certificate file (default $WHARF_CERT_PATH/cert.pem)."),
        click.option("--tlskey", metavar="FILE",
                     help="TLS key file (default $WHARF_CERT_PATH/key.pem)."),
        click.option("--gateway", envvar="WHARF_GATEWAY", metavar="URL",
                     help="Cluster gateway (https://HOST:PORT; http:// on its own host) for "
                     "--node, node://NAME, node and ps --all-nodes."),
        click.option("--gateway-cacert", envvar="WHARF_GATEWAY_CACERT", metavar="FILE",
                     help="Verify an https:// gateway with this CA (default: the system's "
                     "CAs; env WHARF_GATEWAY_CACERT)."),
        click.option("--gateway-cert", envvar="WHARF_GATEWAY_CERT", metavar="FILE",
                     help="Client certificate for a gateway with mutual TLS (env "
                     "WHARF_GATEWAY_CERT)."),
        click.option("--gateway-key", envvar="WHARF_GATEWAY_KEY", metavar="FILE",
                     help="Its key (env WHARF_GATEWAY_KEY)."),
        click.option("--token-file", envvar="WHARF_TOKEN_FILE", metavar="FILE",
                     type=click.Path(dir_okay=False),
                     help="File with the gateway's bearer token, mode 0600 (env "
                     "WHARF_TOKEN_FILE; else env WHARF_TOKEN, else ~/.config/wharf/token)."),
        click.option("--node", envvar="WHARF_NODE", metavar="NAME",
                     help="Talk to node NAME through the gateway (same as -H node://NAME; "
                     "'any' lets the gateway choose)."),
        click.option("--version", is_flag=True, expose_value=False, is_eager=True,
                     callback=_print_version, help="Print version information and quit."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _root(ctx: click.Context, host: str, config_dir: str | None, debug: bool, tls: bool,
          tlsverify: bool, tlscacert: str | None, tlscert: str | None,
          tlskey: str | None, gateway: str | None, gateway_cacert: str | None,
          gateway_cert: str | None, gateway_key: str | None, token_file: str | None,
          node: str | None) -> None:
    """A self-sufficient runtime for containers."""
    from pathlib import Path  # noqa: PLC0415 - lazy, like everything a command needs

    from wharf.cli.session import Hooks, Session  # noqa: PLC0415
    from wharf.cli.tls import resolve_tls  # noqa: PLC0415
    from wharf.cli.transport import parse_host  # noqa: PLC0415

    home = Path(os.path.expanduser("~"))
    if host.startswith("node://"):
        if not host.removeprefix("node://").strip("/"):
            raise CLIError(f"invalid host {host!r}: expected node://NAME")
        node, host = host.removeprefix("node://").strip("/"), DEFAULT_HOST
    try:
        gateway_host, token = None, None
        if gateway:
            from wharf.cli.gateway import TokenSource, parse_gateway  # noqa: PLC0415 - lazy

            gateway_host = parse_gateway(gateway, gateway_cacert, gateway_cert, gateway_key)
            # read when the gateway is first used: a bad token file does not stop `wharf ps`
            token = TokenSource(file=Path(token_file) if token_file else None,
                                env=os.environ.get("WHARF_TOKEN") or None,
                                default=home / DEFAULT_TOKEN_FILE)
        if node and gateway_host is None:
            raise InvalidArgument(
                f"node {node!r} is reached through a gateway: pass --gateway URL or set "
                "WHARF_GATEWAY (make cluster-up writes it, and where the token is, to "
                ".wharf/cluster.env)")
        tls_config = None
        if host.startswith("tcp://"):  # TLS protects TCP only; a unix socket has its mode
            tls_config = resolve_tls(
                tls=tls, tlsverify=tlsverify, cacert=tlscacert, cert=tlscert, key=tlskey,
                cert_path=os.environ.get("WHARF_CERT_PATH") or None,
                env_verify=os.environ.get("WHARF_TLS_VERIFY"), home=home)
        parsed = parse_host(host, tls_config)
    except InvalidArgument as exc:
        raise CLIError(str(exc)) from exc
    hooks = ctx.obj if isinstance(ctx.obj, Hooks) else Hooks()
    ctx.obj = Session(host=parsed, config_dir=Path(config_dir or home / ".wharf"), debug=debug,
                      hooks=hooks, gateway=gateway_host, token=token, node=node or None)
    ctx.call_on_close(ctx.obj.close)


def build_cli() -> click.Group:
    """The root group; its commands are imported when used (:data:`commandtree.ROOT`)."""
    return click.group(cls=RootGroup, name="wharf", lazy=ROOT,
                       context_settings={"help_option_names": ["-h", "--help"]})(
        _with_root_options(click.pass_context(_root)))


def main() -> None:
    """The click root for every command line :mod:`wharf.cli.fast` does not serve itself."""
    build_cli()(prog_name="wharf")


if __name__ == "__main__":
    main()
