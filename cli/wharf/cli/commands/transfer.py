"""``wharf image pull|push|save|load|import``: moving images in and out of the daemon."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import click

from wharf.cli import progress
from wharf.cli.config import auth_header
from wharf.cli.failure import CLIError
from wharf.cli.session import Session, current
from wharf.errors import InvalidArgument
from wharf.reference import Reference, parse

CHUNK = 1 << 20


def parse_ref(text: str) -> Reference:
    """Parse an image reference; a bad one stops the CLI with Docker's message."""
    try:
        return parse(text)
    except InvalidArgument as exc:
        raise CLIError(str(exc)) from exc


def _show(session: Session, messages: Iterable[dict[str, Any]], quiet: bool) -> None:
    if quiet:
        progress.drain(messages)
    else:
        progress.display(messages, sys.stdout, session.stdout_is_tty())


def _auth_header(session: Session, registry: str) -> str:
    return auth_header(session.config(), registry)


@click.command("pull")
@click.argument("name", metavar="NAME[:TAG|@DIGEST]")
@click.option("-a", "--all-tags", is_flag=True, help="Download all tagged images in the "
              "repository.")
@click.option("--platform", default="", help="Set platform if server is multi-platform capable.")
@click.option("-q", "--quiet", is_flag=True, help="Suppress verbose output.")
def pull_cmd(name: str, all_tags: bool, platform: str, quiet: bool) -> None:
    """Download an image from a registry."""
    if all_tags:
        raise CLIError("wharf pull: --all-tags is not supported yet; pull one tag at a time")
    session, ref = current(), parse_ref(name)
    if ref.tag is None and ref.digest is None:
        ref = ref.with_default_tag()
        if not quiet:
            click.echo("Using default tag: latest")
    messages = session.client().pull(ref.familiar, ref.tag_or_digest,
                                     _auth_header(session, ref.domain), platform)
    _show(session, messages, quiet)
    click.echo(ref.string)


@click.command("push")
@click.argument("name", metavar="NAME[:TAG]")
@click.option("-a", "--all-tags", is_flag=True, help="Push all tagged images in the repository.")
@click.option("-q", "--quiet", is_flag=True, help="Suppress verbose output.")
def push_cmd(name: str, all_tags: bool, quiet: bool) -> None:
    """Upload an image to a registry."""
    if all_tags:
        raise CLIError("wharf push: --all-tags is not supported yet; push one tag at a time")
    session, ref = current(), parse_ref(name)
    if ref.digest:
        raise CLIError("wharf push: push a tag, not a digest reference")
    if ref.tag is None:
        ref = ref.with_default_tag()
        if not quiet:
            click.echo("Using default tag: latest")
    messages = session.client().push(ref.familiar, ref.tag or "latest",
                                     _auth_header(session, ref.domain))
    _show(session, messages, quiet)
    if quiet:
        click.echo(ref.string)


def _write_atomically(target: Path, chunks: Iterable[bytes]) -> None:
    directory = target.resolve().parent
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            for chunk in chunks:
                handle.write(chunk)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        Path(tmp).replace(target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            Path(tmp).unlink()
        raise


def _umask() -> int:
    old = os.umask(0)
    os.umask(old)
    return old


@click.command("save")
@click.argument("images", nargs=-1, required=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write to a file, instead of STDOUT.")
def save_cmd(images: tuple[str, ...], output: Path | None) -> None:
    """Save one or more images to a tar archive (streamed to STDOUT by default)."""
    session = current()
    refuse_terminal(output, "save")
    write_tar(session.client().save(list(images)), output)


def refuse_terminal(output: Path | None, verb: str) -> None:
    """A tar is never written to a terminal (as docker save and podman volume export)."""
    if output is None and current().stdout_is_tty():
        raise CLIError(f"cowardly refusing to {verb} to a terminal. Use the -o flag or "
                       "redirect")


def write_tar(chunks: Iterable[bytes], output: Path | None) -> None:
    """A streamed tar to ``output`` (atomically: a reply cut short leaves no file) or to
    stdout."""
    if output is not None:
        _write_atomically(output, chunks)
        return
    out = sys.stdout.buffer
    for chunk in chunks:
        out.write(chunk)
    out.flush()


def input_chunks(source: str) -> Iterator[bytes]:
    """The bytes of ``source`` (a file, or ``-`` for stdin), read as sent."""
    if source == "-":
        return _read_chunks(sys.stdin.buffer)
    try:
        handle = Path(source).open("rb")  # noqa: SIM115 - closed by the context below
    except OSError as exc:
        raise CLIError(f"open {source}: {exc.strerror}") from exc
    click.get_current_context().call_on_close(handle.close)
    return _read_chunks(handle)


def _read_chunks(handle: IO[bytes]) -> Iterator[bytes]:
    while chunk := handle.read(CHUNK):
        yield chunk


@click.command("load")
@click.option("-i", "--input", "input_", type=click.File("rb"),
              help="Read from tar archive file, instead of STDIN.")
@click.option("-q", "--quiet", is_flag=True, help="Suppress the load output.")
def load_cmd(input_: IO[bytes] | None, quiet: bool) -> None:
    """Load an image from a tar archive or STDIN."""
    session = current()
    if input_ is None:
        if session.stdin_is_tty():
            raise CLIError("requested load from stdin, but stdin is empty")
        input_ = sys.stdin.buffer
    # docker asks for the quiet form whenever stdout is not a terminal
    quiet_wire = quiet or not session.stdout_is_tty()
    messages = session.client().load(_read_chunks(input_), quiet=quiet_wire)
    _show(session, messages, False)


@click.command("import")
@click.argument("source", metavar="file|URL|-")
@click.argument("repository", required=False, metavar="[REPOSITORY[:TAG]]")
@click.option("-c", "--change", "changes", multiple=True,
              help="Apply Dockerfile instruction to the created image.")
@click.option("-m", "--message", default="", help="Set commit message for imported image.")
@click.option("--platform", default="", help="Set platform if server is multi-platform capable.")
def import_cmd(source: str, repository: str | None, changes: tuple[str, ...], message: str,
               platform: str) -> None:
    """Import the contents from a tarball to create a filesystem image."""
    session = current()
    if repository:
        parse_ref(repository)  # refuse a bad name before sending the tarball
    body: Iterable[bytes] | str = source if source.startswith(("http://", "https://")) \
        else input_chunks(source)
    messages = session.client().import_image(body, repo=repository or "", message=message,
                                             changes=list(changes), platform=platform)
    _show(session, messages, False)

