"""``wharf login`` and ``wharf logout``: registry credentials in ``<config dir>/config.json``."""

from __future__ import annotations

import sys

import click

from wharf.cli.config import Credentials, registry_key
from wharf.cli.failure import CLIError
from wharf.cli.session import current

DEFAULT_REGISTRY = "docker.io"


def _read_password_stdin() -> str:
    data = sys.stdin.read()
    password = data.removesuffix("\n").removesuffix("\r")
    if not password:
        raise CLIError("Error: Password Required")
    return password


@click.command("login")
@click.argument("server", required=False)
@click.option("-u", "--username", default="", help="Username.")
@click.option("-p", "--password", default="", help="Password.")
@click.option("--password-stdin", is_flag=True, help="Take the password from stdin.")
def login_cmd(server: str | None, username: str, password: str, password_stdin: bool) -> None:
    """Log in to a registry (Docker Hub when SERVER is left out)."""
    session = current()
    if password_stdin:
        if password:
            raise CLIError("--password and --password-stdin are mutually exclusive")
        if not username:
            raise CLIError("Must provide --username with --password-stdin")
        password = _read_password_stdin()
    elif password:
        click.echo("WARNING! Using --password via the CLI is insecure. Use --password-stdin.",
                   err=True)
    if not username:
        username = click.prompt("Username", default="", show_default=False).strip()
    if not username:
        raise CLIError("Error: Non-null Username Required")
    if not password:
        password = click.prompt("Password", hide_input=True, default="", show_default=False)
    if not password:
        raise CLIError("Error: Password Required")
    address = registry_key(server or DEFAULT_REGISTRY)
    reply = session.client().auth(
        {"username": username, "password": password, "serveraddress": address})
    config = session.config()
    token = str(reply.get("IdentityToken") or "")
    config.store(Credentials(address, username, "" if token else password, token))
    config.save()
    click.echo(f"WARNING! Your password will be stored unencrypted in {config.path}.", err=True)
    click.echo(str(reply.get("Status") or "Login Succeeded"))


@click.command("logout")
@click.argument("server", required=False)
def logout_cmd(server: str | None) -> None:
    """Log out from a registry (Docker Hub when SERVER is left out)."""
    address = registry_key(server or DEFAULT_REGISTRY)
    config = current().config()
    if not config.forget(address):
        click.echo(f"Not logged in to {address}")
        return
    click.echo(f"Removing login credentials for {address}")
    config.save()
