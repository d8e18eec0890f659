"""The packaging and layering rules of ARCHITECTURE.md §2, checked on the source tree."""

from __future__ import annotations

import ast
import tomllib

import pytest

from tests.layout import ROOT, module_files, package_names

# (importer prefix, forbidden import prefix, why)
RULES = [
    ("wharf.gateway", "wharf.daemon", "the gateway never imports the daemon"),
    ("wharf.cli", "wharf.daemon", "the CLI never imports services"),
    ("wharf.cli", "wharf.gateway", "the CLI never imports services"),
    ("wharf.daemon", "wharf.gateway", "the daemon never imports the gateway"),
    ("wharf.daemon", "wharf.cli", "services never import the CLI"),
    ("wharf.daemon.core", "wharf.daemon.adapters", "the core does not know its adapters"),
]
SHARED_ONLY = ("wharf.daemon", "wharf.gateway", "wharf.cli")
# Third-party modules only one place may import.
OWNERS = {
    "pika": ("wharf.messaging",),
    "pyroute2": ("wharf.daemon.core.network.netlink",),
    "httpx": ("wharf.cli.transport", "wharf.daemon.core.images.registry",
              "wharf.daemon.core.images.registryauth"),
}


def _imports(path: object) -> list[str]:
    with open(str(path)) as handle:
        tree = ast.parse(handle.read())
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


@pytest.mark.parametrize("module", sorted(module_files()))
def test_layer_rules(module: str) -> None:
    imported = _imports(module_files()[module])
    for importer, forbidden, why in RULES:
        if _under(module, importer):
            bad = [i for i in imported if _under(i, forbidden)]
            assert not bad, f"{module} imports {bad}: {why}"
    if not any(_under(module, p) for p in SHARED_ONLY):  # the shared `wharf` package
        bad = [i for i in imported if any(_under(i, p) for p in SHARED_ONLY)]
        assert not bad, f"{module} is shared code and must not import programs: {bad}"
    for lib, owners in OWNERS.items():
        if any(_under(i, lib) for i in imported):
            assert module in owners, f"only {owners} may import {lib}, not {module}"


def test_every_package_is_listed_in_pyproject() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    listed = set(config["tool"]["setuptools"]["packages"])
    missing = package_names() - listed
    assert not missing, f"add {sorted(missing)} to [tool.setuptools] packages in pyproject.toml"
