"""The lazy command tree (wharf.cli.commandtree): complete listings, nothing imported early.

``wharf --help`` lists every command with its short help from a generated index, without
importing the command modules; these tests hold the index to the docstrings, the listings to
what the imported commands print, and the start-up paths to the modules they may import.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from wharf.cli import commandhelp, commands
from wharf.cli.commandtree import ROOT, GroupSpec, LazyGroup, render_index, resolve, targets
from wharf.cli.main import build_cli

GROUPS = sorted(name for name, entry in ROOT.items() if isinstance(entry, GroupSpec))


def _group_paths(
        tree: dict[str, str | GroupSpec] | None = None,
        prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    yield prefix
    for name, entry in sorted((tree or dict(ROOT)).items()):
        if isinstance(entry, GroupSpec):
            yield from _group_paths(dict(entry.commands), (*prefix, name))


def _help(root: click.Group, path: tuple[str, ...], width: int) -> str:
    result = CliRunner().invoke(root, [*path, "--help"], prog_name="wharf",
                                terminal_width=width)
    assert result.exit_code == 0, result.output
    return result.output


def _resolve_all(group: click.Group, ctx: click.Context) -> None:
    """Import every command under ``group``: the tree as an eager registration builds it."""
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None, name
        if isinstance(command, click.Group):
            _resolve_all(command, click.Context(command, info_name=name, parent=ctx))


def test_the_index_is_what_the_docstrings_say() -> None:
    # A docstring edited (or a command added) without regenerating the index fails here.
    assert Path(commandhelp.__file__).read_text() == render_index(), (
        "regenerate: .venv/bin/python -m wharf.cli.commandtree > cli/wharf/cli/commandhelp.py")
    assert set(commandhelp.SUMMARIES) == targets()


@pytest.mark.parametrize("path", list(_group_paths()), ids=" ".join)
@pytest.mark.parametrize("width", [40, 80, 120, 200])
def test_a_listing_is_what_the_imported_commands_print(path: tuple[str, ...],
                                                       width: int) -> None:
    eager = build_cli()
    _resolve_all(eager, click.Context(eager, info_name="wharf"))
    assert _help(build_cli(), path, width) == _help(eager, path, width)


def test_every_listed_command_resolves() -> None:
    root = build_cli()
    ctx = click.Context(root, info_name="wharf")
    _resolve_all(root, ctx)
    for name in GROUPS:
        group, spec = root.get_command(ctx, name), ROOT[name]
        assert isinstance(group, LazyGroup) and isinstance(spec, GroupSpec)
        assert group.help == spec.help
    for target in targets():
        assert isinstance(resolve(target), click.Command), target


def test_docker_aliases_and_groups_are_at_the_root() -> None:
    assert {"builder", "container", "image", "network", "node", "system", "volume"} <= set(GROUPS)
    for alias in ("ps", "run", "rm", "rmi", "images", "exec", "logs", "pull", "build", "tag"):
        assert alias in ROOT, alias
    container, image = ROOT["container"], ROOT["image"]
    assert isinstance(container, GroupSpec) and isinstance(image, GroupSpec)
    assert ROOT["ps"] == container.commands["ls"] and ROOT["rmi"] == image.commands["rm"]


def test_every_command_a_module_defines_is_in_the_tree() -> None:
    # A command written but never named in commandtree.ROOT would be unreachable.
    defined = set()
    for info in pkgutil.iter_modules(commands.__path__):
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        for attribute, value in vars(module).items():
            if isinstance(value, click.Command) and value.callback is not None and \
                    value.callback.__module__ == module.__name__:
                defined.add(f"{info.name}:{attribute}")
    assert defined == targets()


def test_an_unknown_command_gets_the_suggestion_click_makes_from_every_name() -> None:
    result = CliRunner().invoke(build_cli(), ["nope"])
    assert result.exit_code == 2 and "No such command 'nope'" in result.output
    if hasattr(click.exceptions, "NoSuchCommand"):  # click 8.4+ suggests a near name
        assert "Did you mean 'node'?" in result.output
    result = CliRunner().invoke(build_cli(), ["volume", "lss"])
    assert result.exit_code == 2 and "No such command 'lss'" in result.output


WATCHED = ("httpx", "pydantic", "ssl", "click", "wharf.cli.session", "wharf.cli.transport",
           "wharf.cli.client", "wharf.cli.commandhelp")


def _imported_by(*argv: str) -> set[str]:
    """The wharf.cli.commands modules and WATCHED modules ``wharf ARGV`` has imported when it
    exits (in a fresh interpreter, through the console script's entry point)."""
    code = (
        "import json, sys\n"
        "from wharf.cli.fast import main\n"
        f"sys.argv = ['wharf', *{list(argv)!r}]\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        f"print('\\n' + json.dumps(sorted(m for m in sys.modules if m in {WATCHED!r} or "
        "m.startswith('wharf.cli.commands.'))))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={"WHARF_HOST": "unix:///nonexistent/wharfd.sock",
                                          "HOME": "/nonexistent", "PATH": "/usr/bin:/bin"})
    return set(json.loads(out.stdout.splitlines()[-1]))


def test_help_imports_no_command_module_and_no_transport() -> None:
    # on an 80-column terminal (no terminal here: click and the fast path assume 80) the text
    # comes from the index without click
    assert _imported_by("--help") == {"wharf.cli.commandhelp"}


def test_a_group_listing_imports_no_command_module() -> None:  # served by click
    # the root's callback runs first (it checks -H and makes the session), then the listing
    imported = _imported_by("image", "--help")
    assert "wharf.cli.commandhelp" in imported
    assert not {m for m in imported if m.startswith("wharf.cli.commands.")}
    assert not imported & {"httpx", "pydantic", "ssl"}


RUN_PATH = {"wharf.cli.commands.runflags", "wharf.cli.commands.runflow",
            "wharf.cli.commands.createbody", "wharf.cli.commands.healthopts"}


def test_run_imports_only_its_own_modules_and_no_click_before_failing_to_connect() -> None:
    imported = _imported_by("run", "--rm", "busybox", "true")
    assert {m for m in imported if m.startswith("wharf.cli.commands.")} == RUN_PATH
    assert not imported & {"httpx", "pydantic", "ssl", "click", "wharf.cli.commandhelp"}


def test_a_run_flag_the_fast_path_does_not_read_goes_to_click() -> None:
    imported = _imported_by("run", "--pids-limit", "many", "busybox", "true")
    assert "click" in imported and "wharf.cli.commands.run" in imported


def test_version_imports_no_click() -> None:
    imported = _imported_by("version")
    assert {m for m in imported if m.startswith("wharf.cli.commands.")} == {
        "wharf.cli.commands.versioninfo"}
    assert not imported & {"httpx", "pydantic", "ssl", "click"}
