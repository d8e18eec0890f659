""".dockerignore: reading the file, matching paths, and the walk that keeps or drops each entry.

A port of Docker's behaviour, not of its code (moby/patternmatcher, its ``ignorefile`` reader and
the build-context walk of moby/go-archive ``TarWithOptions``, which the docker CLI runs):

- Reading (``ignorefile.ReadAll``): a line starting with ``#`` in column 1 is a comment; lines are
  trimmed of whitespace and skipped when blank; a UTF-8 BOM on the first line is dropped; ``!``
  marks an exception (whitespace after it is trimmed too); the rest goes through Go's
  ``filepath.Clean`` (so ``./a``, ``a/``, ``a//b``, ``a/../b`` are ``a``, ``a``, ``a/b``, ``b``)
  and loses one leading ``/`` (the context root is both ``/`` and the working directory).
- Patterns (``patternmatcher``): Go ``filepath.Match`` syntax (``*`` and ``?`` never match ``/``,
  ``[...]`` classes with ``^`` negation and ``\\`` escapes) plus ``**``, any number of
  directories including none. A malformed pattern (``[``, ``\\`` at the end, ``[a-]``, a lone
  ``!``) is refused as Go refuses it. Docker's fast paths are kept exactly: a pattern that is
  ``**`` followed by literal text is a suffix test (``**/foo`` matches ``foo`` and ``x/foo``);
  literal text followed by ``**`` is a prefix test.
- Matching: a path is excluded when a pattern matches it or one of its parent directories; the
  patterns are read in order and the last one that matches decides (``!`` re-includes).
- The walk (``TarWithOptions``): an excluded directory is dropped whole unless an exception's
  text starts with the directory's path plus ``/`` (``!dir/keep``); then Docker walks into it and
  keeps what is re-included (``!**/keep`` does not open an excluded ``dir``: Docker's prefix test
  does not see it either). Inside a walk, a pattern's result for a directory carries over to what
  is below it (``MatchesUsingParentResults``).

Both sides use it: the CLI (``wharf build``) sends what :func:`walk` keeps, and the daemon runs
the same walk again on the context it received (:func:`prune`). The Dockerfile and
``.dockerignore`` are always sent, whatever the patterns say (:func:`keep_build_files`, the
client's rule); the daemon reads them and then hides them from COPY/ADD when the patterns
exclude them, which :func:`prune` does with every excluded path.
"""

from __future__ import annotations

import enum
import os
import re
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path

from wharf.errors import InvalidArgument

DOCKERIGNORE = ".dockerignore"
# Go's unicode.IsSpace, which strings.TrimSpace uses (str.strip() also trims \x1c-\x1f).
_SPACE = ("\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007"
          "\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000")
_BOM = b"\xef\xbb\xbf"
_BAD_PATTERN = "syntax error in pattern"

MatchInfo = list[bool]  # per pattern: did it match the directory (or one above it)


def read_patterns(data: bytes) -> list[str]:
    """The patterns of a ``.dockerignore`` file, as Docker's ``ignorefile.ReadAll`` gives them."""
    patterns: list[str] = []
    for number, raw in enumerate(data.split(b"\n")):
        line = raw.removesuffix(b"\r")
        if number == 0:
            line = line.removeprefix(_BOM)
        text = os.fsdecode(line)
        if text.startswith("#"):
            continue
        text = text.strip(_SPACE)
        if not text:
            continue
        invert = text.startswith("!")
        if invert:
            text = text[1:].strip(_SPACE)
        if text:
            text = go_clean(text)
            if len(text) > 1 and text.startswith("/"):
                text = text[1:]
        patterns.append("!" + text if invert else text)
    return patterns


def go_clean(path: str) -> str:
    """Go's ``filepath.Clean`` on Linux: the shortest lexically equal path (``""`` is ``.``)."""
    rooted = path.startswith("/")
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts and parts[-1] != "..":
                parts.pop()
            elif not rooted:
                parts.append("..")
            continue
        parts.append(part)
    text = "/".join(parts)
    if rooted:
        return "/" + text
    return text or "."


def keep_build_files(patterns: list[str], dockerfile: str | None) -> list[str]:
    """The docker CLI's rule (``TrimBuildFilesFromExcludes``): exceptions appended so that the
    ``.dockerignore`` and the Dockerfile (``dockerfile``, relative to the context; None when it
    comes from elsewhere, as ``-f -``) are always sent, even when the patterns exclude them."""
    matcher = PatternMatcher(patterns)
    kept = list(patterns)
    if matcher.matches(DOCKERIGNORE):
        kept.append("!" + DOCKERIGNORE)
    if dockerfile is not None and matcher.matches(dockerfile):
        kept.append("!" + dockerfile)
    return kept


# --- Go filepath.Match ----------------------------------------------------------------------


def _class_char(pattern: str, i: int) -> tuple[str, int]:
    """Go's ``getEsc``: one (possibly escaped) character of a class starting at ``i``."""
    if i >= len(pattern) or pattern[i] in "-]":
        raise InvalidArgument(_BAD_PATTERN)
    if pattern[i] == "\\":
        i += 1
        if i >= len(pattern):
            raise InvalidArgument(_BAD_PATTERN)
    if i + 1 >= len(pattern):  # the class is never closed
        raise InvalidArgument(_BAD_PATTERN)
    return pattern[i], i + 1


def _escape_in_class(char: str) -> str:
    return "\\" + char if char in "\\]-[^" else char


def _char_class(pattern: str, i: int) -> tuple[str, int]:
    """The regex for the class whose ``[`` is just before ``i``; returns it and the index after
    its ``]``. Raises InvalidArgument where Go's filepath.Match returns ErrBadPattern."""
    negated = i < len(pattern) and pattern[i] == "^"
    i += negated
    items: list[str] = []
    count = 0
    while True:
        if i < len(pattern) and pattern[i] == "]" and count > 0:
            i += 1
            break
        low, i = _class_char(pattern, i)
        high = low
        if pattern[i] == "-":
            high, i = _class_char(pattern, i + 1)
        if low <= high:  # Go accepts a reversed range, which matches nothing
            items.append(_escape_in_class(low) + ("-" + _escape_in_class(high)
                                                   if high != low else ""))
        count += 1
    if not items:
        return ("[\\s\\S]" if negated else "(?!)"), i
    return "[" + ("^" if negated else "") + "".join(items) + "]", i


def go_match_regex(pattern: str) -> re.Pattern[str]:
    """Go's ``filepath.Match(pattern, name)`` as a regex to ``fullmatch`` against ``name``;
    InvalidArgument ("syntax error in pattern") for a malformed pattern."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        i += 1
        if ch == "*":
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "[":
            regex, i = _char_class(pattern, i)
            out.append(regex)
        elif ch == "\\":
            if i >= len(pattern):
                raise InvalidArgument(_BAD_PATTERN)
            out.append(re.escape(pattern[i]))
            i += 1
        else:
            out.append(re.escape(ch))
    return re.compile("".join(out), re.DOTALL)


def has_wildcards(path: str) -> bool:
    """Docker's ``containsWildcards``: an unescaped ``*``, ``?`` or ``[``."""
    i = 0
    while i < len(path):
        if path[i] == "\\":
            i += 1
        elif path[i] in "*?[":
            return True
        i += 1
    return False


# --- patterns -------------------------------------------------------------------------------


class _Kind(enum.Enum):
    EXACT = "exact"
    PREFIX = "prefix"
    SUFFIX = "suffix"
    REGEX = "regex"


class Pattern:
    """One cleaned pattern; ``text`` is without the ``!`` of an exception."""

    def __init__(self, text: str, exclusion: bool) -> None:
        go_match_regex(text)  # syntax check, as patternmatcher.New does with filepath.Match
        self.text = text
        self.exclusion = exclusion
        self._kind, self._regex = _compile(text)

    def match(self, path: str) -> bool:
        if self._kind is _Kind.EXACT:
            return path == self.text
        if self._kind is _Kind.PREFIX:
            return path.startswith(self.text[:-2])
        if self._kind is _Kind.SUFFIX:
            suffix = self.text[2:]
            return path.endswith(suffix) or (suffix.startswith("/") and path == suffix[1:])
        assert self._regex is not None
        return self._regex.fullmatch(path) is not None


def _compile(text: str) -> tuple[_Kind, re.Pattern[str] | None]:
    """patternmatcher's ``compile``: the match kind (with its fast paths) and the regex."""
    out: list[str] = []
    kind = _Kind.EXACT
    i = 0
    while i < len(text):
        first = i == 0
        ch = text[i]
        i += 1
        if ch == "*" and text.startswith("*", i):
            i += 1 + text.startswith("/", i + 1)  # "**/" is "**"
            if i >= len(text):
                kind = _Kind.PREFIX if kind is _Kind.EXACT else _Kind.REGEX
                out.append(".*")
            else:
                kind = _Kind.REGEX
                out.append("(.*/)?")
            if first:
                kind = _Kind.SUFFIX
        elif ch in "*?[\\":
            kind = _Kind.REGEX
            piece, i = _one_wildcard(text, i - 1)
            out.append(piece)
        else:
            if ch == "]":
                kind = _Kind.REGEX
            out.append(re.escape(ch))
    if kind is not _Kind.REGEX:
        return kind, None
    return kind, re.compile("".join(out), re.DOTALL)


def _one_wildcard(text: str, i: int) -> tuple[str, int]:
    """The regex for the ``*``, ``?``, ``\\x`` or ``[...]`` at ``i`` and the index after it."""
    ch = text[i]
    if ch == "*":
        return "[^/]*", i + 1
    if ch == "?":
        return "[^/]", i + 1
    if ch == "\\":
        return re.escape(text[i + 1]), i + 2  # a trailing "\" failed the syntax check
    return _char_class(text, i + 1)


class PatternMatcher:
    """Docker's PatternMatcher over ``.dockerignore`` patterns (as :func:`read_patterns` gives
    them); InvalidArgument for a malformed pattern."""

    def __init__(self, patterns: Iterable[str]) -> None:
        self.patterns: list[Pattern] = []
        for raw in patterns:
            text = raw.strip(_SPACE)
            if not text:
                continue
            text = go_clean(text)
            exclusion = text.startswith("!")
            if exclusion:
                if text == "!":
                    raise InvalidArgument('illegal exclusion pattern: "!"')
                text = text[1:]
            self.patterns.append(Pattern(text, exclusion))
        self.exclusions = any(p.exclusion for p in self.patterns)

    def matches(self, path: str) -> bool:
        """Excluded? ``MatchesOrParentMatches``: a pattern matches ``path`` (``/``-separated,
        relative) when it matches it or one of its parent directories; the last one wins."""
        return self.walk_match(path, None)[0]

    def walk_match(self, path: str, parent: MatchInfo | None) -> tuple[bool, MatchInfo]:
        """``MatchesUsingParentResults``: like :meth:`matches`, reusing the result of ``path``'s
        directory (None: compute it from the path). Returns the result and ``path``'s own info
        for the entries below it."""
        parents = path.split("/")[:-1]
        matched = False
        info: MatchInfo = []
        for index, pattern in enumerate(self.patterns):
            match = parent[index] if parent is not None else False
            if not match and pattern.exclusion == matched:
                match = pattern.match(path)
                if not match and parent is None:
                    match = any(pattern.match("/".join(parents[:n + 1]))
                                for n in range(len(parents)))
            info.append(match)
            if match:
                matched = not pattern.exclusion
        return matched, info

    def may_reinclude(self, directory: str) -> bool:
        """Docker walks into an excluded directory only when an exception's text starts with
        ``directory/`` (or is ``directory`` itself)."""
        prefix = directory + "/"
        return any(p.exclusion and (p.text + "/").startswith(prefix) for p in self.patterns)


class Verdict(enum.Enum):
    """What the docker CLI's walk makes of one entry."""

    SEND = "send"  # sent; a directory is walked into
    SKIP = "skip"  # excluded and not sent; a directory is not walked into
    OPEN = "open"  # an excluded directory walked into for an exception; its own entry not sent


def walk(root: Path, matcher: PatternMatcher) -> Iterator[tuple[str, bool, Verdict]]:
    """The walk of the module docstring over the tree at ``root``: (relative path, is a
    directory, verdict) for each entry, depth first in byte order as Go walks, parents before
    what they hold. Symlinks are never followed. A directory's entries are listed only after
    its own tuple was consumed, so a caller may remove a skipped one before the walk goes on."""
    pending: list[tuple[str, bool, MatchInfo | None]] = _listing(root, "", None)
    while pending:
        rel, is_dir, parent = pending.pop()
        excluded, own = matcher.walk_match(rel, parent)
        verdict = Verdict.SEND
        if excluded:
            opened = is_dir and matcher.exclusions and matcher.may_reinclude(rel)
            verdict = Verdict.OPEN if opened else Verdict.SKIP
        yield rel, is_dir, verdict
        if is_dir and verdict is not Verdict.SKIP:
            pending += _listing(root, rel, own)


def _listing(root: Path, directory: str,
             info: MatchInfo | None) -> list[tuple[str, bool, MatchInfo | None]]:
    """The entries of ``directory``, last first (popped from the end, they come in order)."""
    with os.scandir(root / directory) as entries:
        names = sorted(((e.name, e.is_dir(follow_symlinks=False)) for e in entries),
                       key=lambda pair: os.fsencode(pair[0]), reverse=True)
    return [(f"{directory}/{name}" if directory else name, is_dir, info)
            for name, is_dir in names]


def prune(root: Path, matcher: PatternMatcher) -> list[str]:
    """Remove from the tree at ``root`` what the docker CLI would not have sent with
    ``matcher``'s patterns (:func:`walk`); returns the removed paths, relative (walk order;
    opened directories left empty come last). Symlinks are removed, never followed."""
    removed: list[str] = []
    opened: list[str] = []   # excluded directories Docker walks into: kept only if not empty
    for rel, is_dir, verdict in walk(root, matcher):
        if verdict is Verdict.SKIP:
            _remove(root / rel, is_dir)
            removed.append(rel)
        elif verdict is Verdict.OPEN:
            opened.append(rel)
    for rel in reversed(opened):  # deepest first
        if not any(os.scandir(root / rel)):
            os.rmdir(root / rel)
            removed.append(rel)
    return removed


def _remove(path: Path, is_dir: bool) -> None:
    if is_dir:
        shutil.rmtree(path)
    else:
        path.unlink()
