"""Pure presentation helpers: go-units sizes/durations, tables, templates, progress, start-up."""

from __future__ import annotations

import io
import subprocess
import sys

import pytest

from wharf.cli.failure import CLIError
from wharf.cli.formatting import bytes_size, ellipsis, human_size, tabulate
from wharf.cli.progress import display, progress_bar
from wharf.cli.templates import Row, TemplateError, go_str, parse
from wharf.humanize import human_duration


@pytest.mark.parametrize(("size", "precision", "text"), [
    (0, 3, "0B"), (999, 3, "999B"), (1000, 3, "1kB"), (1982305, 3, "1.98MB"),
    (1982305, 4, "1.982MB"), (3146885, 4, "3.147MB"), (294912, 4, "294.9kB"),
    (5_000_000_000, 3, "5GB"), (999_999, 3, "1e+03kB"),  # go-units prints this too
])
def test_human_size_matches_go_units(size: int, precision: int, text: str) -> None:
    assert human_size(size, precision) == text


def test_bytes_size_is_binary() -> None:
    assert bytes_size(16663420928) == "15.52GiB"
    assert bytes_size(1024) == "1KiB"


@pytest.mark.parametrize(("seconds", "text"), [
    (0.4, "Less than a second"), (1, "1 second"), (59, "59 seconds"), (60, "About a minute"),
    (119, "About a minute"), (120, "2 minutes"), (3599, "59 minutes"), (3600, "About an hour"),
    (5399, "About an hour"), (5400, "2 hours"), (47 * 3600, "47 hours"), (3 * 86400, "3 days"),
    (15 * 86400, "2 weeks"), (70 * 86400, "2 months"), (800 * 86400, "2 years"),
])
def test_human_duration_matches_go_units(seconds: float, text: str) -> None:
    assert human_duration(seconds) == text


def test_tabulate_uses_min_width_10_and_padding_3() -> None:
    assert tabulate([["A", "LONGER-HEADER", "x"], ["abc", "d", "yy"]]) == (
        "A         LONGER-HEADER   x\nabc       d               yy")


def test_ellipsis() -> None:
    assert ellipsis("abcdef", 4) == "abc…"
    assert ellipsis("abc", 4) == "abc"


def test_templates_subset() -> None:
    doc = {"A": {"B": [1, 2]}, "S": "x<y", "N": None, "T": True, "F": 3.0, "M": {"k": "v"}}
    assert parse("{{.A.B}} {{json .A}} {{.S}} {{json .S}}").render(doc) == (
        '[1 2] {"B":[1,2]} x<y "x<y"')
    assert parse("{{.N}} {{.T}} {{.F}} {{.M}}").render(doc) == "<no value> true 3 map[k:v]"
    assert parse("{{upper .S}} {{join .A.B \", \"}} {{index .M \"k\"}}").render(doc) == (
        "X<Y 1, 2 v")
    assert parse("json").render(doc).startswith('{"A":')
    with pytest.raises(TemplateError, match="not defined"):
        parse("{{nope .S}}").render(doc)
    with pytest.raises(TemplateError, match="can't evaluate field Z"):
        parse("{{.Z}}").render(Row({"A": "1"}))
    with pytest.raises(TemplateError, match="unclosed"):
        parse("{{.A")
    assert go_str([{"a": 1}]) == "[map[a:1]]"


def test_progress_bar_like_moby() -> None:
    detail = {"current": 294912, "total": 3146885}
    assert progress_bar(detail, width=80) == " 294.9kB/3.147MB"
    assert progress_bar(detail, width=120).startswith("[====>" + " " * 46 + "] ")
    assert progress_bar({}, width=120) == ""


def test_display_plain_skips_progress_and_raises_on_error() -> None:
    out = io.StringIO()
    display([{"status": "Downloading", "progressDetail": {"current": 1, "total": 2}, "id": "l1"},
             {"status": "Pull complete", "progressDetail": {}, "id": "l1"},
             {"progressDetail": {}, "aux": {"Tag": "v1", "Digest": "sha256:x", "Size": 1}},
             {"stream": "Loaded image: x:1\n"}], out, tty=False)
    assert out.getvalue() == "l1: Pull complete\nLoaded image: x:1\n"
    with pytest.raises(CLIError, match=r"^denied$"):
        display([{"errorDetail": {"message": "denied"}, "error": "denied"}], out, tty=False)


def test_cli_start_up_does_not_import_heavy_modules() -> None:
    code = ("import sys, wharf.cli.main as m; m.build_cli(); "
            "print(sorted(k for k in ('httpx', 'rich', 'pydantic') if k in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"
