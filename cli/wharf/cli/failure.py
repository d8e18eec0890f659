"""The one exception the CLI's presentation layer raises to stop with a message.

The docker CLI prints its errors bare on stderr (``Error response from daemon: …`` is part of the
message for daemon errors) and exits 1; click's own ``Error: `` prefix would differ, so ``show``
prints the message as it is.
"""

from __future__ import annotations

from typing import IO, Any

import click


class CLIError(click.ClickException):
    """Print ``message`` to stderr and exit ``exit_code`` (1 unless told, e.g. 125 for run)."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        # click declares exit_code on the class; run/create need 125/126/127 per instance
        self.exit_code = exit_code  # type: ignore[misc]

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(self.format_message(), file=file, err=file is None)
