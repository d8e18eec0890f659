"""From a parsed Dockerfile to its build stages, by Docker's rules (pure).

Only ARG may come before the first FROM: those are the global ARGs, usable in FROM lines (and
in a stage once redeclared there without a value). Each FROM starts a stage: ``FROM image``,
``FROM scratch`` or ``FROM <name of an earlier stage>`` (by name, case-insensitive, as
Docker's builders resolve a FROM; ``COPY --from`` also takes an index: ``resolve_stage``).
``--platform`` is accepted for the host platform only: wharf builds for the host. The
automatic platform args (TARGETPLATFORM, BUILDARCH, ...) are set in the global scope, all
naming the host.
"""

from __future__ import annotations

import platform as host_info
import posixpath
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from wharf.daemon.core.build.dockerfile import Dockerfile
from wharf.daemon.core.build.expansion import (
    BuildArgs,
    expand,
    unused_build_args,
    unused_build_args_warning,
)
from wharf.daemon.core.build.instructions import Arg, From, Instruction, problem
from wharf.errors import InvalidArgument

_MACHINES = {"x86_64": "amd64", "x86-64": "amd64", "amd64": "amd64", "aarch64": "arm64",
             "arm64": "arm64", "armv7l": "arm/v7", "armhf": "arm/v7", "armv6l": "arm/v6",
             "armel": "arm/v6", "arm": "arm/v7", "i386": "386", "i686": "386", "x86": "386",
             "386": "386", "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}
_SYSTEMS = frozenset({"linux", "windows", "darwin", "freebsd"})


@dataclass(frozen=True)
class Stage:
    """One build stage: ``index`` in the Dockerfile, ``name`` ("" when unnamed), ``base`` the
    expanded image reference (or "scratch", or the earlier stage's name, then
    ``base_stage`` is that stage's index), ``instructions`` after the FROM, in order."""

    index: int
    name: str
    base: str
    base_stage: int | None
    platform: str
    instructions: tuple[Instruction, ...]
    source: From

    @property
    def scratch(self) -> bool:
        return self.base_stage is None and self.base == "scratch"


@dataclass(frozen=True)
class BuildPlan:
    """What a build does: the stages to build (the last is the image), the build args with
    the global ARGs resolved, the escape character, the host platform, and the warnings and
    notes to print (the Dockerfile's, then the build args no ARG consumes)."""

    stages: tuple[Stage, ...]
    build_args: BuildArgs
    global_args: tuple[Arg, ...]
    escape: str
    platform: str
    unused_build_args: tuple[str, ...]
    warnings: tuple[str, ...]


def stages(dockerfile: Dockerfile, build_args: Mapping[str, str | None] | None = None, *,
           target: str | None = None, platform: str | None = None) -> BuildPlan:
    """The build stages of ``dockerfile`` for these ``--build-arg`` values (None for a name
    given without a value), up to the stage named ``target`` if one is, for ``platform``
    (the host's by default). Raises ``InvalidArgument`` naming the line at fault."""
    host = platform or host_platform()
    global_args, body = _split_global_args(dockerfile.instructions)
    args = BuildArgs(given=dict(build_args or {}), automatic=platform_args(host))
    for arg in global_args:
        for name, default in expand(arg, args.global_variables(), dockerfile.escape).pairs:
            args = args.declare_global(name, default)
    built: list[Stage] = []
    for source, instructions in _groups(body):
        built.append(_stage(source, instructions, built, args, host, dockerfile.escape))
    if not built:
        raise InvalidArgument("dockerfile contains no stages to build")
    if target is not None:
        built = built[: _target_index(built, target) + 1]
    consumed = [name for arg in global_args for name, _ in arg.pairs]
    consumed += [name for stage in built for instruction in stage.instructions
                 if isinstance(instruction, Arg) for name, _ in instruction.pairs]
    unused = unused_build_args(args.given, [*consumed, *args.automatic])
    warning = unused_build_args_warning(unused)
    return BuildPlan(tuple(built), args, global_args, dockerfile.escape, host, unused,
                     dockerfile.warnings + ((warning,) if warning else ()))


def _split_global_args(
        instructions: tuple[Instruction, ...]) -> tuple[tuple[Arg, ...], tuple[Instruction, ...]]:
    global_args: list[Arg] = []
    for index, instruction in enumerate(instructions):
        if isinstance(instruction, From):
            return tuple(global_args), instructions[index:]
        if not isinstance(instruction, Arg):
            raise problem(instruction.line, "no build stage in current context")
        global_args.append(instruction)
    return tuple(global_args), ()


def _groups(body: tuple[Instruction, ...]) -> Iterator[tuple[From, tuple[Instruction, ...]]]:
    starts = [index for index, instruction in enumerate(body) if isinstance(instruction, From)]
    for number, start in enumerate(starts):
        end = starts[number + 1] if number + 1 < len(starts) else len(body)
        source = body[start]
        assert isinstance(source, From)
        yield source, body[start + 1: end]


def _stage(source: From, instructions: tuple[Instruction, ...], built: list[Stage],
           args: BuildArgs, host: str, escape: str) -> Stage:
    # FROM sees the global ARGs only (and the automatic and predefined args).
    effective = expand(source, args.global_variables(), escape)
    if not effective.image:
        raise problem(source.line, f"base name ({source.image}) should not be blank")
    if effective.platform:
        try:
            wanted = normalize_platform(effective.platform, host)
        except InvalidArgument as exc:
            raise problem(source.line, exc.message) from exc
        if wanted != normalize_platform(host, host):
            raise problem(source.line, f"FROM --platform={effective.platform} is not supported: "
                                       f"wharf builds for the host platform ({host}) only")
    name = source.stage_name
    if name and any(stage.name == name for stage in built):
        raise problem(source.line, f"{name} stage name already used")
    base_stage = next((stage.index for stage in built
                       if stage.name and stage.name == effective.image.lower()), None)
    return Stage(len(built), name, effective.image, base_stage, host, instructions, effective)


def _target_index(built: list[Stage], target: str) -> int:
    for stage in built:
        if stage.name and stage.name == target.lower():
            return stage.index
    raise InvalidArgument(f"failed to reach build target {target} in Dockerfile")


def resolve_stage(built: tuple[Stage, ...], current: int, ref: str) -> int | None:
    """The index of the earlier stage ``COPY --from=ref`` (expanded) names, by name or by
    index, or None when ``ref`` is an image. Docker's errors for the current stage or an
    index out of bounds."""
    for stage in built[:current]:
        if stage.name and stage.name == ref.lower():
            return stage.index
    if not re.fullmatch(r"[+-]?[0-9]+", ref):
        return None
    index = int(ref)
    if index == current:
        raise InvalidArgument(f"invalid from flag value {ref}: refers to current build stage")
    if not 0 <= index < current:
        raise InvalidArgument(f"invalid from flag value {ref}: index out of bounds")
    return index


def resolve_workdir(current: str, requested: str) -> str:
    """WORKDIR after WORKDIR: a relative path joins the current one (Docker's
    normalizeWorkdir); the result is clean and absolute."""
    return posixpath.normpath(posixpath.join("/", current or "/", requested))


def host_platform(machine: str | None = None) -> str:
    """The platform wharf builds for: linux and this machine's architecture."""
    found = (machine or host_info.machine()).lower()
    return f"linux/{_MACHINES.get(found, found)}"


def normalize_platform(spec: str, host: str) -> str:
    """A ``--platform`` value as os/arch[/variant], normalized as containerd does."""
    parts = spec.lower().split("/")
    if not 1 <= len(parts) <= 3 or not all(parts):
        raise InvalidArgument(f"failed to parse platform {spec}: invalid platform")
    if len(parts) == 1:
        parts = [parts[0], *host.split("/")[1:]] if parts[0] in _SYSTEMS else ["linux", *parts]
    arch = _MACHINES.get(parts[1])
    if parts[0] not in _SYSTEMS or arch is None:
        raise InvalidArgument(
            f"failed to parse platform {spec}: unknown operating system or architecture")
    variant = parts[2] if len(parts) == 3 else ""
    variant = f"v{variant}" if variant.isdecimal() else variant
    arch, _, default_variant = arch.partition("/")
    if arch == "arm64" and variant in ("v8", "v8.0"):
        variant = ""
    return "/".join(part for part in (parts[0], arch, variant or default_variant) if part)


def platform_args(host: str) -> dict[str, str]:
    """BuildKit's automatic platform args, for the global scope: TARGETPLATFORM, TARGETOS,
    TARGETARCH, TARGETVARIANT and the BUILD* ones, all the host's."""
    system, arch, variant = ([*host.split("/"), "", ""])[:3]
    values = {"PLATFORM": host, "OS": system, "ARCH": arch, "VARIANT": variant}
    return {f"{side}{key}": value for side in ("TARGET", "BUILD")
            for key, value in values.items()}
