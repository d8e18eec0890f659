"""A Dockerfile's instructions as frozen values: what ``dockerfile.parse`` yields (pure).

Every instruction is an :class:`Instruction` (keyword, arguments as Docker's parser splits them,
raw ``--flags``, JSON or shell form, first and last line, the text with its continuations
joined) and a subclass per keyword adds the typed values the builder applies. Values that
Docker expands (see ``expansion``) are held here as written, quotes and escapes included:
the builder passes every instruction through ``expansion.expand`` before it uses one.
"""

from __future__ import annotations

from dataclasses import dataclass

from wharf.errors import InvalidArgument

# The instructions Docker knows (moby/buildkit frontend/dockerfile/command).
KEYWORDS = frozenset({
    "ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK", "LABEL",
    "MAINTAINER", "ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR",
})


def problem(line: int, message: str) -> InvalidArgument:
    """A Dockerfile error at a line, worded as Docker's parser words it."""
    return InvalidArgument(f"dockerfile parse error on line {line}: {message}")


@dataclass(frozen=True, kw_only=True)
class Instruction:
    """One instruction as written.

    ``args`` are Docker's node arguments: the JSON array's strings, the whitespace-separated
    words (FROM, EXPOSE, shell-form COPY/ADD/VOLUME), the key/value words (ENV, LABEL, ARG) or
    the one string of a shell-form command. ``flags`` are the raw ``--name=value`` words.
    ``original`` is the instruction's text with continuation lines joined (comment lines
    inside dropped): what Docker prints as the step and what a cache key starts from.
    """

    keyword: str
    args: tuple[str, ...] = ()
    flags: tuple[str, ...] = ()
    json_form: bool = False
    line: int = 0
    end_line: int = 0
    original: str = ""


@dataclass(frozen=True, kw_only=True)
class From(Instruction):
    """FROM [--platform=P] image [AS name]: ``stage_name`` lower-cased, "" when unnamed."""

    image: str
    stage_name: str = ""
    platform: str = ""


@dataclass(frozen=True, kw_only=True)
class CommandLine(Instruction):
    """RUN, CMD, ENTRYPOINT: the exec-form array, or (``prepend_shell``) the one shell string.

    The builder runs ``SHELL + command`` when ``prepend_shell`` (Docker's ``PrependShell``);
    the shell string is never expanded by the builder (the shell does that).
    """

    command: tuple[str, ...]
    prepend_shell: bool


@dataclass(frozen=True, kw_only=True)
class Run(CommandLine):
    """RUN."""


@dataclass(frozen=True, kw_only=True)
class Cmd(CommandLine):
    """CMD (may be empty)."""


@dataclass(frozen=True, kw_only=True)
class Entrypoint(CommandLine):
    """ENTRYPOINT (empty clears the entrypoint)."""


@dataclass(frozen=True, kw_only=True)
class Env(Instruction):
    """ENV: (name, value) pairs in order, from ``ENV k v`` or ``ENV k=v ...``."""

    pairs: tuple[tuple[str, str], ...]


@dataclass(frozen=True, kw_only=True)
class Label(Instruction):
    """LABEL: (key, value) pairs in order."""

    pairs: tuple[tuple[str, str], ...]


@dataclass(frozen=True, kw_only=True)
class Arg(Instruction):
    """ARG: (name, default) pairs; the default is None when the ARG has none."""

    pairs: tuple[tuple[str, str | None], ...]


@dataclass(frozen=True, kw_only=True)
class Expose(Instruction):
    """EXPOSE: as written; after expansion, ``port/proto`` entries (ranges spelled out)."""

    ports: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class Volume(Instruction):
    """VOLUME: the mount points (JSON array or space-separated)."""

    paths: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class Workdir(Instruction):
    """WORKDIR: the path as written (relative paths join the previous WORKDIR)."""

    path: str


@dataclass(frozen=True, kw_only=True)
class User(Instruction):
    """USER user[:group]."""

    user: str


@dataclass(frozen=True, kw_only=True)
class StopSignal(Instruction):
    """STOPSIGNAL: a signal name (SIGTERM, TERM) or number, checked after expansion."""

    signal: str


@dataclass(frozen=True, kw_only=True)
class Maintainer(Instruction):
    """MAINTAINER (deprecated, accepted): the image's Author."""

    name: str


@dataclass(frozen=True, kw_only=True)
class Shell(Instruction):
    """SHELL: the shell for shell-form commands (JSON form only)."""

    shell: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class FileTransfer(Instruction):
    """What COPY and ADD share: sources, destination, --chown and --chmod.

    ``mode`` is ``chmod`` read as octal, or None without --chmod (or while the flag still
    holds a variable: expansion reads it then).
    """

    sources: tuple[str, ...]
    dest: str
    chown: str = ""
    chmod: str = ""
    mode: int | None = None


@dataclass(frozen=True, kw_only=True)
class Copy(FileTransfer):
    """COPY: ``from_`` is the --from stage name, stage index or image ("" = the context)."""

    from_: str = ""


@dataclass(frozen=True, kw_only=True)
class Add(FileTransfer):
    """ADD (local files, local tar archives unpacked, remote URLs)."""


@dataclass(frozen=True, kw_only=True)
class Healthcheck(Instruction):
    """HEALTHCHECK as Docker's HealthConfig: ``test`` is ("NONE",), ("CMD", *argv) or
    ("CMD-SHELL", command); durations in nanoseconds, 0 meaning "inherit the default"."""

    test: tuple[str, ...]
    interval: int = 0
    timeout: int = 0
    start_period: int = 0
    start_interval: int = 0
    retries: int = 0


@dataclass(frozen=True, kw_only=True)
class Onbuild(Instruction):
    """ONBUILD: the validated ``trigger`` and the ``expression`` stored in the image config."""

    trigger: Instruction
    expression: str
