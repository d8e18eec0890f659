"""Validators refuse a trailing newline (issue #12): ``re.match`` with a pattern ending in ``$``
accepts ``"name\\n"`` (``$`` also matches before a final newline), so every validator uses
``fullmatch``. One test per family, and a guard over the product code for new ones.
"""

from __future__ import annotations

import ast
import os
import re
import stat
from pathlib import Path

import pytest
from pydantic import ValidationError

from tests.layout import DISTRIBUTIONS, ROOT
from wharf import ids
from wharf.daemon.core.build.commands import build_instruction
from wharf.daemon.core.images.content import ContentStore
from wharf.daemon.core.network.service import NetworkService
from wharf.daemon.core.state import StateStore
from wharf.daemon.core.volumes import options
from wharf.errors import InvalidArgument
from wharf.gateway import auth
from wharf.gateway.policy import Scope
from wharf.protocol import CommandResult

HEX = "a" * 64


def test_a_digest_or_an_id_with_a_trailing_newline_is_refused() -> None:
    assert ids.check_digest(f"sha256:{HEX}") == f"sha256:{HEX}"
    with pytest.raises(InvalidArgument, match=r"invalid digest .*expected sha256:<64 hex"):
        ids.check_digest(f"sha256:{HEX}\n")
    assert ids.is_full_id(HEX) and not ids.is_full_id(HEX + "\n")


def test_a_blob_file_whose_name_ends_in_a_newline_is_no_digest(tmp_path: Path) -> None:
    store = ContentStore(tmp_path)
    (tmp_path / "sha256").mkdir()
    (tmp_path / "sha256" / HEX).write_bytes(b"")
    (tmp_path / "sha256" / (HEX[:-1] + "b\n")).write_bytes(b"")
    assert list(store.digests()) == [f"sha256:{HEX}"]
    with pytest.raises(InvalidArgument, match="invalid digest"):
        store.path(f"sha256:{HEX}\n")


def test_a_volume_name_or_tmpfs_option_with_a_trailing_newline_is_refused() -> None:
    assert options.validate_name("data") == "data" and options.is_name("data")
    with pytest.raises(InvalidArgument, match="includes invalid characters for a local volume"):
        options.validate_name("data\n")
    assert not options.is_name("data\n")
    assert options.check_tmpfs_options("size=64m,mode=1777") == ["size=64m", "mode=1777"]
    # the options are split on "," and stripped, so the newline has to be inside one
    for bad, words in (("mode=17\n77", "invalid tmpfs mode"), ("size=6\n4m", "invalid tmpfs size"),
                       ("uid=1\n0", "invalid tmpfs option")):
        with pytest.raises(InvalidArgument, match=words):
            options.check_tmpfs_options(bad)


def test_a_network_name_with_a_trailing_newline_is_refused(tmp_path: Path) -> None:
    service = NetworkService(StateStore(tmp_path / "state.db"), tmp_path)
    with pytest.raises(InvalidArgument, match=r"invalid network name 'web\\n'"):
        service.create_network("web\n")


def test_a_build_stage_name_is_checked_whole() -> None:
    assert build_instruction("FROM alpine AS app", 1, 1).stage_name == "app"  # type: ignore[attr-defined]
    with pytest.raises(InvalidArgument, match="invalid name for build stage"):
        build_instruction("FROM alpine AS app!", 1, 1)
    # A Dockerfile word never holds a newline (lines are split first, words on whitespace):
    # the pattern's own check is the guard test below.


def test_a_token_name_with_a_trailing_newline_is_refused_and_the_file_kept(
    tmp_path: Path,
) -> None:
    path = tmp_path / "tokens"
    auth.create_token(path, "alice", Scope.READ)
    before = path.read_text()
    with pytest.raises(InvalidArgument, match=r"invalid token name 'bob\\n': a name is \["):
        auth.create_token(path, "bob\n")
    assert path.read_text() == before
    assert set(auth.read_tokens(path)) == {"alice"}


def test_the_tokens_file_is_0600_whatever_the_umask_or_a_leftover_temp_file(
    tmp_path: Path,
) -> None:
    path = tmp_path / "tokens"
    leftover = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    leftover.write_text("")
    leftover.chmod(0o644)
    old = os.umask(0)
    try:
        auth.create_token(path, "alice")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == auth.TOKENS_MODE == 0o600
    auth.revoke_token(path, "alice")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_pydantic_patterns_refuse_a_trailing_newline() -> None:
    # pydantic's pattern is Rust's regex, where "$" is the end of the text alone: the Field
    # patterns that end in "$" (wire messages, settings) are right as they are.
    common = {"command_id": "6f1c5a4e-5d0e-4a63-9a55-4f1e1a3f3a11", "status": "ok"}
    assert CommandResult.model_validate({**common, "node": "node-1"}).node == "node-1"
    with pytest.raises(ValidationError, match="String should match pattern"):
        CommandResult.model_validate({**common, "node": "node-1\n"})


# --- the guard: no new validator with "$" -----------------------------------------------------

# Patterns ending in "$" that stay, each with the reason. New ones fail the test below.
KNOWN = {
    # a single stripped line; "[\t\n\f\r ]*" before the "$" takes a final newline anyway
    ("services/daemon/wharf/daemon/core/build/dockerfile.py",
     r"^#[\t\n\f\r ]*([a-zA-Z][a-zA-Z0-9]*)[\t\n\f\r ]*=[\t\n\f\r ]*(.+?)[\t\n\f\r ]*$"),
}
_REGEX_CALLS = {"compile", "match", "search", "fullmatch"}


def _dollar_patterns(path: Path) -> list[str]:
    """Literal patterns given to ``re.<compile|match|search|fullmatch>`` that end in ``$``
    (not ``\\$``, and not ``\\s*$``, which takes a final newline itself)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Name) and node.func.value.id == "re"
                and node.func.attr in _REGEX_CALLS and node.args):
            continue
        first = node.args[0]
        if isinstance(first, ast.Constant) and isinstance(first.value, str):
            text = first.value
            if re.search(r"(?<!\\)\$\Z", text) and not text.endswith(r"\s*$"):
                found.append(text)
    return found


def test_no_regex_in_the_product_code_ends_in_dollar_but_the_known_ones() -> None:
    seen = set()
    for folder in DISTRIBUTIONS.values():
        for path in sorted((folder / "wharf").rglob("*.py")):
            rel = str(path.relative_to(ROOT))
            seen |= {(rel, pattern) for pattern in _dollar_patterns(path)}
    assert seen - KNOWN == set(), "use fullmatch and drop ^ and $ (see this file's docstring)"


def test_the_guard_finds_a_dollar_pattern(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text('import re\nA = re.compile(r"^[a-z]+$")\nB = re.compile(r"[a-z]+\\$")\n'
                      'C = re.match(r"^x\\s*$", "x")\nD = re.compile(r"[a-z]+")\n')
    assert _dollar_patterns(sample) == ["^[a-z]+$"]
