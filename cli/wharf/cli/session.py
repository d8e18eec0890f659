"""What one CLI invocation knows: where the daemon is, the config dir, the terminal.

Built by the root command from the global options and handed to commands as ``ctx.obj``.
Tests pass :class:`Hooks` as click's ``obj`` to inject a fake wire and fake terminals.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import click

from wharf.cli.client import APIClient
from wharf.cli.failure import CLIError
from wharf.cli.transport import Host, HttpTransport, Transport
from wharf.errors import InvalidArgument

if TYPE_CHECKING:
    from pathlib import Path

    from wharf.cli.config import ConfigFile
    from wharf.cli.gateway import GatewayAPI, TokenSource


@dataclass
class Hooks:
    """Test seams: an httpx transport to use instead of the network, forced TTY answers,
    and a :class:`~wharf.cli.hijack.Hijacker` to use instead of a socket for attach/exec."""

    wire: object = None
    hijacker: object = None
    stdout_tty: bool | None = None
    stdin_tty: bool | None = None


@dataclass
class Session:
    """Per-invocation state; the API client is created on first use.

    With ``node`` set, the client reaches that node's daemon through the gateway (``gateway``,
    with the token ``token`` reads when the gateway is first used) instead of the daemon at
    ``host``.
    """

    host: Host
    config_dir: Path
    debug: bool = False
    hooks: Hooks = field(default_factory=Hooks)
    gateway: Host | None = None
    token: TokenSource | None = None
    node: str | None = None
    _client: APIClient | None = None

    def client(self) -> APIClient:
        """The API client (imports the transport stack lazily)."""
        if self._client is None:
            from wharf.cli.hijack import Hijacker, SocketHijacker  # noqa: PLC0415 - lazy

            transport: Transport
            if self.node is not None:
                from wharf.cli.gateway import GatewayTransport  # noqa: PLC0415 - lazy

                through = GatewayTransport(self.gateway_api(), self.node)
                assert self.gateway is not None, "gateway_api() checked it"
                hijacker: Hijacker = (self.hooks.hijacker  # type: ignore[assignment]
                                      if self.hooks.hijacker is not None
                                      else through.hijacker(self.gateway))
                transport = through
            else:
                hijacker = (self.hooks.hijacker  # type: ignore[assignment]
                            if self.hooks.hijacker is not None else SocketHijacker(self.host))
                transport = self._wire(self.host, prefix=None)
            self._client = APIClient(transport, hijacker)
            click.get_current_context().call_on_close(self._client.close)
        return self._client

    def gateway_api(self) -> GatewayAPI:
        """The gateway's own routes (nodes, the cluster's containers)."""
        from wharf.cli.gateway import GatewayAPI  # noqa: PLC0415 - lazy

        if self.gateway is None:
            raise click.UsageError(
                "no gateway: pass --gateway URL or set WHARF_GATEWAY (make cluster-up writes "
                "it, and where the token is, to .wharf/cluster.env)")
        try:
            token = self.token.read() if self.token is not None else None
        except InvalidArgument as exc:  # the CLI's own refusal, not the gateway's answer
            raise CLIError(str(exc)) from exc
        return GatewayAPI(self._wire(self.gateway, prefix=""), token)

    def use_node(self, node: str) -> None:
        """Send this command's requests to ``node`` through the gateway (``any``: placed)."""
        if self._client is not None:
            raise RuntimeError("use_node() after the client was made")
        self.node = node
        if self.gateway is None:
            self.gateway_api()  # the message that says how to name a gateway

    def _wire(self, host: Host, prefix: str | None) -> Transport:
        if self.hooks.wire is not None:  # a fake daemon behind httpx's MockTransport
            return HttpTransport(host, inject=self.hooks.wire, debug=self.debug, prefix=prefix)
        from wharf.cli.wire import SocketTransport  # noqa: PLC0415 - lazy

        return SocketTransport(host, debug=self.debug, prefix=prefix)

    def config(self) -> ConfigFile:
        from wharf.cli.config import ConfigFile  # noqa: PLC0415 - lazy: most commands need none

        return ConfigFile.load(self.config_dir)

    def stdout_is_tty(self) -> bool:
        if self.hooks.stdout_tty is not None:
            return self.hooks.stdout_tty
        return sys.stdout.isatty()

    def stdin_is_tty(self) -> bool:
        if self.hooks.stdin_tty is not None:
            return self.hooks.stdin_tty
        return sys.stdin.isatty()


def current() -> Session:
    """The session of the running command."""
    obj = click.get_current_context().find_object(Session)
    if obj is None:
        raise click.UsageError("wharf commands run under the wharf root command")
    return obj
