"""``wharf system df [-v] [--format]``: ``GET /system/df`` laid out like ``docker system df``
(docker/cli ``formatter/disk_usage.go``, ``system/df.go``).

The summary has one row per kind (TYPE TOTAL ACTIVE SIZE RECLAIMABLE), computed by the client
as the docker CLI computes it: images are active when a container uses them, and reclaimable
is ``LayersSize`` less what used images hold alone; containers are active when running, paused
or restarting; volumes when a container uses them; the build cache counts what is not shared.
``-v`` prints a table per kind instead, with docker's columns; ``--format json`` (or a
template) with ``-v`` renders every row of every kind at once, IDs untruncated.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import click

from wharf import reference
from wharf.cli.commands.images import IMAGE_HEADERS, image_context
from wharf.cli.commands.listing import PS_HEADERS, container_row, render
from wharf.cli.commands.volumes import VOLUME_HEADERS
from wharf.cli.commands.volumes import _row as volume_row
from wharf.cli.failure import CLIError
from wharf.cli.formatting import go_time_text, human_size, short_id, since
from wharf.cli.session import current
from wharf.cli.templates import Row, TemplateError, parse, to_json
from wharf.dockerapi import parse_time
from wharf.errors import InvalidArgument

SUMMARY_TABLE = "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}"
SUMMARY_RAW = ("type: {{.Type}}\ntotal: {{.TotalCount}}\nactive: {{.Active}}\nsize: {{.Size}}\n"
               "reclaimable: {{.Reclaimable}}\n")
SUMMARY_HEADERS = {"Type": "TYPE", "TotalCount": "TOTAL", "Active": "ACTIVE", "Size": "SIZE",
                   "Reclaimable": "RECLAIMABLE"}
IMAGE_TABLE = ("table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}\t"
               "{{.SharedSize}}\t{{.UniqueSize}}\t{{.Containers}}")
CONTAINER_TABLE = ("table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.LocalVolumes}}\t{{.Size}}\t"
                   "{{.RunningFor}}\t{{.Status}}\t{{.Names}}")
VOLUME_TABLE = "table {{.Name}}\t{{.Links}}\t{{.Size}}"
CACHE_TABLE = ("table {{.ID}}\t{{.CacheType}}\t{{.Size}}\t{{.CreatedSince}}\t"
               "{{.LastUsedSince}}\t{{.UsageCount}}\t{{.Shared}}")
CONTAINER_HEADERS = {**PS_HEADERS, "LocalVolumes": "LOCAL VOLUMES"}
CACHE_HEADERS = {"ID": "CACHE ID", "Parent": "PARENT", "CacheType": "CACHE TYPE",
                 "Size": "SIZE", "CreatedSince": "CREATED", "LastUsedSince": "LAST USED",
                 "UsageCount": "USAGE", "InUse": "IN USE", "Shared": "SHARED",
                 "Description": "DESCRIPTION"}
_ACTIVE_STATES = ("running", "paused", "restarting")
JSONList = Sequence[Mapping[str, Any]]


def _int(value: Any, default: int = 0) -> int:
    return default if value is None else int(value)


def _with_percent(part: int, total: int) -> str:
    """``1.5MB (99%)``: Go's integer division, which truncates toward zero."""
    if total <= 0:
        return human_size(part)
    percent = abs(part) * 100 // total
    return f"{human_size(part)} ({-percent if part < 0 else percent}%)"


_CONTEXTS = {"Images": "Images", "Containers": "Containers", "Local Volumes": "Volumes",
             "Build Cache": "Builder"}


def _summary(kind: str, total: int, active: int, size: str, reclaimable: str) -> Row:
    return Row({"Type": kind, "TotalCount": str(total), "Active": str(active), "Size": size,
                "Reclaimable": reclaimable}, f"*formatter.diskUsage{_CONTEXTS[kind]}Context")


def cache_size(entries: JSONList) -> int:
    """What ``docker system df`` shows as the build cache's size: the entries not shared."""
    return sum(_int(e.get("Size")) for e in entries if not e.get("Shared"))


def summary_rows(du: Mapping[str, Any]) -> list[Row]:
    """The four rows of ``docker system df``."""
    images: JSONList = du.get("Images") or []
    layers = _int(du.get("LayersSize"))
    used = sum(_int(i.get("Size"), -1) - _int(i.get("SharedSize"), -1) for i in images
               if _int(i.get("Containers")) != 0
               and -1 not in (_int(i.get("Size"), -1), _int(i.get("SharedSize"), -1)))
    containers: JSONList = du.get("Containers") or []
    active = [any(s in str(c.get("State", "")) for s in _ACTIVE_STATES) for c in containers]
    rw = [_int(c.get("SizeRw")) for c in containers]
    idle_rw = sum(size for size, up in zip(rw, active, strict=True) if not up)
    volumes: JSONList = du.get("Volumes") or []
    usage = [v.get("UsageData") or {} for v in volumes]
    known = [u for u in usage if _int(u.get("Size"), -1) != -1]
    volume_size = sum(_int(u.get("Size")) for u in known)
    unused = sum(_int(u.get("Size")) for u in known if _int(u.get("RefCount")) == 0)
    cache: JSONList = du.get("BuildCache") or []
    builder = cache_size(cache)
    held = sum(_int(e.get("Size")) for e in cache if e.get("InUse") and not e.get("Shared"))
    return [
        _summary("Images", len(images), sum(_int(i.get("Containers")) > 0 for i in images),
                 human_size(layers), _with_percent(layers - used, layers)),
        _summary("Containers", len(containers), sum(active), human_size(sum(rw)),
                 _with_percent(idle_rw, sum(rw))),
        _summary("Local Volumes", len(volumes), sum(_int(u.get("RefCount")) > 0 for u in usage),
                 human_size(volume_size), _with_percent(unused, volume_size)),
        _summary("Build Cache", len(cache), sum(bool(e.get("InUse")) for e in cache),
                 human_size(builder), human_size(builder - held)),
    ]


def _dangling(image: Mapping[str, Any]) -> bool:
    tags, digests = image.get("RepoTags") or [], image.get("RepoDigests") or []
    return (not tags and not digests) or (
        tags == ["<none>:<none>"] and digests == ["<none>@<none>"])


def image_rows(images: JSONList, trunc: bool) -> list[Row]:
    """One row per image, named by its first tag; like docker, an image whose first tag does
    not parse is left out."""
    rows = []
    for image in images:
        repo = tag = "<none>"
        tags = image.get("RepoTags") or []
        if tags and not _dangling(image):
            try:
                ref = reference.parse(str(tags[0]))
            except InvalidArgument:
                continue
            if ref.tag:
                repo, tag = ref.familiar, ref.tag
        rows.append(image_context(image, (repo, tag, ""), no_trunc=not trunc))
    return rows


def container_rows(containers: JSONList, trunc: bool) -> list[Row]:
    """``ps`` rows with LOCAL VOLUMES, and SIZE without the virtual size (docker drops it)."""
    return [Row({**container_row(c, trunc).fields,
                 "Size": human_size(_int(c.get("SizeRw")), 3),
                 "LocalVolumes": str(sum(m.get("Driver") == "local"
                                         for m in c.get("Mounts") or [])),
                 "Platform": None}, "*formatter.ContainerContext")
            for c in containers]


def volume_rows(volumes: JSONList) -> list[Row]:
    """``volume ls`` rows with the cluster fields docker's volume context has."""
    rows = []
    for volume in volumes:
        fields = {k: v for k, v in volume_row(volume).fields.items() if k != "CreatedAt"}
        rows.append(Row({**fields, "Group": "N/A", "Availability": "N/A", "Status": "N/A"},
                        "*formatter.volumeContext"))
    return rows


def _when(text: Any) -> tuple[str, str]:
    """(Go's ``String()``, ``… ago``) of an RFC 3339 time; empty for none."""
    if not text:
        return "", ""
    value = parse_time(str(text))
    return go_time_text(value), since(value.timestamp())


def cache_rows(entries: JSONList, trunc: bool) -> list[Row]:
    """Docker's build cache rows, least recently used first (never used ones before them)."""
    def order(entry: Mapping[str, Any]) -> tuple[int, float, str]:
        last = entry.get("LastUsedAt")
        return (1, parse_time(str(last)).timestamp(), str(entry.get("ID", ""))) if last else (
            0, 0.0, str(entry.get("ID", "")))

    rows = []
    for entry in sorted(entries, key=order):
        parents = entry.get("Parents") or []
        parent = ", ".join(parents) if parents else str(entry.get("Parent") or "")
        cache_id = str(entry.get("ID", ""))
        if trunc:
            cache_id, parent = short_id(cache_id), short_id(parent)
        created, created_since = _when(entry.get("CreatedAt"))
        last_used, last_used_since = _when(entry.get("LastUsedAt"))
        rows.append(Row({
            "ID": cache_id + ("*" if entry.get("InUse") else ""), "Parent": parent,
            "CacheType": str(entry.get("Type", "")),
            "Description": str(entry.get("Description", "")),
            "Size": human_size(_int(entry.get("Size")), 3),
            "CreatedAt": created, "CreatedSince": created_since, "LastUsedAt": last_used,
            "LastUsedSince": last_used_since, "UsageCount": str(_int(entry.get("UsageCount"))),
            "InUse": "true" if entry.get("InUse") else "false",
            "Shared": "true" if entry.get("Shared") else "false",
        }, "*formatter.buildCacheContext"))
    return rows


def verbose_rows(du: Mapping[str, Any], trunc: bool) -> dict[str, list[Row]]:
    """Every kind's rows, keyed as docker's verbose template names them."""
    return {"Images": image_rows(du.get("Images") or [], trunc),
            "Containers": container_rows(du.get("Containers") or [], trunc),
            "Volumes": volume_rows(du.get("Volumes") or []),
            "BuildCache": cache_rows(du.get("BuildCache") or [], trunc)}


def render_verbose(du: Mapping[str, Any], fmt: str) -> str:
    """``docker system df -v``: four titled tables, or every row through ``fmt``."""
    if fmt != "table":
        sections = verbose_rows(du, trunc=False)
        if fmt.strip() == "json":
            return "{" + ",".join(f'"{name}":[' + ",".join(to_json(r) for r in rows) + "]"
                                  for name, rows in sections.items()) + "}"
        dot = {name: [dict(sorted(r.fields.items())) for r in rows]
               for name, rows in sections.items()}
        try:
            return parse(fmt).render(dot)
        except TemplateError as exc:
            raise CLIError(str(exc)) from exc
    sections = verbose_rows(du, trunc=True)
    builder = cache_size(du.get("BuildCache") or [])
    return "\n".join([
        "Images space usage:\n", render(IMAGE_TABLE, sections["Images"], IMAGE_HEADERS),
        "\nContainers space usage:\n",
        render(CONTAINER_TABLE, sections["Containers"], CONTAINER_HEADERS),
        "\nLocal Volumes space usage:\n",
        render(VOLUME_TABLE, sections["Volumes"], VOLUME_HEADERS),
        f"\nBuild cache usage: {human_size(builder)}\n",
        render(CACHE_TABLE, sections["BuildCache"], CACHE_HEADERS),
    ])


def render_df(du: Mapping[str, Any], fmt: str, verbose: bool) -> str:
    """What ``docker system df`` prints for ``fmt`` (``table``, ``json``, ``raw`` or a
    template)."""
    if verbose:
        if fmt == "raw":
            raise click.UsageError("--format raw is not supported with --verbose")
        return render_verbose(du, fmt)
    template = {"table": SUMMARY_TABLE, "raw": SUMMARY_RAW}.get(fmt, fmt)
    return render(template, summary_rows(du), SUMMARY_HEADERS)


@click.command("df")
@click.option("--format", "fmt", default="table",
              help="Format output: table (default), json, raw, or a Go template "
                   "('table TEMPLATE' for a table with headers).")
@click.option("-v", "--verbose", is_flag=True, help="Show detailed information on space usage.")
def df_cmd(fmt: str, verbose: bool) -> None:
    """Show wharf disk usage.

    What images, containers, local volumes and the build cache take, and how much of it is
    reclaimable; -v lists each of them."""
    click.echo(render_df(current().client().disk_usage(), fmt or "table", verbose))
