"""The exception the CLI raises to stop with a message, and how API errors become one.

The docker CLI prints its errors bare on stderr (``Error response from daemon: …`` is part of the
message for daemon errors) and exits 1; click's own ``Error: `` prefix would differ, so ``show``
prints the message as it is. Nothing here imports click: the click-free fast path
(:mod:`wharf.cli.fast`) raises and prints these too; the click root turns them into click's
exceptions (:mod:`wharf.cli.main`).
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import IO, Any


class CLIError(Exception):
    """Print ``message`` to stderr and exit ``exit_code`` (1 unless told, e.g. 125 for run)."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code

    def format_message(self) -> str:
        return self.message

    def show(self, file: IO[Any] | None = None) -> None:
        out = sys.stderr if file is None else file
        out.write(self.format_message() + "\n")
        out.flush()


class FlagError(CLIError):
    """A bad flag value (run, create, build): docker prints it with a ``See '… --help'.`` hint
    and exits 125. The hint names the command, which the code that parsed the value may not
    know: :meth:`hinted` adds it where the command is known."""

    def __init__(self, message: str, command_path: str | None = None) -> None:
        super().__init__(message, exit_code=125)
        self.command_path = command_path

    def format_message(self) -> str:
        if self.command_path is None:
            return self.message
        return f"{self.message}\nSee '{self.command_path} --help'."

    def hinted(self, command_path: str) -> FlagError:
        """This error with the hint for ``command_path`` (unless it has one)."""
        if self.command_path is not None:
            return self
        return FlagError(self.message, command_path)


def from_api(exc: BaseException) -> CLIError | None:
    """The CLI's message for an API client error (docker's wording), None for anything else:
    an unreachable daemon or a cut reply print as they are, a daemon's error after ``Error
    response from daemon:``."""
    from wharf.cli.transport import DaemonUnreachable, IncompleteReply  # noqa: PLC0415
    from wharf.errors import WharfError  # noqa: PLC0415

    if isinstance(exc, DaemonUnreachable | IncompleteReply):
        return CLIError(str(exc))
    if isinstance(exc, WharfError):
        return CLIError(f"Error response from daemon: {exc}")
    return None
