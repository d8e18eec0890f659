"""What one build step does to the image config, and how Docker's classic builder names it (pure).

A stage's state is the image Config it builds (Docker's container config subset an image keeps)
with the flags the classic builder tracks beside it (``cmd_set``: CMD was set in this stage, so a
later ENTRYPOINT keeps it). :func:`apply` gives the Config after a metadata instruction (ENV,
LABEL, CMD, ...) with the commit message dockerd writes for it; :func:`created_by` turns a
message into the history's ``created_by`` and the probe Cmd (``/bin/sh -c #(nop)  ENV A=x``);
RUN and COPY/ADD name themselves with :func:`run_created_by` and :func:`copy_created_by`.

The layer cache key (:func:`cache_key`) is a digest of the parent image, the step's
``created_by`` (which holds a RUN's build args and a COPY's content digest), the Config the step
runs with or produces and any extra input (COPY's --chown and --chmod): a step is reused when
all of them match, as the classic builder reuses a child image of the same parent whose probe
config matches.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from wharf.daemon.core.build.instructions import (
    Arg,
    Cmd,
    CommandLine,
    Entrypoint,
    Env,
    Expose,
    Healthcheck,
    Instruction,
    Label,
    Maintainer,
    Onbuild,
    Shell,
    StopSignal,
    User,
    Volume,
    Workdir,
)
from wharf.daemon.core.build.stages import resolve_workdir
from wharf.errors import InvalidArgument

DEFAULT_SHELL = ("/bin/sh", "-c")
NOP = "#(nop) "


@dataclass
class StageConfig:
    """The Config a stage is building, the image author (MAINTAINER) and CMD-set flag."""

    config: dict[str, Any] = field(default_factory=dict)
    author: str = ""
    cmd_set: bool = False

    @classmethod
    def from_image(cls, image_config: dict[str, Any] | None) -> StageConfig:
        """A stage's start: its base image's Config (nothing for scratch) and author."""
        doc = image_config or {}
        return cls(copy.deepcopy(doc.get("config") or {}), str(doc.get("author") or ""))

    @property
    def shell(self) -> list[str]:
        return list(self.config.get("Shell") or DEFAULT_SHELL)

    def argv(self, instruction: CommandLine) -> list[str]:
        """RUN/CMD/ENTRYPOINT's command: the shell and the string, or the exec form."""
        if instruction.prepend_shell:
            return [*self.shell, *instruction.command]
        return list(instruction.command)


def apply(state: StageConfig, instruction: Instruction) -> tuple[StageConfig, str]:
    """The state after a metadata instruction (expanded) and its commit message (``ENV A=x``).
    WORKDIR's message is its own (see :func:`created_by`)."""
    out = StageConfig(copy.deepcopy(state.config), state.author, state.cmd_set)
    config = out.config
    match instruction:
        case Env(pairs=pairs):
            config["Env"] = _ordered_env(config.get("Env") or [], pairs)
            return out, "ENV " + " ".join(f"{k}={v}" for k, v in pairs)
        case Label(pairs=pairs):
            config["Labels"] = {**(config.get("Labels") or {}), **dict(pairs)}
            return out, "LABEL " + " ".join(f"{k}={v}" for k, v in pairs)
        case Maintainer(name=name):
            out.author = name
            return out, f"MAINTAINER {name}"
        case Expose(ports=ports):
            config["ExposedPorts"] = {**(config.get("ExposedPorts") or {}),
                                      **{port: {} for port in ports}}
            return out, "EXPOSE " + " ".join(ports)
        case User(user=user):
            config["User"] = user
            return out, f"USER {user}"
        case Volume(paths=paths):
            config["Volumes"] = {**(config.get("Volumes") or {}), **{p: {} for p in paths}}
            return out, f"VOLUME {go_list(paths)}"
        case StopSignal(signal=signal):
            config["StopSignal"] = signal
            return out, f"STOPSIGNAL {signal}"
        case Workdir(path=path):
            config["WorkingDir"] = resolve_workdir(config.get("WorkingDir") or "/", path)
            return out, f"WORKDIR {config['WorkingDir']}"
        case Cmd():
            config["Cmd"] = state.argv(instruction)
            out.cmd_set = True
            return out, f"CMD {go_list(config['Cmd'])}"
        case Entrypoint():
            entrypoint = state.argv(instruction) if instruction.command else None
            config["Entrypoint"] = entrypoint
            if not state.cmd_set:  # a CMD inherited from the base does not survive it
                config["Cmd"] = None
            return out, f"ENTRYPOINT {go_list(entrypoint or [])}"
        case Healthcheck():
            config["Healthcheck"] = health_config(instruction)
            return out, f"HEALTHCHECK {go_list(instruction.test)}"
        case Shell(shell=shell):
            config["Shell"] = list(shell)
            return out, f"SHELL {go_list(shell)}"
        case Onbuild(expression=expression):
            config["OnBuild"] = [*(config.get("OnBuild") or []), expression]
            return out, f"ONBUILD {expression}"
        case Arg(pairs=pairs):
            return out, "ARG " + " ".join(
                name if value is None else f"{name}={value}" for name, value in pairs)
    raise InvalidArgument(f"{instruction.keyword} is not a metadata instruction")


def _ordered_env(env: list[str], pairs: tuple[tuple[str, str], ...]) -> list[str]:
    """Docker's ENV: a variable already set keeps its place with the new value; a new one is
    appended."""
    out = list(env)
    for key, value in pairs:
        entry = f"{key}={value}"
        for index, existing in enumerate(out):
            if existing.partition("=")[0] == key:
                out[index] = entry
                break
        else:
            out.append(entry)
    return out


def health_config(instruction: Healthcheck) -> dict[str, Any]:
    """HEALTHCHECK as the image Config's ``Healthcheck`` (zero durations left out)."""
    out: dict[str, Any] = {"Test": list(instruction.test)}
    for key, value in (("Interval", instruction.interval), ("Timeout", instruction.timeout),
                       ("StartPeriod", instruction.start_period),
                       ("StartInterval", instruction.start_interval),
                       ("Retries", instruction.retries)):
        if value:
            out[key] = value
    return out


def go_list(items: tuple[str, ...] | list[str]) -> str:
    """Go's ``%q`` of a string slice: ``["a" "b"]``."""
    return "[" + " ".join(json.dumps(item, ensure_ascii=False) for item in items) + "]"


def created_by(state: StageConfig, message: str, *, joined: bool = False) -> list[str]:
    """The probe Cmd of a metadata step (its ``created_by`` joined by spaces): the shell,
    ``#(nop) `` and the message as two words, or as one (``joined``: WORKDIR, COPY, ADD)."""
    if joined:
        return [*state.shell, NOP + message]
    return [*state.shell, NOP, message]


def run_created_by(argv: list[str], build_args: tuple[str, ...]) -> list[str]:
    """A RUN's probe Cmd: ``|N K=V ...`` before the command when build args are in effect."""
    if not build_args:
        return list(argv)
    return [f"|{len(build_args)}", *build_args, *argv]


def copy_created_by(state: StageConfig, keyword: str, digest: str, kinds: list[str],
                    dest: str) -> list[str]:
    """``#(nop) COPY file:<hex> in /dest `` (``dir:`` for one directory, ``multi:`` for
    several sources), as one word after the shell."""
    kind = kinds[0] if len(kinds) == 1 else "multi"
    hexdigest = digest.removeprefix("sha256:")
    return created_by(state, f"{keyword} {kind}:{hexdigest} in {dest} ", joined=True)


def cache_key(parent: str, probe: list[str], config: dict[str, Any], *extra: str) -> str:
    """The layer cache key of a step on ``parent`` (an image ID, "" for scratch)."""
    doc = json.dumps([parent, probe, config, list(extra)], sort_keys=True,
                     separators=(",", ":"))
    return "sha256:" + hashlib.sha256(doc.encode()).hexdigest()
