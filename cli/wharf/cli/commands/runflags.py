"""The flags of ``run`` and ``create``, declared once as data, and a parser for them without click.

:data:`CREATE_FLAGS` (shared by ``run`` and ``create``) and :data:`RUN_FLAGS` (``run`` only) are
the one declaration: :mod:`wharf.cli.commands.createopts` turns each :class:`Flag` into a click
option (help, ``--help`` text, the error messages for anything unusual), and :func:`parse` reads
an argument list the way click would for the plain cases, so ``wharf run`` can start without
importing click (~25 ms on a small VM; docs/cli.md "Start-up"). :func:`parse` answers None for
anything it is not sure to read exactly as click does (an unknown flag, ``--help``, a value click
would convert or refuse): the caller then hands the whole command line to click, whose answer is
the reference; ``tests/unit/test_cli_fast.py`` compares the two on many command lines.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any


class Flag:
    """One flag: its names, the option key (``dest``), its kind, default, help and metavar.

    Kinds: ``text`` (a string; ``default`` None unless given), ``flag`` (a boolean switch),
    ``many`` (repeatable, a tuple of strings), ``int`` (an integer or None), ``bool`` (a value
    such as ``--sig-proxy=false``).
    """

    __slots__ = ("decls", "default", "dest", "help", "kind", "metavar")

    def __init__(self, *decls: str, dest: str | None = None, kind: str = "text",
                 default: Any = None, help: str = "", metavar: str | None = None) -> None:
        self.decls = decls
        longest = max(decls, key=len)
        self.dest = dest or longest.lstrip("-").replace("-", "_")
        self.kind = kind
        self.default = False if kind == "flag" and default is None else default
        self.help = help
        self.metavar = metavar

    def initial(self) -> Any:
        """The value when the flag is not given (click's: ``()`` for ``many``)."""
        return () if self.kind == "many" else self.default


HEALTH_FLAGS: tuple[Flag, ...] = (
    Flag("--health-cmd", default="", help="Command to run to check health."),
    Flag("--health-interval", default="0s", metavar="DURATION",
         help="Time between running the check (ms|s|m|h) (default 0s)."),
    Flag("--health-retries", default="0", metavar="INT",
         help="Consecutive failures needed to report unhealthy."),
    Flag("--health-start-interval", default="0s", metavar="DURATION",
         help="Time between running the check during the start period (ms|s|m|h) "
         "(default 0s)."),
    Flag("--health-start-period", default="0s", metavar="DURATION",
         help="Start period for the container to initialize before starting "
         "health-retries countdown (ms|s|m|h) (default 0s)."),
    Flag("--health-timeout", default="0s", metavar="DURATION",
         help="Maximum time to allow one check to run (ms|s|m|h) (default 0s)."),
    Flag("--no-healthcheck", kind="flag", help="Disable any container-specified HEALTHCHECK."),
)

CREATE_FLAGS: tuple[Flag, ...] = (
    Flag("-i", "--interactive", kind="flag", help="Keep STDIN open even if not attached."),
    Flag("-t", "--tty", kind="flag", help="Allocate a pseudo-TTY."),
    Flag("--rm", dest="auto_remove", kind="flag",
         help="Automatically remove the container when it exits."),
    Flag("--name", default="", help="Assign a name to the container."),
    Flag("-e", "--env", kind="many", help="Set environment variables."),
    Flag("--env-file", kind="many", help="Read in a file of environment variables."),
    Flag("-w", "--workdir", default="", help="Working directory inside the container."),
    Flag("-u", "--user", default="", help="Username or UID (format: <name|uid>[:<group|gid>])."),
    Flag("--entrypoint", help="Overwrite the default ENTRYPOINT."),
    Flag("-h", "--hostname", default="", help="Container host name."),
    Flag("-l", "--label", dest="labels", kind="many", help="Set meta data on a container."),
    Flag("--restart", default="no", help="Restart policy to apply."),
    Flag("-m", "--memory", default="", help="Memory limit."),
    Flag("--cpus", default="", help="Number of CPUs."),
    Flag("--pids-limit", kind="int", help="Tune container pids limit."),
    Flag("--read-only", kind="flag",
         help="Mount the container's root filesystem as read only."),
    Flag("--tmpfs", kind="many", help="Mount a tmpfs directory."),
    Flag("--cap-add", kind="many", help="Add Linux capabilities."),
    Flag("--cap-drop", kind="many", help="Drop Linux capabilities."),
    Flag("--privileged", kind="flag", help="Give extended privileges."),
    Flag("--security-opt", kind="many", help="Security Options."),
    Flag("--runtime", default="", help="Runtime to use for this container."),
    Flag("--network", "--net", default="default", help="Connect a container to a network."),
    Flag("-p", "--publish", kind="many",
         help="Publish a container's port(s) to the host "
         "([ip:][hostPort[-end]:]containerPort[-end][/tcp|udp])."),
    Flag("--expose", kind="many",
         help="Expose a port or a range of ports (PORT[-END][/PROTO])."),
    Flag("-P", "--publish-all", kind="flag", help="Publish all exposed ports to random ports."),
    Flag("--ip", default="",
         help="IPv4 address (e.g., 172.30.100.104), on a user-defined network."),
    Flag("--network-alias", dest="network_aliases", kind="many",
         help="Add network-scoped alias for the container."),
    Flag("-v", "--volume", dest="volumes", kind="many",
         help="Bind mount a volume ([NAME|/HOST:]/PATH[:ro|rw,nocopy,…])."),
    Flag("--mount", dest="mounts", kind="many",
         help="Attach a filesystem mount (type=volume|bind|tmpfs,source=…,"
         "target=…[,readonly][,volume-nocopy][,tmpfs-size=…])."),
    Flag("--volumes-from", kind="many",
         help="Mount volumes from the specified container(s) (NAME[:ro|rw])."),
    Flag("--pull", default="missing",
         help='Pull image before running ("always"|"missing"|"never").'),
    Flag("--platform", default="", help="Set platform if server is multi-platform capable."),
    *HEALTH_FLAGS,
    Flag("--log-driver", default="", help="Logging driver for the container."),
    Flag("--log-opt", dest="log_opts", kind="many",
         help="Log driver options (max-size=10m, max-file=3)."),
)

RUN_FLAGS: tuple[Flag, ...] = (
    Flag("-d", "--detach", kind="flag", help="Run container in background and print container ID."),
    Flag("--sig-proxy", kind="bool", default=True, help="Proxy received signals to the process."),
    Flag("--detach-keys", help="Override the key sequence for detaching."),
    Flag("--node", metavar="NAME",
         help="Run on node NAME through the gateway ('any': the gateway places it)."),
)

# click.BOOL's words (lower-cased); anything else is click's to refuse
_BOOLS = {"1": True, "true": True, "t": True, "yes": True, "y": True, "on": True,
          "0": False, "false": False, "f": False, "no": False, "n": False, "off": False}


class Parsed:
    """What :func:`parse` read: the image, the command after it, every flag's value."""

    __slots__ = ("command", "image", "values")

    def __init__(self, image: str, command: tuple[str, ...], values: dict[str, Any]) -> None:
        self.image = image
        self.command = command
        self.values = values


def _value(flag: Flag, text: str) -> Any:
    """``text`` as click would convert it for ``flag``; ValueError when click might differ."""
    if flag.kind == "int":
        if not text.strip().lstrip("+-").isdigit():
            raise ValueError(text)
        return int(text)
    if flag.kind == "bool":
        return _BOOLS[text.strip().lower()]  # KeyError: click's own message
    return text


def _table(flags: Sequence[Flag]) -> Mapping[str, Flag]:
    return {decl: flag for flag in flags for decl in flag.decls}


def parse(args: Sequence[str], flags: Sequence[Flag]) -> Parsed | None:
    """Read ``[FLAGS] IMAGE [COMMAND...]`` (flags stop at the image, as ``run`` has
    ``allow_interspersed_args`` off); None when click must read it (see the module's note)."""
    table = _table(flags)
    values: dict[str, Any] = {flag.dest: flag.initial() for flag in flags}
    index = 0
    while index < len(args):
        arg = args[index]
        if arg == "--" or not arg.startswith("-") or arg == "-":
            break
        taken = _long(arg, args, index, table, values) if arg.startswith("--") else \
            _short(arg, args, index, table, values)
        if taken is None:
            return None
        index += taken
    if arg_count := len(args) - index:
        rest = list(args[index:])
        if rest[0] == "--":
            rest, arg_count = rest[1:], arg_count - 1
        if arg_count:
            return Parsed(rest[0], tuple(rest[1:]), values)
    return None  # no image: click's "Missing argument" message


def _store(flag: Flag, text: str | None, values: dict[str, Any]) -> bool:
    """Set ``flag`` from ``text`` (None for a flag without a value); False when click must."""
    if flag.kind == "flag":
        if text is not None:
            return False
        values[flag.dest] = True
        return True
    if text is None:
        return False
    try:
        value = _value(flag, text)
    except (ValueError, KeyError):
        return False
    if flag.kind == "many":
        values[flag.dest] = (*values[flag.dest], value)
    else:
        values[flag.dest] = value
    return True


def _long(arg: str, args: Sequence[str], index: int, table: Mapping[str, Flag],
          values: dict[str, Any]) -> int | None:
    name, eq, text = arg.partition("=")
    flag = table.get(name)
    if flag is None:
        return None
    if eq or flag.kind == "flag":
        return 1 if _store(flag, text if eq else None, values) else None
    if index + 1 >= len(args):
        return None
    return 2 if _store(flag, args[index + 1], values) else None


def _short(arg: str, args: Sequence[str], index: int, table: Mapping[str, Flag],
           values: dict[str, Any]) -> int | None:
    """``-it``, ``-p80:80``, ``-e A=1``: flags combined, the last one may take a value."""
    for at in range(1, len(arg)):
        flag = table.get("-" + arg[at])
        if flag is None:
            return None
        if flag.kind == "flag":
            _store(flag, None, values)
            continue
        rest = arg[at + 1:]
        if rest:
            return 1 if _store(flag, rest, values) else None
        if index + 1 >= len(args):
            return None
        return 2 if _store(flag, args[index + 1], values) else None
    return 1
