"""``wharf commit`` (also ``wharf container commit``): a new image from a container's changes."""

from __future__ import annotations

import click

from wharf.cli.session import current


def split_repository(text: str) -> tuple[str, str]:
    """``REPOSITORY[:TAG]`` -> (repository, tag); a colon inside a registry's host:port is not
    a tag separator."""
    repo, sep, tag = text.rpartition(":")
    if not sep or "/" in tag:
        return text, ""
    return repo, tag


@click.command("commit")
@click.argument("container")
@click.argument("repository", required=False, default="")
@click.option("-a", "--author", default="",
              help='Author (e.g., "John Hannibal Smith <hannibal@a-team.com>").')
@click.option("-c", "--change", "changes", multiple=True,
              help="Apply Dockerfile instruction to the created image.")
@click.option("-m", "--message", default="", help="Commit message.")
@click.option("-p", "--pause", type=click.BOOL, default=True, show_default=True,
              help="Pause container during commit.")
def commit_cmd(container: str, repository: str, author: str, changes: tuple[str, ...],
               message: str, pause: bool) -> None:
    """Create a new image from a container's changes."""
    repo, tag = split_repository(repository) if repository else ("", "")
    image_id = current().client().commit(container, repo=repo, tag=tag, comment=message,
                                         author=author, changes=list(changes), pause=pause)
    click.echo(image_id)
