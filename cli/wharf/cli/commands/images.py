"""``wharf image ls|inspect|history|rm|tag|prune`` and their top-level aliases.

Presentation only: each command parses flags, makes the API calls through the session's client
and prints what the docker CLI prints. The ``image`` group (with the
transfer commands from ``transfer.py``) and the short aliases are declared in
:mod:`wharf.cli.commandtree`.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from typing import Any

import click

from wharf.cli.commands import transfer
from wharf.cli.failure import CLIError
from wharf.cli.formatting import ellipsis, go_time, human_size, rfc3339, short_id, since
from wharf.cli.session import current
from wharf.cli.templates import Row, TemplateError, parse, render_rows
from wharf.cli.transport import DaemonUnreachable
from wharf.errors import NotFound, WharfError

IMAGE_HEADERS = {"Repository": "REPOSITORY", "Tag": "TAG", "Digest": "DIGEST", "ID": "IMAGE ID",
                 "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "Size": "SIZE",
                 "Containers": "CONTAINERS", "SharedSize": "SHARED SIZE",
                 "UniqueSize": "UNIQUE SIZE", "VirtualSize": "VIRTUAL SIZE"}
HISTORY_HEADERS = {"ID": "IMAGE", "CreatedSince": "CREATED", "CreatedAt": "CREATED AT",
                   "CreatedBy": "CREATED BY", "Size": "SIZE", "Comment": "COMMENT"}


def parse_filters(values: Iterable[str]) -> dict[str, list[str]]:
    """``--filter k=v`` flags → ``{"k": ["v", …]}``."""
    out: dict[str, list[str]] = {}
    for value in values:
        key, sep, val = value.partition("=")
        if not sep or not key:
            raise CLIError(f"bad format of filter (expected name=value): {value}")
        out.setdefault(key.strip().lower(), []).append(val)
    return out


def _split_repo_tag(text: str) -> tuple[str, str]:
    repo, sep, tag = text.rpartition(":")
    if not sep or "/" in tag:
        return text, "<none>"
    return repo, tag


def image_rows(image: Mapping[str, Any], digests: bool) -> list[tuple[str, str, str]]:
    """(repository, tag, digest) rows for one image, as ``docker images`` lists them."""
    tags = [t for t in image.get("RepoTags") or [] if t != "<none>:<none>"]
    repo_digests = [d for d in image.get("RepoDigests") or [] if d != "<none>@<none>"]
    if not tags and not repo_digests:
        return [("<none>", "<none>", "<none>")]
    by_repo: dict[str, list[str]] = {}
    for ref in repo_digests:
        repo, _, dgst = ref.partition("@")
        by_repo.setdefault(repo, []).append(dgst)
    rows: list[tuple[str, str, str]] = []
    for ref in tags:
        repo, tag = _split_repo_tag(ref)
        found = by_repo.get(repo, []) if digests else []
        rows += [(repo, tag, d) for d in found] or [(repo, tag, "<none>")]
    tagged = {_split_repo_tag(t)[0] for t in tags}
    for repo, dgsts in by_repo.items():
        if repo not in tagged:
            rows += [(repo, "<none>", d) for d in dgsts] if digests else [(repo, "<none>", "")]
    return rows


def image_context(image: Mapping[str, Any], row: tuple[str, str, str], no_trunc: bool) -> Row:
    """docker's ``imageContext``: SIZE to 3 significant digits, the other sizes to 4."""
    created = int(image.get("Created") or 0)
    containers = int(image.get("Containers", -1) if image.get("Containers") is not None else -1)
    shared = int(image.get("SharedSize", -1) if image.get("SharedSize") is not None else -1)
    size = int(image.get("Size") or 0)
    return Row({
        "ID": short_id(str(image.get("Id", "")), no_trunc), "Repository": row[0], "Tag": row[1],
        "Digest": row[2], "CreatedSince": since(created), "CreatedAt": go_time(created),
        "Size": human_size(size, 3), "VirtualSize": human_size(size),
        "Containers": "N/A" if containers < 0 else str(containers),
        "SharedSize": "N/A" if shared < 0 else human_size(shared),
        "UniqueSize": "N/A" if shared < 0 or size < 0 else human_size(size - shared),
    }, "*formatter.imageContext")


def _render(fmt: str, rows: list[Row], headers: Mapping[str, str]) -> str:
    try:
        return render_rows(parse(fmt), rows, headers)
    except TemplateError as exc:
        raise CLIError(str(exc)) from exc


@click.command("ls")
@click.argument("repository", required=False)
@click.option("-a", "--all", "all_", is_flag=True, help="Show all images (default hides "
              "intermediate images).")
@click.option("--digests", is_flag=True, help="Show digests.")
@click.option("-f", "--filter", "filters", multiple=True, help="Filter output (k=v).")
@click.option("--format", "fmt", help="Format output: table, json or a Go template.")
@click.option("--no-trunc", is_flag=True, help="Don't truncate output.")
@click.option("-q", "--quiet", is_flag=True, help="Only show image IDs.")
def ls_cmd(*, repository: str | None, all_: bool, digests: bool, filters: tuple[str, ...],
           fmt: str | None, no_trunc: bool, quiet: bool) -> None:
    """List images."""
    wanted = parse_filters(filters)
    if repository:
        wanted.setdefault("reference", []).append(repository)
    images = current().client().images(all=all_, filters=wanted)
    rows = [image_context(img, row, no_trunc) for img in images
            for row in image_rows(img, digests)]
    if quiet:
        fmt = "{{.ID}}"
    elif not fmt or fmt == "table":
        digest_col = "\t{{.Digest}}" if digests else ""
        fmt = ("table {{.Repository}}\t{{.Tag}}" + digest_col +
               "\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}")
    text = _render(fmt, rows, IMAGE_HEADERS)
    if text:
        click.echo(text)


@click.command("inspect")
@click.argument("images", nargs=-1, required=True)
@click.option("-f", "--format", "fmt", help="Format the output using a Go template.")
def inspect_cmd(images: tuple[str, ...], fmt: str | None) -> None:
    """Display detailed information on one or more images."""
    client = current().client()
    docs, missing = [], []
    for name in images:
        try:
            docs.append(client.image_inspect(name))
        except NotFound:
            missing.append(f"Error: No such image: {name}")
    from wharf.cli.commands.inspect import show  # noqa: PLC0415 - lazy: keeps `wharf --help` fast

    show(docs, fmt, missing)


def _history_row(layer: Mapping[str, Any], human: bool, no_trunc: bool) -> Row:
    layer_id = str(layer.get("Id", ""))
    created = int(layer.get("Created") or 0)
    created_by = str(layer.get("CreatedBy", "")).replace("\t", " ")
    size = int(layer.get("Size") or 0)
    return Row({
        "ID": layer_id if layer_id.startswith("<missing>") else short_id(layer_id, no_trunc),
        "CreatedSince": since(created) if human else rfc3339(created),
        "CreatedAt": rfc3339(created),
        "CreatedBy": created_by if no_trunc else ellipsis(created_by, 45),
        "Size": human_size(size, 3) if human else str(size),
        "Comment": str(layer.get("Comment", "")),
    }, "*formatter.historyContext")


@click.command("history")
@click.argument("image")
@click.option("--format", "fmt", help="Format output: table, json or a Go template.")
@click.option("-H", "--human", type=click.BOOL, default=True, show_default=True,
              help="Print sizes and dates in human readable format.")
@click.option("--no-trunc", is_flag=True, help="Don't truncate output.")
@click.option("-q", "--quiet", is_flag=True, help="Only show image IDs.")
def history_cmd(image: str, fmt: str | None, human: bool, no_trunc: bool, quiet: bool) -> None:
    """Show the history of an image."""
    layers = current().client().image_history(image)
    rows = [_history_row(layer, human, no_trunc) for layer in layers]
    if quiet:
        fmt = "{{.ID}}"
    elif not fmt or fmt == "table":
        fmt = "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}"
    text = _render(fmt, rows, HISTORY_HEADERS)
    if text:
        click.echo(text)


def deletion_lines(items: Iterable[Mapping[str, Any]], lower: bool = False) -> list[str]:
    """``Untagged: …`` / ``Deleted: …`` lines (prune writes them in lower case)."""
    return [f"{key.lower() if lower else key}: {item[key]}"
            for item in items for key in ("Untagged", "Deleted") if item.get(key)]


def print_deletions(items: Iterable[Mapping[str, Any]]) -> None:
    """What ``rmi`` prints for the daemon's ``Untagged``/``Deleted`` items."""
    for line in deletion_lines(items):
        click.echo(line)


@click.command("rm")
@click.argument("images", nargs=-1, required=True)
@click.option("-f", "--force", is_flag=True, help="Force removal of the image.")
@click.option("--no-prune", is_flag=True, help="Do not delete untagged parents.")
def rm_cmd(images: tuple[str, ...], force: bool, no_prune: bool) -> None:
    """Remove one or more images."""
    client, errors = current().client(), []
    for name in images:
        try:
            print_deletions(client.remove_image(name, force=force, noprune=no_prune))
        except DaemonUnreachable:
            raise
        except WharfError as exc:
            errors.append(f"Error response from daemon: {exc}")
    if errors:
        raise CLIError("\n".join(errors))


@click.command("tag")
@click.argument("source")
@click.argument("target")
def tag_cmd(source: str, target: str) -> None:
    """Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE."""
    ref = transfer.parse_ref(target)
    if ref.digest:
        raise CLIError("refusing to create a tag with a digest reference")
    current().client().tag(source, ref.familiar, ref.tag or "latest")


_PRUNE_WARNING = {
    False: "WARNING! This will remove all dangling images.",
    True: "WARNING! This will remove all images without at least one container associated "
          "to them.",
}


def ask(question: str) -> bool:
    """Docker's prompt (``prompt.Confirm``): ``question [y/N] ``, then one line of stdin, a
    terminal or not; only ``y`` or ``Y`` (spaces around it trimmed) is yes, EOF is no. Nothing
    is echoed after the answer: a terminal echoes the user's newline itself."""
    click.echo(f"{question} [y/N] ", nl=False)
    answer = sys.stdin.readline()
    return answer.strip().lower() == "y"


def confirm(message: str) -> bool:
    """``message`` on its own line, then docker's ``Are you sure you want to continue?``."""
    return ask(f"{message}\nAre you sure you want to continue?")


@click.command("prune")
@click.option("-a", "--all", "all_", is_flag=True, help="Remove all unused images, not just "
              "dangling ones.")
@click.option("--filter", "filters", multiple=True, help="Provide filter values (e.g. "
              "'until=<timestamp>').")
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation.")
def prune_cmd(all_: bool, filters: tuple[str, ...], force: bool) -> None:
    """Remove unused images."""
    wanted = parse_filters(filters)
    if not force and not confirm(_PRUNE_WARNING[all_]):
        return
    from wharf.cli.commands.prune import print_outcome, prune_images  # noqa: PLC0415 - cycle

    print_outcome([prune_images(current().client(), all_, wanted)])
