"""Variables in a build: build args, ARG and ENV scoping, and expansion per instruction (pure).

Docker expands ``$variables`` (``shellwords``) in ADD, COPY, ENV, EXPOSE, FROM, LABEL,
STOPSIGNAL, USER, VOLUME, WORKDIR and ARG, with the variables in effect when the builder
reaches the instruction, the same values for the whole instruction (``ENV a=1 b=$a`` sees the
old ``a``). RUN, CMD, ENTRYPOINT, SHELL and HEALTHCHECK are left to the shell, ONBUILD to the
downstream build. The builder's loop, per stage::

    scope = Scope.start(plan.build_args, base_image_env, parent_scope_if_base_is_a_stage)
    for instruction in stage.instructions:
        effective = expand(instruction, scope.variables(), plan.escape)
        ...apply ``effective``; a RUN gets ``scope.run_args()`` in its environment and
        ``scope.cache_args()`` in its cache key...
        scope = scope.apply(effective)

What is in effect follows moby's builder/dockerfile (buildargs.go, evaluator.go): ENV values
first; then the ARGs declared in the stage, valued by the ``--build-arg`` given, else the
ARG's default, else the default of the global ARG of that name; the predefined proxy args
when given, declared or not. ENV overrides an ARG of the same name.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from wharf.daemon.core.build.instructions import (
    Add,
    Arg,
    Copy,
    Env,
    Expose,
    FileTransfer,
    From,
    Instruction,
    Label,
    StopSignal,
    User,
    Volume,
    Workdir,
    problem,
)
from wharf.daemon.core.build.shellwords import process_word, process_words
from wharf.daemon.core.build.syntax import parse_mode
from wharf.errors import InvalidArgument

# Docker's predefined ARGs: usable without an ARG instruction, and left out of the cache
# key and the history unless declared (the reference's "Predefined ARGs").
PREDEFINED_ARGS = frozenset({
    "HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY", "ftp_proxy",
    "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy",
})

InstructionT = TypeVar("InstructionT", bound=Instruction)


@dataclass(frozen=True)
class BuildArgs:
    """A build's ``--build-arg`` values and its global ARGs (those before the first FROM).

    ``given`` maps a name to its value, None for a name given without one (Docker's API
    sends null); ``meta`` holds the global ARGs' defaults, expanded; ``automatic`` the
    platform args set for the global scope (TARGETPLATFORM, BUILDPLATFORM, ...).
    """

    given: Mapping[str, str | None] = field(default_factory=dict)
    meta: Mapping[str, str | None] = field(default_factory=dict)
    automatic: Mapping[str, str] = field(default_factory=dict)

    def value(self, name: str, default: str | None = None) -> str | None:
        """An ARG's value: given, else its own default, else the global ARG's, else unset."""
        for candidate in (self.given.get(name), default, self.meta.get(name)):
            if candidate is not None:
                return candidate
        return self.automatic.get(name)

    def declare_global(self, name: str, default: str | None) -> BuildArgs:
        return dataclasses.replace(self, meta={**self.meta, name: default})

    def global_variables(self) -> dict[str, str]:
        """What global ARGs and FROM lines see: the global ARGs, the automatic platform
        args and the predefined args given."""
        out: dict[str, str] = {}
        for name in (*self.automatic, *self.meta, *sorted(PREDEFINED_ARGS)):
            value = self.value(name)
            if value is not None:
                out.setdefault(name, value)
        return out


@dataclass(frozen=True)
class Scope:
    """The variables of a stage at one instruction: ENV (the base image's, then the stage's)
    and the ARGs declared so far, with their defaults (expanded)."""

    build_args: BuildArgs
    env: tuple[tuple[str, str], ...] = ()
    declared: tuple[tuple[str, str | None], ...] = ()

    @classmethod
    def start(cls, build_args: BuildArgs, image_env: Iterable[str] = (),
              parent: Scope | None = None) -> Scope:
        """A stage's scope: its base image's ``Env`` ("K=V" entries); a stage built on an
        earlier stage (``parent``) inherits the ARGs declared there, as the reference says."""
        env = tuple((key, value) for key, _, value in (e.partition("=") for e in image_env))
        return cls(build_args, env, parent.declared if parent else ())

    def args(self) -> dict[str, str]:
        """The ARGs in effect (Docker's allowed build args), set ones only."""
        out: dict[str, str] = {}
        for name, default in self.declared:
            value = self.build_args.value(name, default)
            if value is not None:
                out[name] = value
        declared = dict(self.declared)
        for name in sorted(name for name in PREDEFINED_ARGS if name not in declared):
            given = self.build_args.given.get(name)
            if given is not None:
                out[name] = given
        return out

    def variables(self) -> dict[str, str]:
        """What the next instruction's expansion sees: ENV, then the ARGs ENV does not set."""
        env = dict(self.env)
        return {**env, **self.run_args()}

    def run_args(self) -> dict[str, str]:
        """The ARGs a RUN gets in its environment on top of ENV (ENV wins)."""
        env = dict(self.env)
        return {name: value for name, value in self.args().items() if name not in env}

    def cache_args(self) -> tuple[str, ...]:
        """The "K=V" a RUN's cache key includes: its build-time args, less the predefined
        args the Dockerfile does not declare (so a changed proxy is no cache miss)."""
        declared = dict(self.declared)
        return tuple(sorted(f"{name}={value}" for name, value in self.run_args().items()
                            if name in declared or name not in PREDEFINED_ARGS))

    def env_list(self) -> list[str]:
        """ENV as an image config's ``Env``."""
        return [f"{key}={value}" for key, value in self.env]

    def apply(self, instruction: Instruction) -> Scope:
        """The scope after an (expanded) instruction: ENV sets, ARG declares."""
        if isinstance(instruction, Env):
            env = dict(self.env)
            env.update(instruction.pairs)
            return dataclasses.replace(self, env=tuple(env.items()))
        if isinstance(instruction, Arg):
            declared = dict(self.declared)
            declared.update(instruction.pairs)
            return dataclasses.replace(self, declared=tuple(declared.items()))
        return self


def expand(instruction: InstructionT, variables: Mapping[str, str],
           escape: str = "\\") -> InstructionT:
    """The instruction with its variables expanded, its quotes removed and its values checked
    as Docker checks them then (EXPOSE ports, STOPSIGNAL, --chmod); instructions Docker does
    not expand come back as they are. Errors name the instruction's line."""
    expander = _EXPANDERS.get(type(instruction))
    if expander is None:
        return instruction

    def word(text: str) -> str:
        return process_word(text, variables, escape)

    def words(text: str) -> list[str]:
        return process_words(text, variables, escape)

    try:
        expanded = expander(instruction, word, words)
    except InvalidArgument as exc:
        raise problem(instruction.line, exc.message) from exc
    assert isinstance(expanded, type(instruction))
    return expanded


_Word = Callable[[str], str]
_Words = Callable[[str], list[str]]


def _pairs(instruction: Instruction, word: _Word, _: _Words) -> Instruction:
    assert isinstance(instruction, Env | Label)
    return dataclasses.replace(instruction, pairs=tuple(
        (word(key), word(value)) for key, value in instruction.pairs))


def _arg(instruction: Instruction, word: _Word, _: _Words) -> Instruction:
    assert isinstance(instruction, Arg)
    return dataclasses.replace(instruction, pairs=tuple(
        (word(key), None if value is None else word(value))
        for key, value in instruction.pairs))


def _transfer(instruction: Instruction, word: _Word, _: _Words) -> Instruction:
    assert isinstance(instruction, FileTransfer)
    chmod = word(instruction.chmod)
    out = dataclasses.replace(
        instruction, sources=tuple(word(s) for s in instruction.sources),
        dest=word(instruction.dest), chown=word(instruction.chown), chmod=chmod,
        mode=parse_mode(chmod) if chmod else None)
    if isinstance(out, Copy):
        out = dataclasses.replace(out, from_=word(out.from_))
    return out


def _volume(instruction: Instruction, word: _Word, _: _Words) -> Instruction:
    assert isinstance(instruction, Volume)
    paths = tuple(word(path) for path in instruction.paths)
    if not all(paths):
        raise InvalidArgument("VOLUME specified can not be an empty string")
    return dataclasses.replace(instruction, paths=paths)


def _expose(instruction: Instruction, _: _Word, words: _Words) -> Instruction:
    # The one instruction whose words split after expansion (EXPOSE $PORTS with "80 443").
    assert isinstance(instruction, Expose)
    specs = [spec for port in instruction.ports for spec in words(port)]
    return dataclasses.replace(instruction, ports=tuple(
        port for spec in specs for port in exposed_ports(spec)))


def _single(instruction: Instruction, word: _Word, _: _Words) -> Instruction:
    if isinstance(instruction, Workdir):
        return dataclasses.replace(instruction, path=word(instruction.path))
    if isinstance(instruction, User):
        return dataclasses.replace(instruction, user=word(instruction.user))
    if isinstance(instruction, StopSignal):
        return dataclasses.replace(instruction, signal=check_signal(word(instruction.signal)))
    assert isinstance(instruction, From)
    return dataclasses.replace(instruction, image=word(instruction.image),
                               platform=word(instruction.platform))


_EXPANDERS: dict[type[Instruction], Callable[[Instruction, _Word, _Words], Instruction]] = {
    Env: _pairs, Label: _pairs, Arg: _arg, Copy: _transfer, Add: _transfer,
    Volume: _volume, Expose: _expose, Workdir: _single, User: _single, StopSignal: _single,
    From: _single,
}


def exposed_ports(spec: str) -> list[str]:
    """An EXPOSE word as "port/proto" entries: ``80``, ``80/udp``, ``8000-8002/tcp`` (a
    ``[ip:]host:`` prefix is accepted and dropped, as Docker does)."""
    parts = spec.split(":")
    host, container = (parts[-2] if len(parts) > 1 else ""), parts[-1]
    port, _, proto = container.partition("/")
    if not port:
        raise InvalidArgument(f"no port specified: {container}<empty>")
    proto = proto.lower() or "tcp"
    if proto not in ("tcp", "udp", "sctp"):
        raise InvalidArgument(f"invalid proto: {proto}")
    start, end = _port_range(port, "containerPort")
    if host:
        host_start, host_end = _port_range(host, "hostPort")
        if end - start != host_end - host_start and end != start:
            raise InvalidArgument("invalid ranges specified for container and host Ports: "
                                  f"{port} and {host}")
    return [f"{number}/{proto}" for number in range(start, end + 1)]


def _port_range(text: str, what: str) -> tuple[int, int]:
    match = re.fullmatch(r"([0-9]+)(?:-([0-9]+))?", text)
    start = int(match.group(1)) if match else -1
    end = int(match.group(2) or start) if match else -1
    if not match or not 0 <= start <= end <= 65535:
        raise InvalidArgument(f"invalid {what}: {text}")
    return start, end


_SIGNALS = frozenset({
    "ABRT", "ALRM", "BUS", "CHLD", "CLD", "CONT", "FPE", "HUP", "ILL", "INT", "IO", "IOT",
    "KILL", "PIPE", "POLL", "PROF", "PWR", "QUIT", "SEGV", "STKFLT", "STOP", "SYS", "TERM",
    "TRAP", "TSTP", "TTIN", "TTOU", "URG", "USR1", "USR2", "VTALRM", "WINCH", "XCPU", "XFSZ",
    "RTMIN", "RTMAX",
    *(f"RTMIN+{n}" for n in range(1, 16)), *(f"RTMAX-{n}" for n in range(1, 15)),
})


def check_signal(signal: str) -> str:
    """A STOPSIGNAL value as Docker's signal.ParseSignal accepts it (kept as written)."""
    if signal.isdecimal() and 1 <= int(signal) <= 64:
        return signal
    if signal.upper().removeprefix("SIG") in _SIGNALS and not signal.isdecimal():
        return signal
    raise InvalidArgument(f"Invalid signal: {signal}")


def unused_build_args(given: Iterable[str], consumed: Iterable[str]) -> tuple[str, ...]:
    """The ``--build-arg`` names no ARG declared (predefined args are never reported)."""
    return tuple(sorted(set(given) - set(consumed) - PREDEFINED_ARGS))


def unused_build_args_warning(names: Iterable[str]) -> str | None:
    """Docker's warning for build args no ARG consumed, or None."""
    listed = " ".join(names)
    return f"[Warning] One or more build-args [{listed}] were not consumed" if listed else None
