"""Path = import path: every module's file sits at its import path under its distribution.

The layer rules themselves are import-linter contracts (pyproject.toml), run by
tests/test_static.py on the real import graph.
"""

from __future__ import annotations

import ast
import importlib.util
import tomllib

import pytest

from tests.layout import DISTRIBUTIONS, ROOT, module_files

PROGRAMS = {"wharf-daemon": "wharf.daemon", "wharf-gateway": "wharf.gateway",
            "wharf-cli": "wharf.cli"}


def test_wharf_is_a_namespace_in_every_distribution() -> None:
    # An __init__.py in any wharf/ folder would make that folder the whole `wharf` package and
    # hide the other distributions' parts of it.
    for name, folder in DISTRIBUTIONS.items():
        assert (folder / "wharf").is_dir(), name
        assert not (folder / "wharf" / "__init__.py").exists(), f"{name}: wharf/ is a namespace"


def test_each_program_lives_only_in_its_own_distribution() -> None:
    for name, folder in DISTRIBUTIONS.items():
        program = PROGRAMS.get(name)
        children = {p.name for p in (folder / "wharf").iterdir() if p.name != "__pycache__"}
        if program is None:  # wharf-shared: modules only, no program folders
            assert all(child.endswith(".py") for child in children), children
        else:
            assert children == {program.split(".")[1]}, f"{name} holds {children}"


@pytest.mark.parametrize("module", sorted(module_files()))
def test_every_module_is_imported_from_its_path(module: str) -> None:
    # The file Python loads for the name is the file at that path: no mapping in between.
    if module.endswith(".__main__"):
        pytest.skip("runs as a program")
    loaded = importlib.util.find_spec(module)
    assert loaded is not None and loaded.origin == str(module_files()[module]), module


def test_the_cli_and_gateway_install_without_the_services_libraries() -> None:
    # The CLI installs without the broker client, the web framework or netlink; the
    # import-linter contracts keep its code from needing them.
    deps = {name: " ".join(tomllib.loads((folder / "pyproject.toml").read_text())
                           ["project"]["dependencies"])
            for name, folder in DISTRIBUTIONS.items()}
    for heavy in ("pika", "fastapi", "uvicorn", "pyroute2"):
        assert heavy not in deps["wharf-cli"], heavy
    assert "pyroute2" not in deps["wharf-gateway"]
    assert "pika" not in deps["wharf-shared"]  # an extra (amqp), for the two services


def test_no_product_file_over_400_lines_and_no_function_over_60() -> None:
    # The house rule of docs/architecture.md: a file a newcomer can read, a function that
    # fits on a screen.
    long_files, long_functions = [], []
    for module, path in module_files().items():
        text = path.read_text()
        if len(text.splitlines()) > 400:
            long_files.append(f"{path.relative_to(ROOT)} ({len(text.splitlines())} lines)")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and \
                    node.end_lineno is not None and node.end_lineno - node.lineno + 1 > 60:
                long_functions.append(f"{module}.{node.name}")
    assert not long_files and not long_functions, (long_files, long_functions)


# The Engine's services keep these collaborators to themselves (docs/architecture.md §Engine).
INTERNALS = {"store", "records", "bundles", "runtime", "runtimes", "service", "registry", "ctx",
             "content"}


def test_adapters_use_the_engines_operations_not_its_internals() -> None:
    reaches = []
    for module, path in module_files().items():
        if not module.startswith("wharf.daemon.adapters."):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in INTERNALS and \
                    ast.unparse(node.value) != "record":  # a record's runtime is its name
                reaches.append(f"{module}:{node.lineno} {ast.unparse(node)}")
    assert not reaches, reaches
