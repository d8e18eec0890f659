"""``start stop kill restart pause unpause rm wait rename`` and ``container prune``.

Like the docker CLI: arguments are handled in order, each success prints the argument (``wait``
prints the exit status), failures are collected and printed to stderr at the end with exit 1.
``start -a`` attaches first, opens the wait, starts, streams, and exits with the container's
status.
"""

from __future__ import annotations

from collections.abc import Callable

import click

from wharf.cli.commands.images import confirm, parse_filters
from wharf.cli.commands.runflow import attach_params, exit_status
from wharf.cli.failure import CLIError
from wharf.cli.formatting import human_size
from wharf.cli.session import current
from wharf.cli.transport import DaemonUnreachable
from wharf.errors import NotFound, WharfError


def each(names: tuple[str, ...], action: Callable[[str], object],
         echo: bool = True) -> dict[str, str]:
    """Run ``action`` per name in order; print the name (or its result); return the errors."""
    errors: dict[str, str] = {}
    for name in names:
        try:
            result = action(name)
        except DaemonUnreachable:
            raise
        except WharfError as exc:
            errors[name] = f"Error response from daemon: {exc}"
            continue
        if echo:
            click.echo(name if result is None else result)
    return errors


def finish(errors: dict[str, str]) -> None:
    """Exit 1 with the collected errors (docker prints them after the successes)."""
    if errors:
        raise CLIError("\n".join(errors.values()))


@click.command("start")
@click.argument("containers", nargs=-1, required=True)
@click.option("-a", "--attach", is_flag=True, help="Attach STDOUT/STDERR and forward signals.")
@click.option("-i", "--interactive", is_flag=True, help="Attach container's STDIN.")
@click.option("--detach-keys", default=None, help="Override the key sequence for detaching.")
def start_cmd(containers: tuple[str, ...], attach: bool, interactive: bool,
              detach_keys: str | None) -> None:
    """Start one or more stopped containers."""
    if attach or interactive:
        if len(containers) > 1:
            raise CLIError("you cannot start and attach multiple containers at once")
        code = _start_attached(containers[0], interactive, detach_keys)
        if code:
            click.get_current_context().exit(code)
        return
    errors = each(containers, current().client().start)
    for line in errors.values():
        click.echo(line, err=True)
    if errors:
        raise CLIError(f"Error: failed to start containers: {', '.join(errors)}")


def _start_attached(name: str, stdin: bool, detach_keys: str | None) -> int:
    from wharf.cli.commands.interact import interact, proxy_signals  # noqa: PLC0415 - lazy: keeps `wharf --help` fast

    session = current()
    client = session.client()
    info = client.inspect_container(name)
    cid, tty = str(info.get("Id", name)), bool((info.get("Config") or {}).get("Tty"))
    conn = client.attach(cid, attach_params(stdin, detach_keys))
    waiter = None
    try:
        waiter = client.wait(cid, "next-exit")
        client.start(cid)
        with proxy_signals(lambda sig: client.kill(cid, sig), not tty):
            detached = interact(session, conn, tty=tty, stdin=stdin, detach_keys=detach_keys,
                                resize=lambda h, w: client.resize(cid, h, w))
        return 0 if detached else exit_status(waiter.result())
    finally:
        conn.close()
        if waiter is not None:
            waiter.close()


@click.command("stop")
@click.argument("containers", nargs=-1, required=True)
@click.option("-t", "--time", "timeout", type=int, default=None,
              help="Seconds to wait for stop before killing it.")
@click.option("-s", "--signal", "sig", default="", help="Signal to send to the container.")
def stop_cmd(containers: tuple[str, ...], timeout: int | None, sig: str) -> None:
    """Stop one or more running containers."""
    client = current().client()
    finish(each(containers, lambda n: client.stop(n, timeout, sig)))


@click.command("restart")
@click.argument("containers", nargs=-1, required=True)
@click.option("-t", "--time", "timeout", type=int, default=None,
              help="Seconds to wait for stop before killing the container.")
def restart_cmd(containers: tuple[str, ...], timeout: int | None) -> None:
    """Restart one or more containers."""
    client = current().client()
    finish(each(containers, lambda n: client.restart(n, timeout)))


@click.command("kill")
@click.argument("containers", nargs=-1, required=True)
@click.option("-s", "--signal", "sig", default="KILL", show_default=True,
              help="Signal to send to the container.")
def kill_cmd(containers: tuple[str, ...], sig: str) -> None:
    """Kill one or more running containers."""
    client = current().client()
    finish(each(containers, lambda n: client.kill(n, sig)))


@click.command("pause")
@click.argument("containers", nargs=-1, required=True)
def pause_cmd(containers: tuple[str, ...]) -> None:
    """Pause all processes within one or more containers."""
    finish(each(containers, current().client().pause))


@click.command("unpause")
@click.argument("containers", nargs=-1, required=True)
def unpause_cmd(containers: tuple[str, ...]) -> None:
    """Unpause all processes within one or more containers."""
    finish(each(containers, current().client().unpause))


@click.command("rm")
@click.argument("containers", nargs=-1, required=True)
@click.option("-f", "--force", is_flag=True, help="Force the removal of a running container.")
@click.option("-v", "--volumes", is_flag=True, help="Remove anonymous volumes too.")
def rm_cmd(containers: tuple[str, ...], force: bool, volumes: bool) -> None:
    """Remove one or more containers."""
    client, errors = current().client(), []
    for name in containers:
        try:
            client.remove_container(name, force=force, volumes=volumes)
        except NotFound:
            # the docker client rewrites a 404 here; with -f it is only reported
            if not force:
                errors.append(f"Error: No such container: {name}")
            else:
                click.echo(f"Error: No such container: {name}", err=True)
            continue
        except DaemonUnreachable:
            raise
        except WharfError as exc:
            errors.append(f"Error response from daemon: {exc}")
            continue
        click.echo(name)
    if errors:
        raise CLIError("\n".join(errors))


@click.command("wait")
@click.argument("containers", nargs=-1, required=True)
def wait_cmd(containers: tuple[str, ...]) -> None:
    """Block until one or more containers stop, then print their exit codes."""
    client = current().client()
    finish(each(containers, lambda n: int(client.wait(n).result().get("StatusCode") or 0)))


@click.command("rename")
@click.argument("container")
@click.argument("new_name")
def rename_cmd(container: str, new_name: str) -> None:
    """Rename a container."""
    try:
        current().client().rename(container, new_name)
    except DaemonUnreachable:
        raise
    except WharfError as exc:
        click.echo(f"Error response from daemon: {exc}", err=True)
        raise CLIError(f"Error: failed to rename container named {container}") from exc


@click.command("prune")
@click.option("--filter", "filters", multiple=True,
              help="Provide filter values (e.g. 'until=<timestamp>').")
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation.")
def prune_cmd(filters: tuple[str, ...], force: bool) -> None:
    """Remove all stopped containers."""
    wanted = parse_filters(filters)
    if not force and not confirm("WARNING! This will remove all stopped containers."):
        return
    report = current().client().prune_containers(wanted)
    deleted = report.get("ContainersDeleted") or []
    if deleted:
        click.echo("Deleted Containers:")
        for cid in deleted:
            click.echo(cid)
        click.echo()
    click.echo(f"Total reclaimed space: {human_size(int(report.get('SpaceReclaimed') or 0))}")

