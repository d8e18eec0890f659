"""The Dockerfile front end: text to instructions, by Docker's rules (pure).

``parse`` reads what buildkit's frontend/dockerfile/parser reads (Docker's classic builder
vendors it): parser directives at the very top (``# escape=`` honoured, ``# syntax=`` and
``# check=`` recorded and ignored), comment lines, line continuations with the escape
character (comment lines and empty lines inside a continuation skipped, the latter with
Docker's warning), keywords in any case, and each instruction typed and checked with the line
it starts on (``commands``). Heredocs are refused, as the classic builder has none.

``stages`` (module ``stages``) then applies the rules across instructions: global ARGs, FROM
and build stages; ``expansion`` expands variables as the builder reaches each instruction.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from wharf.daemon.core.build.commands import build_instruction
from wharf.daemon.core.build.instructions import Instruction, problem
from wharf.errors import InvalidArgument

# `# directive=value`, case-insensitive key, at the top only (buildkit's reDirectives; RE2's
# \s is ASCII whitespace without \v).
_DIRECTIVE = re.compile(r"^#[\t\n\f\r ]*([a-zA-Z][a-zA-Z0-9]*)[\t\n\f\r ]*=[\t\n\f\r ]*(.+?)"
                        r"[\t\n\f\r ]*$")
_DIRECTIVES = ("syntax", "escape", "check")
_EMPTY_CONTINUATION = "[WARNING]: Empty continuation line found in:\n    "
_EMPTY_CONTINUATION_END = ("[WARNING]: Empty continuation lines will become errors in a future "
                           "release.")


@dataclass(frozen=True)
class Dockerfile:
    """A parsed Dockerfile: its instructions in order, the escape character in effect, the
    ``# syntax=`` value if any (ignored), the warnings and notes to print before building,
    and every parser directive found (name lower-cased, value)."""

    instructions: tuple[Instruction, ...]
    escape: str = "\\"
    syntax: str | None = None
    warnings: tuple[str, ...] = ()
    directives: tuple[tuple[str, str], ...] = ()


@dataclass
class _Directives:
    escape: str = "\\"
    done: bool = False
    values: dict[str, str] = field(default_factory=dict)

    def look(self, stripped: str, line: int) -> None:
        # Directives are read until the first line that is not one: an instruction, an
        # empty line, a plain comment or an unknown directive.
        if self.done:
            return
        match = _DIRECTIVE.match(stripped)
        key = match.group(1).lower() if match else ""
        if match is None or key not in _DIRECTIVES:
            self.done = True
            return
        if key in self.values:
            raise problem(line, f"only one {key} parser directive can be used")
        value = match.group(2)
        if key == "escape" and value not in ("`", "\\"):
            raise problem(line, f"invalid escape token '{value}' does not match ` or \\")
        self.values[key] = value
        if key == "escape":
            self.escape = value

    def notes(self) -> list[str]:
        notes = []
        if "syntax" in self.values:
            notes.append(f"[NOTE]: # syntax={self.values['syntax']} is ignored: wharf builds "
                         "with its own Dockerfile front end (the classic builder's syntax)")
        if "check" in self.values:
            notes.append(f"[NOTE]: # check={self.values['check']} is ignored: wharf runs no "
                         "build checks")
        return notes


def parse(text: str) -> Dockerfile:
    """Parse a Dockerfile; raises ``InvalidArgument`` naming the line of what is wrong."""
    lines = _physical_lines(text)
    directives = _Directives()
    instructions: list[Instruction] = []
    warnings: list[str] = []
    index = 0
    while index < len(lines):
        start = index + 1
        stripped = lines[index].lstrip()
        directives.look(stripped, start)
        index += 1
        joined, done = _trim_continuation("" if stripped.startswith("#") else stripped,
                                          directives.escape)
        if done and not joined:
            continue  # an empty line or a comment
        empty_continuation = False
        while not done and index < len(lines):
            raw = lines[index]
            index += 1
            if raw.lstrip().startswith("#"):
                continue  # a comment line inside a continuation is dropped
            if not raw.strip():
                empty_continuation = True
                continue
            part, done = _trim_continuation(raw, directives.escape)
            joined += part
        if empty_continuation:
            warnings.append(_EMPTY_CONTINUATION + joined)
        instructions.append(build_instruction(joined, start, index, directives.escape))
    if not instructions:
        raise InvalidArgument("dockerfile parse error: file with no instructions")
    if warnings:
        warnings.append(_EMPTY_CONTINUATION_END)
    return Dockerfile(tuple(instructions), directives.escape, directives.values.get("syntax"),
                      tuple(directives.notes() + warnings), tuple(directives.values.items()))


def parse_trigger(expression: str) -> Instruction:
    """An ONBUILD trigger of a base image (its config's ``OnBuild`` entry), to run right
    after the FROM that names the image; the trigger is parsed on its own, as Docker does."""
    parsed = parse(expression)
    if len(parsed.instructions) != 1:
        raise InvalidArgument("onbuild trigger should be a single expression")
    return parsed.instructions[0]


def _physical_lines(text: str) -> list[str]:
    # Lines end with \n; a trailing \r is dropped; a UTF-8 byte-order mark is dropped.
    text = text.removeprefix("\ufeff")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line.rstrip("\r") for line in lines]


def _trim_continuation(line: str, escape: str) -> tuple[str, bool]:
    """(the line without its trailing escape, whether the instruction ends on this line).

    The escape character ends a line's instruction unless it is the last non-blank
    character and is not itself escaped (buildkit's lineContinuationRegex).
    """
    match = _continuation(escape).search(line)
    if match is None:
        return line, True
    return line[: match.start()] + (match.group(1) or ""), False


_CONTINUATIONS: dict[str, re.Pattern[str]] = {}


def _continuation(escape: str) -> re.Pattern[str]:
    if escape not in _CONTINUATIONS:
        e = re.escape(escape)
        _CONTINUATIONS[escape] = re.compile(rf"([^{e}]){e}[ \t]*$|^{e}[ \t]*$")
    return _CONTINUATIONS[escape]
