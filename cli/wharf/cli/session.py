"""What one CLI invocation knows: where the daemon is, the config dir, the terminal.

Built by the root command from the global options and handed to commands as ``ctx.obj``
(or by the click-free fast path, :mod:`wharf.cli.fast`). Tests pass :class:`Hooks` as click's
``obj`` to inject a fake wire and fake terminals. Plain classes rather than dataclasses: this
module is on the fast path, where importing ``dataclasses`` alone costs ~7 ms.
"""

from __future__ import annotations

import sys

from wharf.cli.client import APIClient
from wharf.cli.failure import CLIError
from wharf.cli.transport import HttpTransport
from wharf.errors import InvalidArgument

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path

    from wharf.cli.config import ConfigFile
    from wharf.cli.gateway import GatewayAPI, TokenSource
    from wharf.cli.transport import Host, Transport


class Hooks:
    """Test seams: an httpx transport to use instead of the network, forced TTY answers,
    and a :class:`~wharf.cli.hijack.Hijacker` to use instead of a socket for attach/exec."""

    __slots__ = ("hijacker", "stdin_tty", "stdout_tty", "wire")

    def __init__(self, wire: object = None, hijacker: object = None,
                 stdout_tty: bool | None = None, stdin_tty: bool | None = None) -> None:
        self.wire = wire
        self.hijacker = hijacker
        self.stdout_tty = stdout_tty
        self.stdin_tty = stdin_tty


class Session:
    """Per-invocation state; the API client is created on first use, closed by :meth:`close`
    (the click root registers it on its context; the fast path calls it).

    With ``node`` set, the client reaches that node's daemon through the gateway (``gateway``,
    with the token ``token`` reads when the gateway is first used) instead of the daemon at
    ``host``.
    """

    def __init__(self, host: Host, config_dir: Path | str, debug: bool = False,
                 hooks: Hooks | None = None, gateway: Host | None = None,
                 token: TokenSource | None = None, node: str | None = None) -> None:
        self.host = host
        self.config_dir = config_dir
        self.debug = debug
        self.hooks = Hooks() if hooks is None else hooks
        self.gateway = gateway
        self.token = token
        self.node = node
        self._client: APIClient | None = None

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
        return self._client

    def close(self) -> None:
        """Close the API client's connections (if one was made)."""
        if self._client is not None:
            self._client.close()

    def gateway_api(self) -> GatewayAPI:
        """The gateway's own routes (nodes, the cluster's containers)."""
        from wharf.cli.gateway import GatewayAPI  # noqa: PLC0415 - lazy

        if self.gateway is None:
            import click  # noqa: PLC0415 - a usage error belongs to the click commands

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
        from pathlib import Path  # noqa: PLC0415 - ~5 ms: not for `wharf run`

        from wharf.cli.config import ConfigFile  # noqa: PLC0415 - lazy: most commands need none

        return ConfigFile.load(Path(self.config_dir))

    def stdout_is_tty(self) -> bool:
        if self.hooks.stdout_tty is not None:
            return self.hooks.stdout_tty
        return sys.stdout.isatty()

    def stdin_is_tty(self) -> bool:
        if self.hooks.stdin_tty is not None:
            return self.hooks.stdin_tty
        return sys.stdin.isatty()


def current() -> Session:
    """The session of the running click command."""
    import click  # noqa: PLC0415 - the fast path has no click context and never asks

    obj = click.get_current_context().find_object(Session)
    if obj is None:
        raise click.UsageError("wharf commands run under the wharf root command")
    return obj
