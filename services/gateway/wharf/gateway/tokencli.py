"""``wharf-gateway token create|ls|rm``: the bearer tokens gateways accept.

Without a database they live in the tokens file (``--tokens-file``, 0600, digests only). With
one (``--database-url`` or ``WHARF_GATEWAY_DATABASE_URL``, as for ``serve``) ``create`` and
``rm`` work on the database's tokens, which every gateway sharing it accepts within a second;
``ls`` shows both, and where each is kept. A gateway accepts the tokens of its file as well.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from wharf.errors import WharfError
from wharf.gateway import auth
from wharf.gateway.policy import RULES, Scope
from wharf.gateway.settings import from_flags


@click.group()
def token() -> None:
    """Manage the bearer tokens the gateway accepts."""


_TOKENS_OPTION = click.option("--tokens-file", type=click.Path(path_type=Path),
                              help="Tokens file (default /etc/wharf/gateway-tokens).")
_DATABASE_OPTION = click.option(
    "--database-url", metavar="URL", help="The gateways' PostgreSQL (env "
    "WHARF_GATEWAY_DATABASE_URL): tokens made there count on every gateway that shares it.")


@contextmanager
def _where(tokens_file: Path | None, database_url: str | None) -> Iterator[tuple[Path, Any]]:
    """The tokens file, and the database's records (None: no database configured), closed
    afterwards; a WharfError inside is the command's error message."""
    settings = from_flags(tokens_file=tokens_file, database_url=database_url)
    database = None
    try:
        if settings.database_url is not None:
            from wharf.gateway.pgrecords import PgRecords  # noqa: PLC0415 - psycopg only then

            database = PgRecords(settings.database_url, max_connections=1)
        yield settings.tokens_file, database
    except WharfError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        if database is not None:
            database.close()


@token.command("create")
@click.argument("name")
@click.option("--scope", type=click.Choice([s.value for s in Scope]), default="operate",
              show_default=True, help="read: GETs and events; operate: also run, create and "
              "the containers' lifecycle on one node, within the policy; admin: everything "
              "(node patterns, pulls on every node, anyone's commands, privileged settings).")
@click.option("--allow", "allow", multiple=True, metavar="RULE[,RULE…]",
              help=f"Policy rules an operate token may pass: {', '.join(RULES)}.")
@_TOKENS_OPTION
@_DATABASE_OPTION
def token_create(name: str, scope: str, allow: tuple[str, ...], tokens_file: Path | None,
                 database_url: str | None) -> None:
    """Create (or replace) NAME's token and print it: it is shown only once. With a database
    configured, the token is kept there (every gateway sharing it accepts it)."""
    with _where(tokens_file, database_url) as (path, database):
        if database is None:
            click.echo(auth.create_token(path, name, Scope(scope), allow))
            return
        made, entry = auth.make_token(name, Scope(scope), allow)
        database.save_token(name, entry)
        click.echo(made)


@token.command("ls")
@_TOKENS_OPTION
@_DATABASE_OPTION
def token_ls(tokens_file: Path | None, database_url: str | None) -> None:
    """List tokens: name, scope, the policy rules they are allowed (and, with a database,
    where each is kept)."""
    with _where(tokens_file, database_url) as (path, database):
        kept = [(n, e, "file") for n, e in sorted(
            (auth.read_tokens(path) if path.exists() else {}).items())]
        if database is not None:
            kept += [(n, e, "database") for n, e in sorted(database.token_entries().items())]
    rows = [("NAME", "SCOPE", "ALLOW", "KEPT IN")] + [
        (name, f"{e.scope}" if e.scoped else f"{e.scope} (no scope in the file)",
         ",".join(sorted(e.allow)), where) for name, e, where in kept]
    width = [max(len(r[i]) for r in rows) for i in range(3)]
    for name, scope, allowed, where in rows:
        line = f"{name:<{width[0]}}  {scope:<{width[1]}}  {allowed:<{width[2]}}"
        click.echo((line + (f"  {where}" if database is not None else "")).rstrip())


@token.command("rm")
@click.argument("name")
@_TOKENS_OPTION
@_DATABASE_OPTION
def token_rm(name: str, tokens_file: Path | None, database_url: str | None) -> None:
    """Revoke NAME's token (in the database, when one is configured)."""
    with _where(tokens_file, database_url) as (path, database):
        if database is None:
            auth.revoke_token(path, name)
        else:
            database.drop_token(name)
