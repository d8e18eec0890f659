"""Docker's shell-word processing: quotes, escapes and ``$variable`` expansion (pure).

What buildkit's frontend/dockerfile/shell/lex.go does to the words of the instructions that
support environment replacement: ``$name`` and ``${name}``, the modifiers ``${name:-word}``,
``${name-word}``, ``${name:+word}``, ``${name+word}``, ``${name:?message}``, ``${name?message}``
and the patterns ``${name#p}``, ``${name##p}``, ``${name%p}``, ``${name%%p}``,
``${name/p/r}``, ``${name//p/r}``; single quotes keep everything literal, double quotes keep
all but ``$`` and escapes of ``"``, ``$`` and the escape character; outside quotes the escape
character (backslash, or backtick under ``# escape=```) takes the next character literally.
An unset variable expands to nothing. The quotes themselves are removed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from wharf.daemon.core.build.syntax import go_quote
from wharf.errors import InvalidArgument

_SPECIAL_PARAMETERS = "@*#?-$!0"


def process_word(word: str, env: Mapping[str, str], escape: str = "\\") -> str:
    """``word`` with its variables expanded and its quotes and escapes processed."""
    return _Lexer(word, env, escape).result()[0]


def process_words(word: str, env: Mapping[str, str], escape: str = "\\") -> list[str]:
    """Like ``process_word``, then split on whitespace that is neither quoted nor escaped
    (after expansion: a variable holding "80 443" gives two words). Only EXPOSE does this."""
    return _Lexer(word, env, escape).result()[1]


class _Words:
    """The word splitting that runs alongside (lex.go's wordsStruct)."""

    def __init__(self) -> None:
        self.word = ""
        self.words: list[str] = []
        self.in_word = False

    def add_char(self, ch: str) -> None:
        if ch.isspace():
            if self.in_word and self.word:
                self.words.append(self.word)
                self.word, self.in_word = "", False
        else:
            self.add_raw(ch)

    def add_string(self, text: str) -> None:
        for ch in text:
            self.add_char(ch)

    def add_raw(self, text: str) -> None:
        self.word += text
        self.in_word = True

    def done(self) -> list[str]:
        if self.word:
            self.words.append(self.word)
            self.word, self.in_word = "", False
        return self.words


class _Lexer:
    def __init__(self, text: str, env: Mapping[str, str], escape: str) -> None:
        self.text, self.env, self.escape = text, env, escape
        self.pos = 0
        self.raw_escapes = False

    def result(self) -> tuple[str, list[str]]:
        try:
            return self.run("", raw_escapes=False)
        except InvalidArgument as exc:
            raise InvalidArgument(
                f"failed to process {go_quote(self.text)}: {exc.message}") from None

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def next(self) -> str:
        ch = self.peek()
        self.pos += len(ch)
        return ch

    def run(self, stop: str, raw_escapes: bool) -> tuple[str, list[str]]:
        """Process up to ``stop`` (consumed) or the end when ``stop`` is ""."""
        saved, self.raw_escapes = self.raw_escapes, raw_escapes
        try:
            return self._run(stop)
        finally:
            self.raw_escapes = saved

    def _run(self, stop: str) -> tuple[str, list[str]]:
        result: list[str] = []
        words = _Words()
        while self.peek():
            ch = self.peek()
            if stop and ch == stop:
                self.next()
                return "".join(result), words.done()
            if ch in "$'\"":
                piece = {"$": self.dollar, "'": self.single_quoted,
                         '"': self.double_quoted}[ch]()
                result.append(piece)
                if ch == "$":
                    words.add_string(piece)  # an expanded value splits into words
                else:
                    words.add_raw(piece)
                continue
            ch = self.next()
            if ch == self.escape:
                if self.raw_escapes:
                    words.add_raw(ch)
                    result.append(ch)
                ch = self.next()
                if not ch:
                    break  # an escape at the very end is dropped
                words.add_raw(ch)
            else:
                words.add_char(ch)
            result.append(ch)
        if stop:
            raise InvalidArgument(
                f"unexpected end of statement while looking for matching {stop}")
        return "".join(result), words.done()

    def single_quoted(self) -> str:
        self.next()
        out: list[str] = []
        while (ch := self.next()) != "'":
            if not ch:
                raise InvalidArgument(
                    "unexpected end of statement while looking for matching single-quote")
            out.append(ch)
        return "".join(out)

    def double_quoted(self) -> str:
        self.next()
        out: list[str] = []
        while (ch := self.peek()) != '"':
            if not ch:
                raise InvalidArgument(
                    "unexpected end of statement while looking for matching double-quote")
            if ch == "$":
                out.append(self.dollar())
                continue
            ch = self.next()
            if ch == self.escape:
                if self.raw_escapes:
                    out.append(ch)
                following = self.peek()
                if not following:
                    continue  # an escape right before the end: the error comes next
                if following in ('"', "$", self.escape):
                    ch = self.next()
            out.append(ch)
        self.next()
        return "".join(out)

    def dollar(self) -> str:
        self.next()
        if self.peek() != "{":
            name = self.name()
            return self.env.get(name, "") if name else "$"
        self.next()
        if not self.peek():
            raise InvalidArgument("syntax error: missing '}'")
        if self.peek() in "{}:":
            raise InvalidArgument("syntax error: bad substitution")
        name = self.name()
        ch = self.next()
        if ch == "}":
            return self.env.get(name, "")
        if not ch:
            raise InvalidArgument("syntax error: missing '}'")
        if ch == "/":
            return self.replace(name)
        modifier, null_is_unset = ch, False
        if ch == ":":
            null_is_unset, ch = True, self.next()
            modifier += ch
            if not ch:
                raise InvalidArgument("syntax error: missing '}'")
        if ch not in "+-?#%":
            raise InvalidArgument(f"unsupported modifier ({modifier}) in substitution")
        word = self.until("}", raw_escapes=ch in "#%")
        return self.modify(name, ch, word, null_is_unset)

    def until(self, stop: str, raw_escapes: bool) -> str:
        try:
            return self.run(stop, raw_escapes)[0]
        except InvalidArgument:
            if not self.peek():
                where = " in ${}" if stop == "/" else ""
                raise InvalidArgument(f"syntax error: missing '{stop}'{where}") from None
            raise

    def modify(self, name: str, modifier: str, word: str, null_is_unset: bool) -> str:
        is_set = name in self.env
        value = self.env.get(name, "")
        empty = not is_set or (null_is_unset and value == "")
        if modifier == "-":
            return word if empty else value
        if modifier == "+":
            return "" if empty else word
        if modifier == "?":
            if empty:
                default = "is not allowed to be unset" if not is_set else \
                    "is not allowed to be empty"
                raise InvalidArgument(f"{name}: {word or default}")
            return value
        longest = word.startswith(modifier)
        pattern = _pattern(word[1:] if longest else word)
        cuts = range(len(value) + 1)
        if modifier == "#":  # remove the shortest (longest) matching prefix
            for cut in (reversed(cuts) if longest else cuts):
                if pattern.fullmatch(value[:cut]):
                    return value[cut:]
            return value
        for cut in (cuts if longest else reversed(cuts)):  # "%": the matching suffix
            if pattern.fullmatch(value[cut:]):
                return value[:cut]
        return value

    def replace(self, name: str) -> str:
        every = self.peek() == "/"
        if every:
            self.next()
        pattern = _pattern(self.until("/", raw_escapes=True))
        replacement = self.until("}", raw_escapes=True)
        value = self.env.get(name, "")
        if every:
            return pattern.sub(lambda _: replacement, value)
        match = pattern.search(value)
        return value if match is None else \
            value[: match.start()] + replacement + value[match.end():]

    def name(self) -> str:
        # A name is letters, digits and "_"; or all digits ($1); or one special parameter.
        ch = self.peek()
        if ch.isdecimal():
            start = self.pos
            while self.peek().isdecimal():
                self.next()
            return self.text[start: self.pos]
        if ch and ch in _SPECIAL_PARAMETERS:
            return self.next()
        start = self.pos
        while self.peek() and (self.peek().isalnum() or self.peek() == "_"):
            self.next()
        return self.text[start: self.pos]


def _pattern(pattern: str) -> re.Pattern[str]:
    # A shell glob: "*" any run, "?" any character, "\" escapes "*", "?" or "\" (and is
    # dropped before "}" or "/"); everything else literal.
    out: list[str] = []
    index = 0
    while index < len(pattern):
        ch = pattern[index]
        index += 1
        if ch in "*?":
            out.append(".*" if ch == "*" else ".")
        elif ch == "\\":
            following = pattern[index: index + 1]
            if following in ("}", "/"):
                continue
            if following not in ("*", "?", "\\"):
                raise InvalidArgument(
                    f"invalid pattern ({pattern}) in substitution: invalid escape "
                    f"'\\{following}'")
            out.append(re.escape(following))
            index += 1
        else:
            out.append(re.escape(ch))
    return re.compile("".join(out), re.DOTALL)
