""".dockerignore (``wharf.dockerignore``): reading, Docker's pattern matching and the walks
(the client's, which picks what to send, and the daemon's, which drops excluded paths). Cases from
Docker's documentation and moby/patternmatcher's tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from wharf.dockerignore import (
    PatternMatcher,
    go_clean,
    go_match_regex,
    has_wildcards,
    keep_build_files,
    prune,
    read_patterns,
)
from wharf.errors import InvalidArgument

# (pattern, path, matches the path itself, matches it or a parent directory)
SINGLE: list[tuple[str, str, bool, bool]] = [
    ("**", "file", True, True),
    ("**", "file/", True, True),
    ("**/", "file", True, True),
    ("**", "dir/file", True, True),
    ("**/**", "dir/file", True, True),
    ("dir/**", "dir/file", True, True),
    ("dir/**", "dir/dir2/file", True, True),
    ("**/dir", "dir", True, True),
    ("**/dir", "dir/file", False, True),
    ("**/dir2/*", "dir/dir2/file", True, True),
    ("**/dir2/*", "dir/dir2/file/", False, True),
    ("**/dir2/**", "dir/dir2/dir3/file", True, True),
    ("**file", "file", True, True),
    ("**file", "dir/dir/file", True, True),
    ("**/file*.txt", "dir/dir/file.txt", True, True),
    ("**/**/*.txt2", "dir/dir/file.txt", False, False),
    ("**/*.txt", "file.txt", True, True),
    ("a**/*.txt", "a/dir/dir/file.txt", True, True),
    ("a/*.txt", "a/dir/file.txt", False, False),
    ("a/*.txt", "a/file.txt", True, True),
    ("a/*.txt**", "a/file.txt", True, True),
    ("a[b-d]e", "ace", True, True),
    ("a[b-d]e", "aae", False, False),
    ("a[^b-d]e", "aze", True, True),
    (".*", ".foo", True, True),
    (".*", "foo", False, False),
    ("abc.def", "abcdef", False, False),
    ("abc?def", "abcZdef", True, True),
    ("abc?def", "abcdef", False, False),
    ("**/foo/bar", "dir/dir2/foo/bar", True, True),
    ("abc/**", "abc", False, False),
    ("abc/**", "abc/def/ghi", True, True),
    ("**/.foo", "bar.foo", False, False),
    ("a(b)c/def", "a(b)c/def", True, True),
    ("a.|)$(}+{bc", "a.|)$(}+{bc", True, True),
    ("dist/*.whl", "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", True, True),
    ("a\\\\", "a\\", True, True),
    ("a\\*b", "a*b", True, True),
    ("a\\*b", "axb", False, False),
    ("a*", "ab/c", False, True),  # "a*" does not cross "/" but matches the parent "ab"
    ("a*/b", "a/c/b", False, False),
    ("[\\]a]", "]", True, True),
    ("[x\\-]", "-", True, True),
    ("*[a-ζ]", "A", False, False),
    ("a?b", "a☺b", True, True),
    ("a?b", "a/b", False, False),
    # Docker's documentation
    ("*/temp*", "somedir/temporary.txt", True, True),
    ("*/temp*", "somedir/temp/x", False, True),
    ("*/temp*", "temporary.txt", False, False),
    ("*/*/temp*", "somedir/subdir/temporary.txt", True, True),
    ("temp?", "tempa", True, True),
    ("temp?", "temp", False, False),
    ("**/*.go", "main.go", True, True),
    ("**/*.go", "cmd/tool/main.go", True, True),
    ("foo/bar", "foo/bar", True, True),
    ("foo/bar", "bar", False, False),
]


@pytest.mark.parametrize(("pattern", "path", "exact", "or_parent"), SINGLE)
def test_one_pattern(pattern: str, path: str, exact: bool, or_parent: bool) -> None:
    matcher = PatternMatcher(read_patterns(pattern.encode()))
    assert matcher.patterns[0].match(path) is exact
    assert matcher.matches(path) is or_parent
    # the walk's form, computing the parents' results one directory at a time
    info = None
    parts = path.split("/")
    for n in range(1, len(parts)):
        _, info = matcher.walk_match("/".join(parts[:n]), info)
    assert matcher.walk_match(path, info)[0] is or_parent


DOCS_README = "*.md\n!README*.md\nREADME-secret.md\n"
# (.dockerignore text, path, excluded)
MULTI: list[tuple[str, str, bool]] = [
    (DOCS_README, "README.md", False),
    (DOCS_README, "README-secret.md", True),
    (DOCS_README, "docs.md", True),
    ("*.md\nREADME-secret.md\n!README*.md\n", "README-secret.md", False),  # last match wins
    ("*.md\n!README.md\n", "README.md", False),
    ("!fileutils.go\n*.go\n", "fileutils.go", True),
    ("*.go\n!fileutils.go\n", "fileutils.go", False),
    ("docs\n!docs/README.md\n", "docs/README.md", False),
    ("docs\n!docs/README.md\n", "docs/other.md", True),
    ("docs/\n!docs/README.md\n", "docs/README.md", False),
    ("docs/*\n!docs/README.md\n", "docs/README.md", False),
    ("**\n!util/docker/web\n", "util/docker/web/foo", False),
    ("**\n!util/docker/web\nutil/docker/web/foo\n", "util/docker/web/foo", True),
    ("**\n!dist/*.whl\n", "dist/x-1.0-py3-none-any.whl", False),
    ("/foo/bar\n", "foo/bar", True),  # a leading "/" is the context root
    ("./foo/../bar//\n", "bar", True),  # filepath.Clean
    ("  # not a comment\n", "# not a comment", True),  # "#" only in column 1
    ("# comment\n\n   \n", "# comment", False),
    ("\ufeffsecret\n", "secret", True),  # UTF-8 BOM
    ("secret \r\n", "secret", True),  # CRLF and trailing blanks
    ("!  keep\n", "keep", False),
    (".\n", "anything", False),  # "." is ignored, as the docs say
]


@pytest.mark.parametrize(("text", "path", "excluded"), MULTI)
def test_patterns_in_order(text: str, path: str, excluded: bool) -> None:
    assert PatternMatcher(read_patterns(text.encode())).matches(path) is excluded


def test_read_patterns_normalises_like_docker() -> None:
    text = b"\xef\xbb\xbf# c\n  /a/b/ \n!  /c/./d\n\n!x/..\n#x\n\t e \n"
    assert read_patterns(text) == ["a/b", "!c/d", "!.", "e"]


@pytest.mark.parametrize("bad", ["[", "[^", "[^bc", "a[", "\\", "[]a]", "[-]", "[x-]",
                                 "[-x]", "[a-b-c]", "!"])
def test_malformed_patterns_are_refused(bad: str) -> None:
    with pytest.raises(InvalidArgument):
        PatternMatcher([bad])


def test_go_helpers() -> None:
    assert go_clean("") == "."
    assert go_clean("//a/./b/../../..") == "/"
    assert go_clean("a/../../b/") == "../b"
    assert go_match_regex("a*b?c[x-z]").fullmatch("aXXbYcy")
    assert not go_match_regex("*").fullmatch("a/b")
    assert go_match_regex("[z-a]x|").fullmatch("x") is None
    assert has_wildcards("a*") and has_wildcards("[ab]") and not has_wildcards("a\\*b")


def test_dockerfile_and_dockerignore_are_always_sent() -> None:
    kept = keep_build_files(["*", "!src"], "build/Dockerfile")
    assert kept == ["*", "!src", "!.dockerignore", "!build/Dockerfile"]
    assert keep_build_files(["*.md"], "Dockerfile") == ["*.md"]


def _tree(root: Path, files: list[str]) -> None:
    for name in files:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if name.endswith("/"):
            path.mkdir(exist_ok=True)
        else:
            path.write_text(name)


def _left(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) + ("/" if p.is_dir() else "")
                  for p in root.rglob("*"))


def test_prune_walks_into_a_directory_only_for_a_matching_exception(tmp_path: Path) -> None:
    _tree(tmp_path, ["docs/README.md", "docs/guide.md", "docs/img/a.png", "logs/x.log",
                     "src/main.go", "src/temp/t", "Dockerfile", ".dockerignore", "deep/a/b/c"])
    patterns = ["docs", "!docs/README.md", "logs", "!**/keep", "*/temp*", "Dockerfile",
                ".dockerignore", "deep", "!deep/a/b/c"]
    removed = prune(tmp_path, PatternMatcher(patterns))
    assert _left(tmp_path) == ["deep/", "deep/a/", "deep/a/b/", "deep/a/b/c", "docs/",
                               "docs/README.md", "src/", "src/main.go"]
    assert set(removed) == {".dockerignore", "Dockerfile", "docs/guide.md", "docs/img", "logs",
                            "src/temp"}


def test_prune_drops_an_opened_directory_that_ends_up_empty(tmp_path: Path) -> None:
    _tree(tmp_path, ["a/x", "a/y/", "b"])
    assert prune(tmp_path, PatternMatcher(["a", "!a/keep"])) == ["a/x", "a/y", "a"]
    assert _left(tmp_path) == ["b"]


def test_prune_keeps_a_reincluded_empty_directory(tmp_path: Path) -> None:
    _tree(tmp_path, ["foo/bar/", "foo/baz"])
    prune(tmp_path, PatternMatcher(["foo", "!foo/bar"]))
    assert _left(tmp_path) == ["foo/", "foo/bar/"]


def test_prune_removes_symlinks_without_following_them(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    _tree(outside, ["keep"])
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "link").symlink_to(outside)
    prune(ctx, PatternMatcher(["link"]))
    assert _left(ctx) == [] and (outside / "keep").exists()


def test_walk_uses_the_parents_results_as_docker_does(tmp_path: Path) -> None:
    # "x/y" then "!x": the exception is only tried on x/y itself in Docker's walk (its parent
    # "x" was never excluded), so x/y stays excluded; the one-shot check says otherwise.
    matcher = PatternMatcher(["x/y", "!x"])
    assert matcher.matches("x/y") is False
    _tree(tmp_path, ["x/y", "x/z"])
    prune(tmp_path, matcher)
    assert _left(tmp_path) == ["x/", "x/z"]
