"""``wharf inspect`` (any object) and ``wharf container inspect``.

The generic form relies on 404s, as docker does (Engine API reference §1.2): it tries
containers/X/json, then images/X/json, then networks/X and volumes/X; any other error stops the
search. Documents are printed verbatim as a ``[...]`` array indented by 4, or through ``-f``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import click

from wharf.cli.client import APIClient, JSONObject
from wharf.cli.failure import CLIError
from wharf.cli.session import current
from wharf.cli.templates import TemplateError, parse
from wharf.errors import NotFound

Lookup = Callable[[APIClient, str, bool], JSONObject]
LOOKUPS: dict[str, Lookup] = {
    "container": lambda c, n, size: c.inspect_container(n, size=size),
    "image": lambda c, n, _size: c.image_inspect(n),
    "network": lambda c, n, _size: c.inspect_network(n),
    "volume": lambda c, n, _size: c.inspect_volume(n),
}
_MISSING = {"container": "No such container", "image": "No such image",
            "network": "No such network", "volume": "No such volume"}


def _find(client: APIClient, name: str, kinds: list[str], size: bool) -> JSONObject | None:
    for kind in kinds:
        try:
            return LOOKUPS[kind](client, name, size)
        except NotFound:
            continue
    return None


def show(docs: list[Any], fmt: str | None, missing: list[str]) -> None:
    """Print the documents like docker (``[]`` when none) and fail with the missing names."""
    if fmt:
        try:
            template = parse(fmt)
            lines = [template.render(doc) for doc in docs]
        except TemplateError as exc:
            raise CLIError(str(exc)) from exc
        for line in lines:
            click.echo(line)
    else:
        click.echo(json.dumps(docs, indent=4, ensure_ascii=False))
    if missing:
        raise CLIError("\n".join(missing))


def inspect_objects(names: tuple[str, ...], kind: str | None, fmt: str | None,
                    size: bool) -> None:
    """Inspect each name as ``kind`` (or any kind), printing the results in order."""
    if kind is not None and kind not in LOOKUPS:
        raise CLIError(f'"{kind}" is not a valid value for --type')
    client = current().client()
    kinds = [kind] if kind else list(LOOKUPS)
    docs, missing = [], []
    for name in names:
        doc = _find(client, name, kinds, size)
        if doc is None:
            missing.append(f"Error: {_MISSING.get(kind or '', 'No such object')}: {name}")
        else:
            docs.append(doc)
    show(docs, fmt, missing)


@click.command("inspect")
@click.argument("names", nargs=-1, required=True)
@click.option("-f", "--format", "fmt", help="Format the output using a Go template.")
@click.option("-s", "--size", is_flag=True, help="Display total file sizes if the type is "
              "container.")
@click.option("--type", "kind", default=None, help="Return JSON for specified type.")
def inspect_cmd(names: tuple[str, ...], fmt: str | None, size: bool, kind: str | None) -> None:
    """Return low-level information on wharf objects."""
    inspect_objects(names, kind, fmt, size)


@click.command("inspect")
@click.argument("containers", nargs=-1, required=True)
@click.option("-f", "--format", "fmt", help="Format the output using a Go template.")
@click.option("-s", "--size", is_flag=True, help="Display total file sizes.")
def container_inspect_cmd(containers: tuple[str, ...], fmt: str | None, size: bool) -> None:
    """Display detailed information on one or more containers."""
    inspect_objects(containers, "container", fmt, size)
