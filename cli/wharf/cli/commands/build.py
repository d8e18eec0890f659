"""``wharf build`` (also ``wharf image build``): an image from a Dockerfile and a context.

The daemon's classic builder does the work (``POST /build``, the Docker protocol); this module
checks the flags, has the context made (``buildcontext``, imported when a build runs) and prints
what the docker CLI prints for that builder: ``Sending build context to Docker daemon  <size>``
once the context is sent (redrawn as it grows on a terminal), then the daemon's ``stream``
texts as they come. The image ID of the ``aux`` message goes to ``--iidfile``. With ``-q``
everything is held back and only the daemon's answer (the image ID) is printed; when the build
fails, what was held back goes to stderr before the error. A failed build exits with the
error's ``code`` (the failed RUN's exit status), or 1, as the docker CLI does.
"""

from __future__ import annotations

import base64
import io
import json
import os
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import TextIO

import click

from wharf.cli import progress
from wharf.cli.buildoptions import BuildOptions
from wharf.cli.client import JSONObject
from wharf.cli.commands.createopts import FlagCommand
from wharf.cli.config import ConfigFile
from wharf.cli.failure import CLIError, FlagError
from wharf.cli.formatting import human_size
from wharf.cli.session import Session, current
from wharf.errors import InvalidArgument, WharfError
from wharf.reference import parse

UPLOAD = "Sending build context to Docker daemon"
_TTY_EVERY = 512 * 1024  # bytes between two redraws of the upload line (moby's progress reader)
_TRUE = ("1", "t", "T", "TRUE", "true", "True")  # Go's strconv.ParseBool
_FALSE = ("0", "f", "F", "FALSE", "false", "False")


class BuildCommand(FlagCommand):
    """docker's flags: a boolean flag also takes a value (``--rm=false``, ``--pull=true``), and
    a flag error is printed with the ``--help`` hint and exits 125."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            values = self._bool_values(args)
        except FlagError as exc:
            raise exc.hinted(ctx.command_path) from exc
        return super().parse_args(ctx, values)

    def _bool_values(self, args: list[str]) -> list[str]:
        flags = {name: opt for opt in self.params if isinstance(opt, click.Option) and opt.is_flag
                 for name in opt.opts if name.startswith("--")}
        out: list[str] = []
        for index, arg in enumerate(args):
            if arg == "--":
                return out + args[index:]
            name, sep, value = arg.partition("=")
            option = flags.get(name) if sep else None
            if option is None:
                out.append(arg)
            elif value in _TRUE:
                out.append(name)
            elif value in _FALSE:
                out += option.secondary_opts[:1]  # off: the default unless there is a --no-…
            else:
                raise FlagError(f'invalid argument "{value}" for "{name}" flag: '
                                f'strconv.ParseBool: parsing "{value}": invalid syntax')
        return out


def check_tags(tags: Iterable[str]) -> None:
    """Each ``-t`` must be an image reference (checked before anything is sent)."""
    for tag in tags:
        try:
            parse(tag)
        except InvalidArgument as exc:
            raise FlagError(f'invalid argument "{tag}" for "-t, --tag" flag: {exc}') from exc


def build_args(values: Iterable[str], environ: Mapping[str, str]) -> dict[str, str | None]:
    """``--build-arg`` as the docker CLI reads it: ``K=V``; ``K`` alone takes K's value from
    the environment, or null when it is unset there. The last one of a name wins."""
    out: dict[str, str | None] = {}
    for value in values:
        name, sep, text = value.partition("=")
        if not name:
            raise FlagError(f'invalid argument "{value}" for "--build-arg" flag: invalid '
                            f"environment variable: {value}")
        out[name] = text if sep else environ.get(name)
    return out


def labels(values: Iterable[str]) -> dict[str, str]:
    """``--label K=V`` (``K`` alone: an empty value)."""
    out: dict[str, str] = {}
    for value in values:
        name, _, text = value.partition("=")
        if not name.strip():
            raise FlagError(f'invalid argument "{value}" for "--label" flag: invalid label '
                            f"'{value}': empty name")
        out[name] = text
    return out


def registry_config(config: ConfigFile) -> str:
    """``X-Registry-Config``: every stored credential by registry, base64url JSON, as the
    docker CLI sends them for the FROM images (``e30=`` when there are none)."""
    configs: dict[str, dict[str, str]] = {}
    for key in config.auths:
        creds = config.credentials(key)
        if creds is not None:
            configs[key] = creds.auth_config()
    return base64.urlsafe_b64encode(json.dumps(configs).encode()).decode()


class Upload:
    """Counts the context's bytes as they are sent and prints docker's upload line: on a
    terminal as it grows, and once (``\\r\\r\\n``-ended, as docker) when all is sent."""

    def __init__(self, out: TextIO, tty: bool) -> None:
        self.out, self.tty = out, tty
        self.sent = self.shown = 0

    def count(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        for chunk in chunks:
            self.sent += len(chunk)
            if self.tty and self.sent - self.shown >= _TTY_EVERY:
                self._line("\r")
            yield chunk
        self._line("\r\r\n")

    def _line(self, end: str) -> None:
        self.out.write(f"{UPLOAD} {human_size(self.sent):>8}{end}")
        self.out.flush()
        self.shown = self.sent


class Outcome:
    """What the message stream said besides its text: the image ID, the error's exit code."""

    def __init__(self) -> None:
        self.image_id = ""
        self.code = 1

    def watch(self, messages: Iterable[JSONObject]) -> Iterator[JSONObject]:
        for message in messages:
            aux, detail = message.get("aux"), message.get("errorDetail")
            if isinstance(aux, Mapping) and aux.get("ID"):
                self.image_id = str(aux["ID"])
            if isinstance(detail, Mapping) and isinstance(detail.get("code"), int):
                self.code = detail["code"] or 1
            yield message


def run_build(session: Session, body: Iterable[bytes], options: BuildOptions) -> str:
    """Send the build, print its output as the docker CLI does; the image ID."""
    quiet = options.quiet
    tty = session.stdout_is_tty() and not quiet
    held_upload, held_output = io.StringIO(), io.StringIO()
    upload = Upload(held_upload if quiet else sys.stdout, tty)
    outcome = Outcome()
    try:
        messages = session.client().build(upload.count(body), options,
                                          registry_config(session.config()))
        progress.display(outcome.watch(messages), held_output if quiet else sys.stdout, tty)
    except (CLIError, WharfError) as exc:
        if quiet:
            sys.stderr.write(held_upload.getvalue() + held_output.getvalue())
        if isinstance(exc, CLIError):
            raise CLIError(exc.format_message(), exit_code=outcome.code) from exc
        raise
    if not quiet:
        return outcome.image_id
    text = held_output.getvalue() or (outcome.image_id + "\n" if outcome.image_id else "")
    sys.stdout.write(text)
    return outcome.image_id or text.strip()


@click.command("build", cls=BuildCommand)
@click.argument("context", metavar="PATH | URL | -")
@click.option("-t", "--tag", "tags", multiple=True, metavar="NAME[:TAG]",
              help="Name and optionally a tag in the 'name:tag' format (repeatable).")
@click.option("-f", "--file", "dockerfile", default="", metavar="PATH",
              help="Name of the Dockerfile (default is 'PATH/Dockerfile'); relative to the "
              "current directory; '-' reads it from stdin.")
@click.option("--build-arg", "build_arg", multiple=True, metavar="KEY[=VALUE]",
              help="Set build-time variables (KEY alone takes its value from the environment).")
@click.option("--target", default="", metavar="STAGE",
              help="Set the target build stage to build.")
@click.option("--no-cache", is_flag=True, help="Do not use cache when building the image.")
@click.option("--pull", is_flag=True, help="Always attempt to pull a newer version of the image.")
@click.option("--label", "label", multiple=True, metavar="KEY[=VALUE]",
              help="Set metadata for an image.")
@click.option("--network", default="", metavar="MODE",
              help="Set the networking mode for the RUN instructions during build (the "
              "daemon's default when not given).")
@click.option("-q", "--quiet", is_flag=True,
              help="Suppress the build output and print image ID on success.")
@click.option("--rm/--no-rm", default=True,
              help="Remove intermediate containers after a successful build (default true; "
              "--rm=false or --no-rm keeps them).")
@click.option("--force-rm", is_flag=True, help="Always remove intermediate containers.")
@click.option("--progress", "progress_mode", default="auto", show_default=True,
              type=click.Choice(["auto", "plain", "tty"]),
              help="Type of progress output; the classic builder's output is plain in any case.")
@click.option("--iidfile", metavar="FILE", help="Write the image ID to the file.")
def build_cmd(*, context: str, tags: tuple[str, ...], dockerfile: str,
              build_arg: tuple[str, ...], target: str, no_cache: bool, pull: bool,
              label: tuple[str, ...], network: str, quiet: bool, rm: bool, force_rm: bool,
              progress_mode: str, iidfile: str | None) -> None:
    """Build an image from a Dockerfile.

    PATH is the context directory (its .dockerignore applies; the Dockerfile and .dockerignore
    are always sent). URL is an http(s) address of a context archive or of a Dockerfile. With
    - the context archive (plain, gzip, bzip2, xz or zstd) or a Dockerfile alone is read from
    stdin. The daemon's classic builder runs the Dockerfile; its output is printed as it comes.
    """
    from wharf.cli import buildcontext  # noqa: PLC0415 - lazy: keeps `wharf --help` fast

    check_tags(tags)
    options = BuildOptions(tags=tags, build_args=build_args(build_arg, os.environ),
                           labels=labels(label), target=target, network=network,
                           nocache=no_cache, pull=pull, quiet=quiet, rm=rm, forcerm=force_rm)
    if iidfile:
        try:
            Path(iidfile).unlink(missing_ok=True)
        except OSError as exc:
            raise CLIError(f"Removing image ID file: {exc}") from exc
    prepared = buildcontext.prepare(context, dockerfile, sys.stdin.buffer)
    image_id = run_build(current(), prepared.body,
                         replace(options, dockerfile=prepared.dockerfile))
    if iidfile:
        _write_iidfile(Path(iidfile), image_id)


def _write_iidfile(path: Path, image_id: str) -> None:
    if not image_id:
        raise CLIError(f"Server did not provide an image ID. Cannot write {path}")
    try:
        path.write_text(image_id)
    except OSError as exc:
        raise CLIError(f"writing the image ID to {path}: {exc}") from exc
