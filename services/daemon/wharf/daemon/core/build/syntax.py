"""The low-level syntax of an instruction line, as Docker reads it (pure).

Splitting a line into keyword, leading ``--flags`` and arguments (buildkit's
parser/split_command.go), key/value words with their quotes kept (line_parsers.go
``parseWords``), the JSON (exec) form, flag values (instructions/bflag.go), Go durations
(``time.ParseDuration``) and octal modes. Errors are ``InvalidArgument`` with Docker's words
and no line: ``commands`` adds the line.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

from wharf.errors import InvalidArgument

WHITESPACE = re.compile(r"[\t\v\f\r ]+")  # Docker's reWhitespace / tokenWhitespace


def go_quote(text: str) -> str:
    """``%q`` of Go, near enough for messages."""
    return json.dumps(text, ensure_ascii=False)


def split_command(line: str) -> tuple[str, tuple[str, ...], str]:
    """(keyword as written, leading --flag words, the rest trimmed)."""
    parts = WHITESPACE.split(line.strip(), maxsplit=1)
    if len(parts) < 2:
        return parts[0], (), ""
    rest, flags = _extract_flags(parts[1])
    return parts[0], flags, rest.strip()


def _extract_flags(text: str) -> tuple[str, tuple[str, ...]]:
    # Leading words that start with "--" are flags; a bare "--" ends them.
    words: list[str] = []
    pos = 0
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if not text.startswith("--", pos):
            return text[pos:], tuple(words)
        word, pos = _flag_word(text, pos)
        if word == "--":
            return text[pos:], tuple(words)
        words.append(word)


def _flag_word(text: str, pos: int) -> tuple[str, int]:
    # Quotes are removed and a backslash escapes the next character (always a backslash
    # here, whatever the escape directive: split_command.go does the same).
    out: list[str] = []
    quote = ""
    while pos < len(text):
        ch = text[pos]
        if quote and ch == quote:
            quote, pos = "", pos + 1
            continue
        if not quote and ch.isspace():
            break
        if not quote and ch in "'\"":
            quote, pos = ch, pos + 1
            continue
        if ch == "\\":
            pos += 1
            if pos == len(text):
                break
            ch = text[pos]
        out.append(ch)
        pos += 1
    return "".join(out), pos


def whitespace_words(rest: str) -> tuple[str, ...]:
    """FROM, EXPOSE and shell-form COPY/ADD/VOLUME: split on whitespace, nothing else."""
    return tuple(WHITESPACE.split(rest)) if rest else ()


def parse_words(rest: str, escape: str) -> list[str]:
    """Words split on unquoted whitespace, quotes and escapes kept (ENV, LABEL, ARG)."""
    words: list[str] = []
    word, quote, blank_ok, started = "", "", False, False
    pos = 0
    while pos < len(rest):
        ch, pos = rest[pos], pos + 1
        if not started and ch.isspace():
            continue
        started = True
        if not quote and ch.isspace():
            if blank_ok or word:
                words.append(word)
            word, blank_ok, started = "", False, False
            continue
        if not quote and ch in "'\"":
            quote, blank_ok = ch, True
        elif quote and ch == quote:
            quote = ""
        elif ch == escape and quote != "'":
            if pos == len(rest):
                quote = ""  # an escape at the very end is dropped
                continue
            word, ch, pos = word + ch, rest[pos], pos + 1
        word += ch
    if started and (blank_ok or word):
        words.append(word)
    return words


def parse_json(rest: str) -> tuple[str, ...] | None:
    """The exec form: a JSON array of strings, or None when ``rest`` is not a JSON array.

    Invalid JSON is not an error (Docker falls back to the shell form); a valid array holding
    anything but strings is.
    """
    text = rest.lstrip()
    if not text.startswith("["):
        return None
    try:
        value = json.loads(text, parse_constant=_not_json)
    except ValueError:
        return None
    if not isinstance(value, list):
        return None
    if not all(isinstance(item, str) for item in value):
        raise InvalidArgument(
            "when using JSON array syntax, arrays must be comprised of strings only")
    return tuple(value)


def _not_json(constant: str) -> None:
    raise ValueError(f"{constant} is not JSON")  # NaN and Infinity: Go's JSON has neither


def parse_flags(raw: tuple[str, ...], spec: Mapping[str, bool]) -> dict[str, str]:
    """The --flags an instruction accepts: ``spec`` maps a name to whether it is boolean.

    Booleans are "true" or "false" (a bare ``--link`` is "true"); absent flags are absent.
    """
    values: dict[str, str] = {}
    for arg in raw:
        if not arg.startswith("--"):
            raise InvalidArgument(f"Arg should start with -- : {arg}")
        name, eq, value = arg[2:].partition("=")
        if name not in spec:
            raise InvalidArgument(f"Unknown flag: {name}")
        if name in values:
            raise InvalidArgument(f"Duplicate flag specified: {name}")
        if (spec[name] and eq and not value) or (not spec[name] and not eq):
            raise InvalidArgument(f"Missing a value on flag: {name}")
        if spec[name]:
            value = value.lower() or "true"
            if value not in ("true", "false"):
                raise InvalidArgument(
                    f"Expecting boolean value for flag {name}, not: {arg.partition('=')[2]}")
        values[name] = value
    return values


def parse_mode(chmod: str) -> int:
    """--chmod as an octal mode (0 to 07777); symbolic modes are refused."""
    if re.fullmatch(r"[0-7]{1,4}", chmod):
        return int(chmod, 8)
    if re.fullmatch(r"[ugoa]*[-+=][rwxXstugo]*(,[ugoa]*[-+=][rwxXstugo]*)*", chmod):
        raise InvalidArgument(
            f"invalid chmod parameter: {chmod}: symbolic modes are not supported by wharf, "
            "use an octal mode such as 755")
    raise InvalidArgument(
        f"invalid chmod parameter: {chmod}. it should be octal string and between 0 and 07777")
