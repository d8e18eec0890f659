"""Before a build streams anything: its options checked, the Dockerfile read and parsed, the
stages planned (a Dockerfile error is the request's error, HTTP 400, as dockerd answers it).

``--label`` values become a LABEL step at the end of the last stage, as the classic builder adds
them (so they count as a step and are cached like one). Only the stages the target needs are
built: the target, the stages it is built FROM and those it copies ``--from``, recursively.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from wharf import reference
from wharf.daemon.core.build.commands import build_instruction
from wharf.daemon.core.build.context import DEFAULT_DOCKERFILE, apply_dockerignore, read_dockerfile
from wharf.daemon.core.build.dockerfile import parse
from wharf.daemon.core.build.expansion import expand
from wharf.daemon.core.build.instructions import Copy
from wharf.daemon.core.build.stages import BuildPlan, Stage, resolve_stage, stages
from wharf.errors import InvalidArgument
from wharf.models import AuthConfig


def _no_auth(_registry: str) -> AuthConfig | None:
    return None


@dataclass(frozen=True)
class BuildRequest:
    """What ``POST /build`` asks for (checked by :func:`check_request`)."""

    tags: tuple[str, ...] = ()  # normalised references
    dockerfile: str = DEFAULT_DOCKERFILE
    build_args: Mapping[str, str | None] = field(default_factory=dict)
    target: str | None = None
    no_cache: bool = False
    pull: bool = False
    labels: Mapping[str, str] = field(default_factory=dict)
    quiet: bool = False
    remove: bool = True  # the step containers, after a step that worked
    force_remove: bool = False  # ... and after one that failed (wharf removes those too)
    network_mode: str = ""
    auth: Callable[[str], AuthConfig | None] = _no_auth


def normalise_tags(tags: list[str]) -> tuple[str, ...]:
    """``t`` values as normalised references; InvalidArgument for a bad one or a digest."""
    out = []
    for tag in tags:
        try:
            ref = reference.parse(tag).with_default_tag()
        except InvalidArgument as exc:
            raise InvalidArgument(f"invalid reference format: {tag}: {exc.message}") from None
        if ref.digest:
            raise InvalidArgument(f"invalid tag {tag}: a tag cannot hold a digest")
        out.append(ref.string)
    return tuple(dict.fromkeys(out))


@dataclass(frozen=True)
class Prepared:
    """A build ready to run: the plan, the stages to build (indexes, in order) and the
    number of steps the output counts (global ARGs, and each built stage's FROM and
    instructions)."""

    plan: BuildPlan
    needed: tuple[int, ...]
    total_steps: int

    @property
    def stages(self) -> tuple[Stage, ...]:
        return self.plan.stages


def prepare(context: Path, request: BuildRequest) -> Prepared:
    """Read the Dockerfile, hide what .dockerignore excludes, plan the stages."""
    _, raw = read_dockerfile(context, request.dockerfile)
    apply_dockerignore(context)
    return plan_build(raw, request)


def plan_build(raw: bytes, request: BuildRequest) -> Prepared:
    """Plan the build of the Dockerfile ``raw`` (its bytes as read from the context)."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidArgument("the Dockerfile is not UTF-8 text") from None
    plan = stages(parse(text), request.build_args, target=request.target)
    if request.labels:
        plan = _with_labels(plan, request.labels)
    needed = needed_stages(plan)
    total = len(plan.global_args) + sum(1 + len(plan.stages[i].instructions) for i in needed)
    return Prepared(plan, needed, total)


def _with_labels(plan: BuildPlan, labels: Mapping[str, str]) -> BuildPlan:
    text = "LABEL " + " ".join(f"{_go_quote(k)}={_single_quote(v)}"
                               for k, v in sorted(labels.items()))
    last = plan.stages[-1]
    line = (last.instructions[-1].end_line if last.instructions else last.source.end_line) + 1
    label = build_instruction(text, line, line, plan.escape)
    stages_ = (*plan.stages[:-1], replace(last, instructions=(*last.instructions, label)))
    return replace(plan, stages=stages_)


def _go_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _single_quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def needed_stages(plan: BuildPlan) -> tuple[int, ...]:
    """The stages the last one (the target) needs, in Dockerfile order."""
    variables = plan.build_args.global_variables()
    wanted = {len(plan.stages) - 1}
    for stage in reversed(plan.stages):
        if stage.index not in wanted:
            continue
        if stage.base_stage is not None:
            wanted.add(stage.base_stage)
        for instruction in stage.instructions:
            if isinstance(instruction, Copy) and instruction.from_:
                try:  # a stage's own ARG in --from is read when the step runs
                    ref = expand(instruction, variables, plan.escape).from_
                except InvalidArgument:
                    continue
                index = resolve_stage(plan.stages, stage.index, ref)
                if index is not None:
                    wanted.add(index)
    return tuple(sorted(wanted))
