"""``wharf version`` and ``wharf info`` (also ``wharf system info``), laid out like docker's, and
``system check`` (the ``system`` group, with ``df`` from ``diskusage`` and ``prune`` from
``prune``, is declared in :mod:`wharf.cli.commandtree`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import click

from wharf.cli.commands.versioninfo import client_version, render_version
from wharf.cli.failure import CLIError
from wharf.cli.formatting import bytes_size
from wharf.cli.session import Session, current
from wharf.errors import WharfError


def _template(fmt: str, data: Mapping[str, Any]) -> str:
    from wharf.cli.templates import TemplateError, parse  # noqa: PLC0415 - only for --format

    try:
        return parse(fmt).render(data)
    except TemplateError as exc:
        raise CLIError(str(exc)) from exc


@click.command("version")
@click.option("-f", "--format", "fmt", help="Format the output using a Go template.")
def version_cmd(fmt: str | None) -> None:
    """Show the wharf version information."""
    session: Session = current()
    client = client_version()
    try:
        server: dict[str, Any] | None = session.client().version()
        error = None
    except WharfError as exc:
        server, error = None, exc
    if fmt:
        click.echo(_template(fmt, {"Client": client, "Server": server}))
    else:
        click.echo(render_version(client, session.host.url, server))
    if error is not None:
        raise error


def render_info(info: Mapping[str, Any]) -> str:
    """The ``Server:`` section of ``docker info`` (the fields wharf has)."""
    lines = ["Server:"]
    add = lines.append
    add(f" Containers: {info.get('Containers', 0)}")
    add(f"  Running: {info.get('ContainersRunning', 0)}")
    add(f"  Paused: {info.get('ContainersPaused', 0)}")
    add(f"  Stopped: {info.get('ContainersStopped', 0)}")
    add(f" Images: {info.get('Images', 0)}")
    add(f" Server Version: {info.get('ServerVersion', '')}")
    add(f" Storage Driver: {info.get('Driver', '')}")
    lines += [f"  {k}: {v}" for k, v in info.get("DriverStatus") or []]
    add(f" Cgroup Driver: {info.get('CgroupDriver', '')}")
    add(f" Cgroup Version: {info.get('CgroupVersion', '')}")
    plugins: Mapping[str, Any] = info.get("Plugins") or {}
    add(" Plugins:")
    lines += [f"  {kind}: {' '.join(plugins.get(kind) or [])}" for kind in
              ("Volume", "Network", "Log") if kind in plugins]
    runtimes = " ".join(sorted(info.get("Runtimes") or {}))
    add(f" Runtimes: {runtimes}")
    add(f" Default Runtime: {info.get('DefaultRuntime', '')}")
    add(f" Kernel Version: {info.get('KernelVersion', '')}")
    add(f" Operating System: {info.get('OperatingSystem', '')}")
    add(f" OSType: {info.get('OSType', '')}")
    add(f" Architecture: {info.get('Architecture', '')}")
    add(f" CPUs: {info.get('NCPU', 0)}")
    add(f" Total Memory: {bytes_size(int(info.get('MemTotal') or 0))}")
    add(f" Name: {info.get('Name', '')}")
    add(f" ID: {info.get('ID', '')}")
    add(f" Wharf Root Dir: {info.get('DockerRootDir', '')}")
    add(f" Registry: {info.get('IndexServerAddress', '')}")
    registry: Mapping[str, Any] = info.get("RegistryConfig") or {}
    insecure = registry.get("InsecureRegistryCIDRs") or []
    if insecure:
        add(" Insecure Registries:")
        lines += [f"  {cidr}" for cidr in insecure]
    mirrors = registry.get("Mirrors") or []
    if mirrors:
        add(" Registry Mirrors:")
        lines += [f"  {m}" for m in mirrors]
    lines += [f"WARNING: {w}" for w in info.get("Warnings") or []]
    return "\n".join(lines)


@click.command("info")
@click.option("-f", "--format", "fmt", help="Format the output using a Go template.")
def info_cmd(fmt: str | None) -> None:
    """Display system-wide information."""
    session = current()
    if fmt:
        click.echo(_template(fmt, session.client().info()))
        return
    click.echo("Client:")
    click.echo(f" Debug Mode: {'true' if session.debug else 'false'}")
    click.echo()
    click.echo(render_info(session.client().info()))


@click.command("check")
@click.option("-r", "--repair", is_flag=True,
              help="Repair what can be repaired (missing layer blobs are fetched again from "
                   "the registry they came from; unreferenced data and leftovers are removed).")
def check_cmd(repair: bool) -> None:
    """Check the image store for consistency: every image's blobs and layers present, nothing
    left over. Exits 1 while a problem is left unrepaired."""
    report = current().client().system_check(repair)
    problems = list(report.get("Problems") or [])
    for problem in problems:
        if problem.get("Repaired"):
            outcome = "repaired" + (f" ({problem['Advice']})" if problem.get("Advice") else "")
        elif repair or not problem.get("Repairable"):
            outcome = "NOT repaired" + (f": {problem['Advice']}" if problem.get("Advice")
                                        else "")
        else:
            outcome = "repairable with --repair"
        click.echo(f"{problem.get('Kind')} {problem.get('ID')}: {problem.get('Problem')}: "
                   f"{outcome}")
    left = sum(1 for p in problems if not p.get("Repaired"))
    if not problems:
        click.echo("The image store is consistent.")
    else:
        click.echo(f"{len(problems)} problem(s), {len(problems) - left} repaired, {left} left.")
    if report.get("Errors"):
        raise SystemExit(1)
