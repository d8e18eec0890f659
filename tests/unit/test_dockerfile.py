"""The Dockerfile front end: parser directives, comments, continuations, instructions and
their checks, and build stages, against the Dockerfile reference's examples and Docker's
messages."""

from __future__ import annotations

import pytest

from wharf.daemon.core.build.dockerfile import Dockerfile, parse, parse_trigger
from wharf.daemon.core.build.instructions import (
    Add,
    Arg,
    Cmd,
    Copy,
    Entrypoint,
    Env,
    Expose,
    From,
    Healthcheck,
    Instruction,
    Label,
    Maintainer,
    Onbuild,
    Run,
    Shell,
    StopSignal,
    User,
    Volume,
    Workdir,
)
from wharf.daemon.core.build.stages import (
    host_platform,
    normalize_platform,
    resolve_stage,
    resolve_workdir,
    stages,
)
from wharf.dockerapi import go_duration
from wharf.errors import InvalidArgument

HOST = "linux/amd64"


def after_from(text: str) -> Instruction:
    """The one instruction written after ``FROM alpine``."""
    parsed = parse(f"FROM alpine\n{text}\n")
    assert len(parsed.instructions) == 2, parsed.instructions
    return parsed.instructions[1]


def failure(text: str) -> str:
    with pytest.raises(InvalidArgument) as caught:
        stages(parse(text), platform=HOST)
    return caught.value.message


# --- parser directives -----------------------------------------------------------------------

WINDOWS = """# escape=`

FROM microsoft/nanoserver
COPY testfile.txt c:\\
RUN dir c:\\
"""


def test_escape_backtick_keeps_windows_paths() -> None:
    # The reference's escape example: with `, a trailing \ is a path, not a continuation.
    parsed = parse(WINDOWS)
    assert parsed.escape == "`"
    _, copy, run = parsed.instructions
    assert isinstance(copy, Copy) and copy.sources == ("testfile.txt",) and copy.dest == "c:\\"
    assert isinstance(run, Run) and run.command == ("dir c:\\",) and run.line == 5


def test_escape_backtick_continues_lines() -> None:
    parsed = parse("# escape=`\nFROM a\nRUN New-Item `\n  C:\\Example\n")
    assert parsed.instructions[1].args == ("New-Item   C:\\Example",)


def test_default_escape_backslash_before_newline() -> None:
    # Without the directive a lone trailing \ continues the line; an escaped one (\\) does
    # not (buildkit's lineContinuationRegex, which the reference's older example predates).
    parsed = parse("FROM microsoft/nanoserver\nCOPY testfile.txt c:\\\\\nRUN dir c:\\\n")
    copy, run = parsed.instructions[1:]
    assert isinstance(copy, Copy) and copy.dest == "c:\\\\"
    assert isinstance(run, Run) and run.command == ("dir c:",)


@pytest.mark.parametrize(
    "text",
    [
        "# About my dockerfile\n# escape=`\nFROM a\nRUN x \\\ny\n",  # after a plain comment
        "FROM a\n# escape=`\nRUN x \\\ny\n",  # after an instruction
        "# unknowndirective=value\n# escape=`\nFROM a\nRUN x \\\ny\n",  # after an unknown one
        "\n# escape=`\nFROM a\nRUN x \\\ny\n",  # after an empty line
    ],
)
def test_directives_only_at_the_very_top(text: str) -> None:
    parsed = parse(text)
    assert parsed.escape == "\\"
    assert parsed.instructions[-1].args == ("x y",)


def test_a_directive_cannot_continue() -> None:
    # "Invalid due to line continuation": the first line is a comment, the second is not.
    with pytest.raises(InvalidArgument) as caught:
        parse("# direc \\\ntive=value\nFROM a\n")
    assert caught.value.message == \
        "dockerfile parse error on line 2: unknown instruction: tive=value"


@pytest.mark.parametrize(
    "line", ["#escape=`", "# escape =`", "#\tescape= `", "# escape = `", "#\t  eScApE=`"])
def test_directive_whitespace_and_case(line: str) -> None:
    assert parse(f"{line}\nFROM a\n").escape == "`"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("# escape=`\n# escape=\\\nFROM a\n",
         "dockerfile parse error on line 2: only one escape parser directive can be used"),
        ("# escape=x\nFROM a\n",
         "dockerfile parse error on line 1: invalid escape token 'x' does not match ` or \\"),
        ("# syntax=a\n# syntax=b\nFROM a\n",
         "dockerfile parse error on line 2: only one syntax parser directive can be used"),
    ],
)
def test_directive_errors(text: str, message: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        parse(text)
    assert caught.value.message == message


def test_syntax_is_recorded_and_ignored_with_a_note() -> None:
    parsed = parse("\ufeff# syntax=docker/dockerfile:1\n# check=skip=all\nFROM a\n")
    assert parsed.syntax == "docker/dockerfile:1"
    assert parsed.directives == (("syntax", "docker/dockerfile:1"), ("check", "skip=all"))
    assert "docker/dockerfile:1 is ignored" in parsed.warnings[0]
    assert "check=skip=all is ignored" in parsed.warnings[1]
    assert parse("# unknowndirective=value\n# syntax=value\nFROM a\n").syntax is None


# --- comments, whitespace, continuations --------------------------------------------------------

@pytest.mark.parametrize(
    ("text", "args"),
    [
        ("RUN echo hello \\\n# comment\nworld", ("echo hello world",)),
        ("RUN echo hello \\\nworld", ("echo hello world",)),
        ("RUN echo 'we are running some # of cool things'",
         ("echo 'we are running some # of cool things'",)),
        ('RUN echo "\\\n     hello\\\n     world"', ('echo "     hello     world"',)),
        ("    RUN echo hello", ("echo hello",)),
        ("RUN a \\\n    # indented comment\n  b", ("a   b",)),
        ("RUN a \\  \n b", ("a  b",)),  # blanks after the escape still continue
    ],
)
def test_comments_and_continuations(text: str, args: tuple[str, ...]) -> None:
    assert after_from(text).args == args


def test_leading_whitespace_and_comment_lines_are_ignored() -> None:
    parsed = parse("        # this is a comment-line\n    FROM a\nRUN echo world\n")
    assert [i.keyword for i in parsed.instructions] == ["FROM", "RUN"]
    assert parsed.instructions[0].line == 2


def test_a_comment_does_not_continue() -> None:
    parsed = parse("FROM a\n# comment \\\nRUN x\n")
    assert parsed.instructions[1].line == 3 and parsed.instructions[1].args == ("x",)


def test_line_numbers_and_original_text() -> None:
    parsed = parse("FROM a\r\n\r\nRUN one \\\r\n  two \\\r\n\r\n  three\r\nUSER x\r\n")
    run, user = parsed.instructions[1:]
    assert (run.line, run.end_line, user.line) == (3, 6, 7)
    assert run.original == "RUN one   two   three"
    assert parsed.warnings == (
        "[WARNING]: Empty continuation line found in:\n    RUN one   two   three",
        "[WARNING]: Empty continuation lines will become errors in a future release.")


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n", "# syntax=x\n"])
def test_a_file_with_no_instructions(text: str) -> None:
    with pytest.raises(InvalidArgument, match="file with no instructions"):
        parse(text)


def test_keywords_are_case_insensitive() -> None:
    parsed = parse("from alpine AS Build\nrun echo hi\nCoPy a b\n")
    assert [i.keyword for i in parsed.instructions] == ["FROM", "RUN", "COPY"]
    assert isinstance(parsed.instructions[0], From)
    assert parsed.instructions[0].stage_name == "build"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("FROM a\nRUN x\nFRM b\n",
         "dockerfile parse error on line 3: unknown instruction: FRM (did you mean FROM?)"),
        ("FROM a\n\nbogus x\n", "dockerfile parse error on line 3: unknown instruction: bogus"),
        ("FROM a\nONBUILD XYZZY x\n",
         "dockerfile parse error on line 2: unknown instruction: XYZZY"),
    ],
)
def test_unknown_instruction_names_its_line(text: str, message: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        parse(text)
    assert caught.value.message == message


# --- exec (JSON) form and shell form ------------------------------------------------------------

@pytest.mark.parametrize(
    ("text", "kind", "command", "json_form"),
    [
        ('CMD ["/bin/sh", "-c", "echo $HOME"]', Cmd, ("/bin/sh", "-c", "echo $HOME"), True),
        ('RUN [ "echo", "$HOME" ]', Run, ("echo", "$HOME"), True),
        ("RUN echo $HOME", Run, ("echo $HOME",), False),
        # Not valid JSON (\w): the shell form, as the reference warns.
        ('RUN ["c:\\windows\\system32\\tasklist.exe"]', Run,
         ('["c:\\windows\\system32\\tasklist.exe"]',), False),
        ('RUN ["c:\\\\windows\\\\system32\\\\tasklist.exe"]', Run,
         ("c:\\windows\\system32\\tasklist.exe",), True),
        ("CMD ['single', 'quotes']", Cmd, ("['single', 'quotes']",), False),
        ('CMD ["a"] trailing', Cmd, ('["a"] trailing',), False),
        ("CMD [NaN]", Cmd, ("[NaN]",), False),
        ("ENTRYPOINT []", Entrypoint, (), True),
        ("ENTRYPOINT exec top -b", Entrypoint, ("exec top -b",), False),
        ("CMD", Cmd, (), False),
    ],
)
def test_exec_and_shell_forms(text: str, kind: type[Instruction], command: tuple[str, ...],
                              json_form: bool) -> None:
    instruction = after_from(text)
    assert isinstance(instruction, kind)
    assert instruction.command == command  # type: ignore[attr-defined]
    assert instruction.json_form is json_form
    assert instruction.prepend_shell is not json_form  # type: ignore[attr-defined]


# --- instructions and Docker's messages for what is wrong ---------------------------------------

@pytest.mark.parametrize(
    ("text", "pairs"),
    [
        ('ENV MY_NAME="John Doe"', (("MY_NAME", '"John Doe"'),)),
        ("ENV MY_DOG=Rex\\ The\\ Dog", (("MY_DOG", "Rex\\ The\\ Dog"),)),
        ('ENV MY_NAME="John Doe" MY_DOG=Rex\\ The\\ Dog \\\n    MY_CAT=fluffy',
         (("MY_NAME", '"John Doe"'), ("MY_DOG", "Rex\\ The\\ Dog"), ("MY_CAT", "fluffy"))),
        ("ENV MY_VAR my-value", (("MY_VAR", "my-value"),)),
        ("ENV ONE TWO= THREE=world", (("ONE", "TWO= THREE=world"),)),
        ("ENV a='x y'=z b=", (("a", "'x y'=z"), ("b", ""))),
    ],
)
def test_env_forms(text: str, pairs: tuple[tuple[str, str], ...]) -> None:
    instruction = after_from(text)
    assert isinstance(instruction, Env) and instruction.pairs == pairs


def test_label_pairs_keep_quotes_until_expansion() -> None:
    instruction = after_from('LABEL "com.example.vendor"="ACME Incorporated" \\\n'
                             '      multi.label1="value1" other=value3')
    assert isinstance(instruction, Label)
    assert instruction.pairs == (('"com.example.vendor"', '"ACME Incorporated"'),
                                 ("multi.label1", '"value1"'), ("other", "value3"))


def test_arg_names_and_defaults() -> None:
    instruction = after_from('ARG user1 buildno=1 empty= quoted="a b"')
    assert isinstance(instruction, Arg)
    assert instruction.pairs == (("user1", None), ("buildno", "1"), ("empty", ""),
                                 ("quoted", '"a b"'))


def test_copy_flags_sources_and_destination() -> None:
    instruction = after_from('COPY --from=build --chown="55:my group" --chmod=644 a b* /dst/')
    assert isinstance(instruction, Copy)
    assert (instruction.from_, instruction.chown, instruction.chmod, instruction.mode) == (
        "build", "55:my group", "644", 0o644)
    assert (instruction.sources, instruction.dest) == (("a", "b*"), "/dst/")


@pytest.mark.parametrize(
    ("text", "sources", "dest"),
    [
        ('COPY ["a file", "/path with/"]', ("a file",), "/path with/"),
        ("ADD --chown=1:2 https://example.com/x.tgz /opt/", ("https://example.com/x.tgz",),
         "/opt/"),
        ("COPY --link=false a b", ("a",), "b"),
        ("COPY --chmod=$MODE . .", (".",), "."),
    ],
)
def test_copy_and_add_forms(text: str, sources: tuple[str, ...], dest: str) -> None:
    instruction = after_from(text)
    assert isinstance(instruction, Copy | Add)
    assert (instruction.sources, instruction.dest) == (sources, dest)
    assert instruction.mode is None


def test_healthcheck_options_and_forms() -> None:
    check = after_from("HEALTHCHECK --interval=1m30s --timeout=3s --start-period=5s \\\n"
                       '  --start-interval=500ms --retries=3 CMD ["curl", "-f", "http://x/"]')
    assert isinstance(check, Healthcheck)
    assert check.test == ("CMD", "curl", "-f", "http://x/")
    assert (check.interval, check.timeout, check.start_period, check.start_interval,
            check.retries) == (90_000_000_000, 3_000_000_000, 5_000_000_000, 500_000_000, 3)
    shell = after_from("HEALTHCHECK --interval=5m --timeout=3s \\\n"
                       "  CMD curl -f http://localhost/ || exit 1")
    assert isinstance(shell, Healthcheck)
    assert shell.test == ("CMD-SHELL", "curl -f http://localhost/ || exit 1")
    none = after_from("healthcheck none")
    assert isinstance(none, Healthcheck) and none.test == ("NONE",)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", 30 * 10**9), ("1m30s", 90 * 10**9), ("1.5h", 5400 * 10**9),
        ("300ms", 300 * 10**6), ("2h45m", 9900 * 10**9), ("1us", 1000), ("1\u00b5s", 1000),
        ("0", 0), ("-1.5s", -1_500_000_000), (".5s", 500_000_000), ("1.s", 10**9),
    ],
)
def test_go_durations(text: str, expected: int) -> None:
    assert go_duration(text) == expected


def test_onbuild_trigger_is_parsed_and_kept_as_written() -> None:
    instruction = after_from("ONBUILD ADD . /app/src")
    assert isinstance(instruction, Onbuild)
    assert isinstance(instruction.trigger, Add) and instruction.trigger.dest == "/app/src"
    assert instruction.expression == "ADD . /app/src"
    run = after_from("onbuild   RUN /usr/local/bin/python-build --dir /app/src")
    assert isinstance(run, Onbuild) and run.expression == \
        "RUN /usr/local/bin/python-build --dir /app/src"
    trigger = parse_trigger("RUN /usr/local/bin/python-build --dir /app/src")
    assert isinstance(trigger, Run) and trigger.line == 1


@pytest.mark.parametrize(
    ("text", "kind", "value"),
    [
        ('SHELL ["powershell", "-command"]', Shell, ("powershell", "-command")),
        ('VOLUME ["/var/www", "/var/log/apache2"]', Volume, ("/var/www", "/var/log/apache2")),
        ("VOLUME /var/log /var/db", Volume, ("/var/log", "/var/db")),
        ("EXPOSE 80/udp 443", Expose, ("80/udp", "443")),
        ("WORKDIR /path/to/workdir", Workdir, "/path/to/workdir"),
        ("USER patrick:staff", User, "patrick:staff"),
        ("STOPSIGNAL SIGKILL", StopSignal, "SIGKILL"),
        ("MAINTAINER SvenDowideit@home.org.au", Maintainer, "SvenDowideit@home.org.au"),
    ],
)
def test_simple_instructions(text: str, kind: type[Instruction], value: object) -> None:
    instruction = after_from(text)
    assert isinstance(instruction, kind)
    field = {Shell: "shell", Volume: "paths", Expose: "ports", Workdir: "path", User: "user",
             StopSignal: "signal", Maintainer: "name"}[kind]
    assert getattr(instruction, field) == value


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("FROM", "FROM requires either one or three arguments"),
        ("FROM a AS", "FROM requires either one or three arguments"),
        ("FROM a AS b c", "FROM requires either one or three arguments"),
        ("FROM a AS 1st", 'invalid name for build stage: "1st", name can\'t start with a '
                          "number or contain symbols"),
        ("FROM --bogus=1 a", "Unknown flag: bogus"),
        ("ENV", "ENV requires at least one argument"),
        ("ENV foo", "ENV must have two arguments"),
        ("ENV a=1 b", "Syntax error - can't find = in \"b\". Must be of the form: name=value"),
        ("ENV =x", "ENV names can not be blank"),
        ("LABEL", "LABEL requires at least one argument"),
        ("ARG", "ARG requires at least one argument"),
        ("ARG =x", "ARG names can not be blank"),
        ("COPY onlyone", "COPY requires at least two arguments, but only one was provided. "
                         "Destination could not be determined"),
        ("ADD", "ADD requires at least two arguments, but only one was provided. "
                "Destination could not be determined"),
        ("COPY --from=a --from=b x y", "Duplicate flag specified: from"),
        ("COPY --from build x y", "Missing a value on flag: from"),
        ("COPY --link a b", "COPY --link is not supported by wharf's builder"),
        ("COPY --link=maybe a b", "Expecting boolean value for flag link, not: maybe"),
        ("ADD --from=x a b", "Unknown flag: from"),
        ("ADD --checksum=sha256:00 a b", "Unknown flag: checksum"),
        ("COPY --chmod=999 a b",
         "invalid chmod parameter: 999. it should be octal string and between 0 and 07777"),
        ("COPY --chmod=u+x a b", "symbolic modes are not supported"),
        ("RUN", "RUN requires at least one argument"),
        ("RUN --mount=type=cache,target=/root/.cache go build", "Unknown flag: mount"),
        ('CMD ["a", 1]', "when using JSON array syntax, arrays must be comprised of strings only"),
        ("SHELL powershell -command", "SHELL requires the arguments to be in JSON form"),
        ("SHELL []", "SHELL requires at least one argument"),
        ("EXPOSE", "EXPOSE requires at least one argument"),
        ("VOLUME", "VOLUME requires at least one argument"),
        ('VOLUME [""]', "VOLUME specified can not be an empty string"),
        ("WORKDIR", "WORKDIR requires exactly one argument"),
        ("USER", "USER requires exactly one argument"),
        ("STOPSIGNAL", "STOPSIGNAL requires exactly one argument"),
        ("MAINTAINER", "MAINTAINER requires exactly one argument"),
        ("HEALTHCHECK", "HEALTHCHECK requires at least one argument"),
        ("HEALTHCHECK NONE CMD x", "HEALTHCHECK NONE takes no arguments"),
        ("HEALTHCHECK CMD", "Missing command after HEALTHCHECK CMD"),
        ("HEALTHCHECK FOO x", 'Unknown type "FOO" in HEALTHCHECK (try CMD)'),
        ("HEALTHCHECK --interval=500us CMD x", 'Interval "interval" cannot be less than 1ms'),
        ("HEALTHCHECK --timeout=30 CMD x", 'time: missing unit in duration "30"'),
        ("HEALTHCHECK --timeout=3x CMD x", 'time: unknown unit "x" in duration "3x"'),
        ("HEALTHCHECK --interval=abc CMD x", 'time: invalid duration "abc"'),
        ("HEALTHCHECK --retries=-1 CMD x", "--retries cannot be negative (-1)"),
        ("HEALTHCHECK --retries=many CMD x", 'parsing "many": invalid syntax'),
        ("HEALTHCHECK --bogus=1 CMD x", "Unknown flag: bogus"),
        ("ONBUILD", "ONBUILD requires at least one argument"),
        ("ONBUILD ONBUILD RUN x", "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"),
        ("ONBUILD FROM x", "FROM isn't allowed as an ONBUILD trigger"),
        ("ONBUILD maintainer x", "MAINTAINER isn't allowed as an ONBUILD trigger"),
        ("RUN <<EOF", "heredocs are not supported"),
        ("COPY <<EOF greeting.txt", "heredocs are not supported"),
        ("ONBUILD RUN cat <<-EOT", "heredocs are not supported"),
    ],
)
def test_errors_name_the_line(text: str, message: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        parse(f"FROM alpine\n\n{text}\n")
    assert caught.value.message.startswith("dockerfile parse error on line 3: ")
    assert message in caught.value.message


@pytest.mark.parametrize(
    "command", ['cat <<< "$x" && echo $((1<<2))', 'echo "quoted <<EOF"', "echo 'a <<b'"])
def test_what_is_not_a_heredoc(command: str) -> None:
    assert after_from(f"RUN {command}").args == (command,)


# --- stages ---------------------------------------------------------------------------------

MULTI = """\
ARG  CODE_VERSION=latest
FROM ubuntu AS base
RUN apt-get update && apt-get install -y shared-tooling

FROM base AS dev
RUN apt-get install -y dev-tooling

FROM extras:${CODE_VERSION}
COPY --from=base /app /app

FROM scratch AS Final
COPY --from=2 /x /x
"""


def test_multi_stage_names_indexes_and_bases() -> None:
    plan = stages(parse(MULTI), platform=HOST)
    assert [(s.index, s.name, s.base, s.base_stage) for s in plan.stages] == [
        (0, "base", "ubuntu", None), (1, "dev", "base", 0),
        (2, "", "extras:latest", None), (3, "final", "scratch", None)]
    assert plan.stages[3].scratch and not plan.stages[1].scratch
    assert [i.keyword for i in plan.stages[0].instructions] == ["RUN"]
    assert plan.stages[1].source.line == 5
    assert [a.pairs for a in plan.global_args] == [(("CODE_VERSION", "latest"),)]


def test_global_args_take_build_args_and_target_cuts_stages() -> None:
    plan = stages(parse(MULTI), {"CODE_VERSION": "1.2"}, target="DEV", platform=HOST)
    assert [s.name for s in plan.stages] == ["base", "dev"]
    assert stages(parse(MULTI), {"CODE_VERSION": None}, platform=HOST).stages[2].base == \
        "extras:latest"
    with pytest.raises(InvalidArgument, match="failed to reach build target nope in Dockerfile"):
        stages(parse(MULTI), target="nope", platform=HOST)


def test_copy_from_resolves_names_and_indexes() -> None:
    built = stages(parse(MULTI), platform=HOST).stages
    assert resolve_stage(built, 2, "BASE") == 0
    assert resolve_stage(built, 3, "2") == 2
    assert resolve_stage(built, 2, "nginx:latest") is None
    assert resolve_stage(built, 0, "dev") is None  # a later stage's name is an image
    with pytest.raises(InvalidArgument, match="refers to current build stage"):
        resolve_stage(built, 1, "1")
    with pytest.raises(InvalidArgument, match="index out of bounds"):
        resolve_stage(built, 1, "3")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("RUN echo hi\nFROM a\n", "dockerfile parse error on line 1: no build stage in current "
                                  "context"),
        ("ARG A\nENV B=1\nFROM a\n", "dockerfile parse error on line 2: no build stage in "
                                     "current context"),
        ("ARG A=1\n", "dockerfile contains no stages to build"),
        ("FROM a AS x\nFROM b AS X\n", "dockerfile parse error on line 2: x stage name "
                                       "already used"),
        ("ARG EMPTY\nFROM $EMPTY\n", "dockerfile parse error on line 2: base name ($EMPTY) "
                                     "should not be blank"),
        ("FROM --platform=linux/arm64 a\n", "dockerfile parse error on line 1: FROM "
         "--platform=linux/arm64 is not supported: wharf builds for the host platform "
         "(linux/amd64) only"),
        ("FROM --platform=plan9/x a\n", "unknown operating system or architecture"),
        ("FROM busybox:${V\n", 'failed to process "busybox:${V": syntax error: missing \'}\''),
    ],
)
def test_stage_errors(text: str, message: str) -> None:
    assert message in failure(text)


@pytest.mark.parametrize(
    "value", ["linux/amd64", "linux/x86_64", "amd64", "linux", "$BUILDPLATFORM",
              "${TARGETOS}/${TARGETARCH}"])
def test_platform_of_the_host_is_accepted(value: str) -> None:
    plan = stages(parse(f"FROM --platform={value} alpine\n"), platform=HOST)
    assert plan.stages[0].platform == HOST


def test_platform_names() -> None:
    assert host_platform("x86_64") == "linux/amd64"
    assert host_platform("aarch64") == "linux/arm64"
    assert host_platform("armv7l") == "linux/arm/v7"
    assert normalize_platform("linux/arm64/v8", "linux/arm64") == "linux/arm64"
    assert normalize_platform("arm", HOST) == "linux/arm/v7"


def test_workdir_resolution() -> None:
    # The reference: WORKDIR /a, WORKDIR b, WORKDIR c gives /a/b/c.
    current = ""
    for step in ("/a", "b", "c"):
        current = resolve_workdir(current, step)
    assert current == "/a/b/c"
    assert resolve_workdir("/a", "../x/./y/") == "/x/y"


def test_dockerfile_value() -> None:
    parsed = parse("FROM a\n")
    assert parsed == Dockerfile(parsed.instructions, "\\", None, ())
