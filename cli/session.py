"""What one CLI invocation knows: where the daemon is, the config dir, the terminal.

Built by the root command from the global options and handed to commands as ``ctx.obj``.
Tests pass :class:`Hooks` as click's ``obj`` to inject a fake wire and fake terminals.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import click

from wharf.cli.client import APIClient
from wharf.cli.config import ConfigFile
from wharf.cli.transport import Host, HttpTransport, Transport


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
    """Per-invocation state; the API client is created on first use."""

    host: Host
    config_dir: Path
    debug: bool = False
    hooks: Hooks = field(default_factory=Hooks)
    _client: APIClient | None = None

    def client(self) -> APIClient:
        """The API client (imports the transport stack lazily)."""
        if self._client is None:
            from wharf.cli.hijack import Hijacker, SocketHijacker  # noqa: PLC0415 - lazy

            hijacker: Hijacker = (self.hooks.hijacker  # type: ignore[assignment]
                                  if self.hooks.hijacker is not None
                                  else SocketHijacker(self.host))
            transport: Transport
            if self.hooks.wire is not None:  # a fake daemon behind httpx's MockTransport
                transport = HttpTransport(self.host, inject=self.hooks.wire, debug=self.debug)
            else:
                from wharf.cli.wire import SocketTransport  # noqa: PLC0415 - lazy

                transport = SocketTransport(self.host, debug=self.debug)
            self._client = APIClient(transport, hijacker)
            click.get_current_context().call_on_close(self._client.close)
        return self._client

    def config(self) -> ConfigFile:
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
