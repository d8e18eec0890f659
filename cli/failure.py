"""The one exception the CLI's presentation layer raises to stop with a message.

The docker CLI prints its errors bare on stderr (``Error response from daemon: …`` is part of the
message for daemon errors) and exits 1; click's own ``Error: `` prefix would differ, so ``show``
prints the message as it is.
"""

from __future__ import annotations

from typing import IO, Any

import click


class CLIError(click.ClickException):
    """Print ``message`` to stderr and exit 1."""

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(self.format_message(), file=file, err=file is None)
