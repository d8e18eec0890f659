"""From one instruction's text to its typed value, checked as Docker checks it (pure).

Per keyword: how the rest of the line splits (buildkit parser/line_parsers.go: JSON or shell
form, words, key/value pairs), how many arguments and which flags it takes, and Docker's
messages for what is wrong (instructions/parse.go, bflag.go). Values that Docker expands are
kept as written; ``expansion`` expands them when the builder reaches the instruction.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from wharf.daemon.core.build.instructions import (
    KEYWORDS,
    Add,
    Arg,
    Cmd,
    CommandLine,
    Copy,
    Entrypoint,
    Env,
    Expose,
    From,
    Healthcheck,
    Instruction,
    Label,
    Maintainer,
    Onbuild,
    Run,
    Shell,
    StopSignal,
    User,
    Volume,
    Workdir,
    problem,
)
from wharf.daemon.core.build.syntax import (
    WHITESPACE,
    go_quote,
    parse_flags,
    parse_json,
    parse_mode,
    parse_words,
    split_command,
    whitespace_words,
)
from wharf.dockerapi import go_duration
from wharf.errors import InvalidArgument

# Both used with fullmatch: "$" with re.match also accepts a final newline ("app\n").
_STAGE_NAME = re.compile(r"[a-z][a-z0-9_.-]*")
# buildkit's reHeredoc on a word: [fd]<<[-]WORD (a "<<<" here-string is not one).
_HEREDOC = re.compile(r"\d*<<-?[^<\s]+")
_ONBUILD_PREFIX = re.compile(r"^\s*ONBUILD\s*", re.IGNORECASE)
_MINIMUM_INTERVAL = 1_000_000  # 1ms, Docker's container.MinimumDuration
_HEALTH_FLAGS = {"interval": False, "timeout": False, "start-period": False,
                 "start-interval": False, "retries": False}


@dataclass(frozen=True)
class _Request:
    keyword: str  # upper-case
    flags: tuple[str, ...]
    rest: str
    escape: str
    line: int
    end_line: int
    original: str

    def base(self, args: tuple[str, ...], json_form: bool = False) -> dict[str, Any]:
        return {"keyword": self.keyword, "args": args, "flags": self.flags,
                "json_form": json_form, "line": self.line, "end_line": self.end_line,
                "original": self.original}


def build_instruction(text: str, line: int, end_line: int, escape: str = "\\") -> Instruction:
    """The typed instruction for one logical line (continuations joined) starting at ``line``."""
    try:
        return _build(text, line, end_line, escape)
    except InvalidArgument as exc:
        raise problem(line, exc.message) from exc


def _build(text: str, line: int, end_line: int, escape: str) -> Instruction:
    written, flags, rest = split_command(text)
    keyword = written.upper()
    builder = _BUILDERS.get(keyword)
    if builder is None:
        close = difflib.get_close_matches(keyword, sorted(KEYWORDS), n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise InvalidArgument(f"unknown instruction: {written}{hint}")
    return builder(_Request(keyword, flags, rest, escape, line, end_line, text.strip()))


def _maybe_json(req: _Request) -> tuple[tuple[str, ...], bool]:
    # parseMaybeJSON: the JSON array, else the whole rest as one string.
    if not req.rest:
        return (), False
    parsed = parse_json(req.rest)
    return (parsed, True) if parsed is not None else ((req.rest,), False)


def _maybe_json_list(req: _Request) -> tuple[tuple[str, ...], bool]:
    # parseMaybeJSONToList: the JSON array, else whitespace-separated words.
    parsed = parse_json(req.rest)
    return (parsed, True) if parsed is not None else (whitespace_words(req.rest), False)


def _refuse_heredoc(req: _Request) -> None:
    # The classic builder has no heredocs (it would run the following lines as
    # instructions); say so rather than fail on them. Words as buildkit finds them: split on
    # unquoted whitespace, quotes kept (so "a <<b" in quotes is no heredoc).
    for word in parse_words(req.rest, req.escape):
        if _HEREDOC.fullmatch(word):
            raise InvalidArgument(
                f"{req.keyword} {word}: heredocs are not supported (wharf builds as Docker's "
                "classic builder does); put the content in a file of the build context")


def _from(req: _Request) -> Instruction:
    args = whitespace_words(req.rest)
    if len(args) == 3 and args[1].lower() == "as":
        name = args[2].lower()
        if not _STAGE_NAME.fullmatch(name):
            raise InvalidArgument(f"invalid name for build stage: {go_quote(args[2])}, "
                                  "name can't start with a number or contain symbols")
    elif len(args) != 1:
        raise InvalidArgument("FROM requires either one or three arguments")
    else:
        name = ""
    flags = parse_flags(req.flags, {"platform": False})
    return From(**req.base(args), image=args[0], stage_name=name,
                platform=flags.get("platform", ""))


_COMMAND_LINES: dict[str, type[CommandLine]] = {"RUN": Run, "CMD": Cmd,
                                                "ENTRYPOINT": Entrypoint}


def _command_line(req: _Request) -> Instruction:
    parse_flags(req.flags, {})
    args, json_form = _maybe_json(req)
    if req.keyword == "RUN" and not args:
        raise InvalidArgument("RUN requires at least one argument")
    if req.keyword == "RUN" and not json_form:
        _refuse_heredoc(req)
    return _COMMAND_LINES[req.keyword](**req.base(args, json_form), command=args,
                                       prepend_shell=not json_form)


def _shell(req: _Request) -> Instruction:
    parse_flags(req.flags, {})
    args, json_form = _maybe_json(req)
    if not args:
        raise InvalidArgument("SHELL requires at least one argument")
    if not json_form:
        raise InvalidArgument("SHELL requires the arguments to be in JSON form")
    return Shell(**req.base(args, True), shell=args)


def _pairs(req: _Request) -> tuple[tuple[str, str], ...]:
    # parseNameVal: `KEY name value` (the old form: the value is the rest of the line) when
    # the first word holds no "=", else `KEY name=value ...`.
    words = parse_words(req.rest, req.escape)
    if not words:
        raise InvalidArgument(f"{req.keyword} requires at least one argument")
    if "=" not in words[0]:
        parts = WHITESPACE.split(req.rest, maxsplit=1)
        if len(parts) < 2:
            raise InvalidArgument(f"{req.keyword} must have two arguments")
        pairs = [(parts[0], parts[1])]
    else:
        for word in words:
            if "=" not in word:
                raise InvalidArgument(f"Syntax error - can't find = in {go_quote(word)}. "
                                      "Must be of the form: name=value")
        pairs = [(key, value) for key, _, value in (w.partition("=") for w in words)]
    if any(not key for key, _ in pairs):
        raise InvalidArgument(f"{req.keyword} names can not be blank")
    return tuple(pairs)


def _env_or_label(req: _Request) -> Instruction:
    parse_flags(req.flags, {})
    pairs = _pairs(req)
    args = tuple(item for pair in pairs for item in pair)
    if req.keyword == "ENV":
        return Env(**req.base(args), pairs=pairs)
    return Label(**req.base(args), pairs=pairs)


def _arg(req: _Request) -> Instruction:
    parse_flags(req.flags, {})
    words = parse_words(req.rest, req.escape)
    if not words:
        raise InvalidArgument("ARG requires at least one argument")
    pairs: list[tuple[str, str | None]] = []
    for word in words:
        key, eq, value = word.partition("=")
        if eq and not key:
            raise InvalidArgument("ARG names can not be blank")
        pairs.append((key, value if eq else None))
    return Arg(**req.base(tuple(words)), pairs=tuple(pairs))


def _expose(req: _Request) -> Instruction:
    parse_flags(req.flags, {})
    ports = whitespace_words(req.rest)
    if not ports:
        raise InvalidArgument("EXPOSE requires at least one argument")
    return Expose(**req.base(ports), ports=ports)


def _volume(req: _Request) -> Instruction:
    parse_flags(req.flags, {})
    args, json_form = _maybe_json_list(req)
    if not args:
        raise InvalidArgument("VOLUME requires at least one argument")
    paths = tuple(arg.strip() for arg in args)
    if not all(paths):
        raise InvalidArgument("VOLUME specified can not be an empty string")
    return Volume(**req.base(args, json_form), paths=paths)


def _one(req: _Request) -> Instruction:
    # WORKDIR, USER, STOPSIGNAL, MAINTAINER: the rest of the line is the one argument.
    parse_flags(req.flags, {})
    if not req.rest:
        raise InvalidArgument(f"{req.keyword} requires exactly one argument")
    base = req.base((req.rest,))
    if req.keyword == "WORKDIR":
        return Workdir(**base, path=req.rest)
    if req.keyword == "USER":
        return User(**base, user=req.rest)
    if req.keyword == "STOPSIGNAL":
        return StopSignal(**base, signal=req.rest)
    return Maintainer(**base, name=req.rest)


def _transfer(req: _Request) -> Instruction:
    args, json_form = _maybe_json_list(req)
    if len(args) < 2:
        raise InvalidArgument(f"{req.keyword} requires at least two arguments, but only one "
                              "was provided. Destination could not be determined")
    spec = {"chown": False, "chmod": False, "link": True}
    if req.keyword == "COPY":
        spec["from"] = False
    flags = parse_flags(req.flags, spec)
    if flags.get("link") == "true":
        raise InvalidArgument(f"{req.keyword} --link is not supported by wharf's builder")
    if not json_form:
        _refuse_heredoc(req)
    chmod = flags.get("chmod", "")
    common: dict[str, Any] = {
        **req.base(args, json_form), "sources": args[:-1], "dest": args[-1],
        "chown": flags.get("chown", ""), "chmod": chmod,
        "mode": parse_mode(chmod) if chmod and "$" not in chmod else None}
    if req.keyword == "COPY":
        return Copy(**common, from_=flags.get("from", ""))
    return Add(**common)


def _interval(flags: dict[str, str], name: str) -> int:
    value = flags.get(name, "")
    duration = go_duration(value) if value else 0
    if duration and duration < _MINIMUM_INTERVAL:
        raise InvalidArgument(f"Interval {go_quote(name)} cannot be less than 1ms")
    return duration


def _retries(value: str) -> int:
    if not value:
        return 0
    if not re.fullmatch(r"[+-]?[0-9]+", value):
        raise InvalidArgument(f"strconv.ParseInt: parsing {go_quote(value)}: invalid syntax")
    if int(value) < 0:
        raise InvalidArgument(f"--retries cannot be negative ({int(value)})")
    return int(value)


def _healthcheck(req: _Request) -> Instruction:
    # parseHealthConfig: the type word, then a command in JSON or shell form.
    parts = req.rest.split(None, 1)
    if not parts:
        raise InvalidArgument("HEALTHCHECK requires at least one argument")
    kind_written = parts[0]
    args, json_form = _maybe_json(dataclasses.replace(req, rest="".join(parts[1:])))
    base = req.base((kind_written, *args), json_form)
    kind = kind_written.upper()
    if kind == "NONE":
        if args:
            raise InvalidArgument("HEALTHCHECK NONE takes no arguments")
        return Healthcheck(**base, test=("NONE",))
    flags = parse_flags(req.flags, _HEALTH_FLAGS)
    if kind != "CMD":
        raise InvalidArgument(f"Unknown type {go_quote(kind)} in HEALTHCHECK (try CMD)")
    if not args:
        raise InvalidArgument("Missing command after HEALTHCHECK CMD")
    return Healthcheck(
        **base, test=("CMD", *args) if json_form else ("CMD-SHELL", *args),
        interval=_interval(flags, "interval"), timeout=_interval(flags, "timeout"),
        start_period=_interval(flags, "start-period"),
        start_interval=_interval(flags, "start-interval"),
        retries=_retries(flags.get("retries", "")))


def _onbuild(req: _Request) -> Instruction:
    parse_flags(req.flags, {})
    if not req.rest:
        raise InvalidArgument("ONBUILD requires at least one argument")
    trigger_keyword = split_command(req.rest)[0].upper()
    if trigger_keyword == "ONBUILD":
        raise InvalidArgument("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
    if trigger_keyword in ("MAINTAINER", "FROM"):
        raise InvalidArgument(f"{trigger_keyword} isn't allowed as an ONBUILD trigger")
    trigger = _build(req.rest, req.line, req.end_line, req.escape)
    return Onbuild(**req.base((trigger.keyword, *trigger.args)), trigger=trigger,
                   expression=_ONBUILD_PREFIX.sub("", req.original))


_BUILDERS: dict[str, Callable[[_Request], Instruction]] = {
    "ADD": _transfer, "ARG": _arg, "CMD": _command_line, "COPY": _transfer,
    "ENTRYPOINT": _command_line, "ENV": _env_or_label, "EXPOSE": _expose, "FROM": _from,
    "HEALTHCHECK": _healthcheck, "LABEL": _env_or_label, "MAINTAINER": _one,
    "ONBUILD": _onbuild, "RUN": _command_line, "SHELL": _shell, "STOPSIGNAL": _one,
    "USER": _one, "VOLUME": _volume, "WORKDIR": _one,
}
