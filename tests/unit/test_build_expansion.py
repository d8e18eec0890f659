"""Variable expansion in a Dockerfile: Docker's shell-word rules, where they apply, and how
build args, ARG and ENV scope the variables (the reference's "Environment replacement" and
ARG sections, moby's envVarTest table)."""

from __future__ import annotations

import pytest

from wharf.daemon.core.build.dockerfile import parse
from wharf.daemon.core.build.expansion import (
    BuildArgs,
    Scope,
    check_signal,
    expand,
    exposed_ports,
    unused_build_args_warning,
)
from wharf.daemon.core.build.instructions import (
    Add,
    Arg,
    Copy,
    Env,
    Expose,
    Instruction,
    Label,
    StopSignal,
    User,
    Volume,
    Workdir,
)
from wharf.daemon.core.build.shellwords import process_word, process_words
from wharf.daemon.core.build.stages import BuildPlan, stages
from wharf.errors import InvalidArgument

ENV = {"PWD": "/home", "SHELL": "bash", "KOREAN": "한국어", "EMPTY": ""}


# --- the shell-word rules (moby builder/dockerfile/shell/envVarTest) ---------------------------

@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("hello", "hello"), ("he'll'o", "hello"), ("he\\'llo", "he'llo"),
        ("abc\\tdef", "abctdef"), ('"abc\\tdef"', "abc\\tdef"), ('"abc\\\\tdef"', "abc\\tdef"),
        ("'abc\\tdef'", "abc\\tdef"), ("hello\\", "hello"), ("hello\\\\", "hello\\"),
        ('"hel\'lo"', "hel'lo"), ("'hello\\'", "hello\\"), ('"\'\'"', "''"),
        ("$.", "$."), ("$1", ""), ("he$1x", "hex"), ("he$.x", "he$.x"), ("he$pwd.", "he."),
        ("he$PWD", "he/home"), ("he\\$PWD", "he$PWD"), ("he\\\\$PWD", "he\\/home"),
        ('"he\\$PWD"', "he$PWD"), ('"he\\\\$PWD"', "he\\/home"), ("\\${}", "${}"),
        ("he${hi}xx", "hexx"), ("he${PWD}", "he/home"), ("he${XXX:-000}xx", "he000xx"),
        ("he${PWD:-000}xx", "he/homexx"), ("he${XXX:-$PWD}xx", "he/homexx"),
        ("he${XXX:-${PWD:-yyy}}xx", "he/homexx"), ("he${XXX:-${YYY:-yyy}}xx", "heyyyxx"),
        ("he${XXX:+${PWD}}xx", "hexx"), ("he${PWD:+${XXX}}xx", "hexx"),
        ("he${PWD:+${SHELL}}xx", "hebashxx"), ("he${XXX:+000}xx", "hexx"),
        ("he${PWD:+000}xx", "he000xx"), ("'he${XX}'", "he${XX}"), ('"he${PWD}"', "he/home"),
        ('"he\'$PWD\'"', "he'/home'"), ("'$PWD'", "$PWD"), ("'\\$PWD'", "\\$PWD"),
        ("'\"hello\"'", '"hello"'), ("he${PWD:+${PWD}:}xx", "he/home:xx"),
        ("he${XXX:-\\$PWD:}xx", "he$PWD:xx"), ("he${XXX:-\\${PWD}z}xx", "he${PWDz}xx"),
        ("안'녕'하세요", "안녕하세요"), ("안녕$KOREAN", "안녕한국어"), ("${aaa}}", "}"),
        ("${aaa:-bbb}}", "bbb}"), ("${aaa:-${bbb:-ccc}}", "ccc"), ("${aaa:-bbb {foo}", "bbb {foo"),
    ],
)
def test_shell_words(word: str, expected: str) -> None:
    assert process_word(word, ENV) == expected


@pytest.mark.parametrize(
    "word",
    ["he'llo", "he\\\\'llo", '"hello', '"hello\\"', "'hello", "${}", "he${}xx", "he${.}",
     "he${XXX:YYY}", "he${PWD", "he${PWD:=000}xx", "${{aaa}", "${aaa", "${aaa:-bbb",
     "${aaa:-bbb ${foo}", "${:}", "${:-bbb}", "${:+bbb}"],
)
def test_shell_word_errors(word: str) -> None:
    with pytest.raises(InvalidArgument, match=r"^failed to process "):
        process_word(word, ENV)


@pytest.mark.parametrize(
    ("word", "set_value", "empty", "unset"),
    [
        # The reference: ${variable:-word}, ${variable-word}, ${variable:+word}, ${variable+word}.
        ("${V:-word}", "value", "word", "word"),
        ("${V-word}", "value", "", "word"),
        ("${V:+word}", "word", "", ""),
        ("${V+word}", "word", "word", ""),
    ],
)
def test_modifiers_set_empty_unset(word: str, set_value: str, empty: str, unset: str) -> None:
    assert process_word(word, {"V": "value"}) == set_value
    assert process_word(word, {"V": ""}) == empty
    assert process_word(word, {}) == unset


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        # The reference's pattern examples, with str=foobarbaz.
        ("${str#f*b}", "arbaz"), ("${str##f*b}", "az"), ("${str%b*}", "foobar"),
        ("${str%%b*}", "foo"), ("${str/ba/fo}", "fooforbaz"), ("${str//ba/fo}", "fooforfoz"),
        ("${str#x*}", "foobarbaz"), ("${str/?a/_}", "foo_rbaz"), ("${str#\\*}", "foobarbaz"),
    ],
)
def test_pattern_modifiers(word: str, expected: str) -> None:
    assert process_word(word, {"str": "foobarbaz"}) == expected


@pytest.mark.parametrize(
    ("word", "env", "message"),
    [
        ("${V?}", {}, "V: is not allowed to be unset"),
        ("${V:?}", {"V": ""}, "V: is not allowed to be empty"),
        ("${V:?set V please}", {}, "V: set V please"),
    ],
)
def test_required_modifiers(word: str, env: dict[str, str], message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        process_word(word, env)
    assert process_word(word, {"V": "ok"}) == "ok"


def test_escape_token_backtick() -> None:
    assert process_word("c:\\dir\\`$X", {"X": "x"}, escape="`") == "c:\\dir\\$X"
    assert process_word('"a`"b"', {}, escape="`") == 'a"b'


def test_words_split_after_expansion() -> None:
    assert process_words('$P "a b" c\\ d', {"P": "80 443"}) == ["80", "443", "a b", "c d"]


# --- where Docker expands, in order ----------------------------------------------------------

def build(text: str, build_args: dict[str, str | None] | None = None,
          image_env: tuple[str, ...] = ()) -> list[Instruction]:
    """The last stage's instructions as the builder sees them, each expanded in turn."""
    plan = stages(parse(text), build_args, platform="linux/amd64")
    return walk(plan, image_env)


def walk(plan: BuildPlan, image_env: tuple[str, ...] = ()) -> list[Instruction]:
    scope = Scope.start(plan.build_args, image_env)
    out = []
    for instruction in plan.stages[-1].instructions:
        effective = expand(instruction, scope.variables(), plan.escape)
        out.append(effective)
        scope = scope.apply(effective)
    return out


def test_the_references_environment_replacement_example() -> None:
    workdir, add, copy = build("FROM busybox\nENV FOO=/bar\nWORKDIR ${FOO}\nADD . $FOO\n"
                               "COPY \\$FOO /quux\n")[1:]
    assert isinstance(workdir, Workdir) and workdir.path == "/bar"
    assert isinstance(add, Add) and add.sources == (".",) and add.dest == "/bar"
    assert isinstance(copy, Copy) and copy.sources == ("$FOO",) and copy.dest == "/quux"


def test_same_values_for_the_whole_instruction() -> None:
    # ENV abc=hello / ENV abc=bye def=$abc / ENV ghi=$abc: def is hello, ghi is bye.
    _, second, third = build("FROM a\nENV abc=hello\nENV abc=bye def=$abc\nENV ghi=$abc\n")
    assert isinstance(second, Env) and second.pairs == (("abc", "bye"), ("def", "hello"))
    assert isinstance(third, Env) and third.pairs == (("ghi", "bye"),)


def test_env_then_workdir_in_order() -> None:
    _, workdir = build("FROM a\nENV A=1\nWORKDIR /$A\n")
    assert isinstance(workdir, Workdir) and workdir.path == "/1"
    missing = build("FROM a\nENV DIRPATH=/path\nWORKDIR $DIRPATH/$DIRNAME\n")[1]
    assert isinstance(missing, Workdir) and missing.path == "/path/"


def test_quotes_in_env_and_label_values() -> None:
    env, label = build('FROM a\nENV MY_NAME="John Doe" MY_DOG=Rex\\ The\\ Dog\n'
                       'LABEL "com.example.vendor"="ACME $MY_NAME" single=\'$MY_DOG\'\n')
    assert isinstance(env, Env)
    assert env.pairs == (("MY_NAME", "John Doe"), ("MY_DOG", "Rex The Dog"))
    assert isinstance(label, Label)
    assert label.pairs == (("com.example.vendor", "ACME John Doe"), ("single", "$MY_DOG"))


@pytest.mark.parametrize(
    "text",
    ['RUN ["echo", "$HOME"]', "RUN echo $HOME", "CMD echo $HOME", "ENTRYPOINT [\"$X\"]",
     'SHELL ["/bin/$X", "-c"]', "HEALTHCHECK CMD test $X", "ONBUILD WORKDIR $X",
     "MAINTAINER $X"],
)
def test_not_expanded_by_the_builder(text: str) -> None:
    instruction = parse(f"FROM a\n{text}\n").instructions[1]
    assert expand(instruction, {"X": "x", "HOME": "/root"}) is instruction


def test_json_form_sources_are_expanded_too() -> None:
    copy = build('FROM a\nENV D=/dst\nCOPY ["$D/in", "${D}/out"]\n')[1]
    assert isinstance(copy, Copy) and copy.sources == ("/dst/in",) and copy.dest == "/dst/out"


def test_copy_flags_are_expanded() -> None:
    copy = build("FROM a\nARG MODE=440\nARG STAGE=builder\nARG U=1000\n"
                 "COPY --chmod=$MODE --from=$STAGE --chown=$U:$U . .\n")[-1]
    assert isinstance(copy, Copy)
    assert (copy.mode, copy.from_, copy.chown) == (0o440, "builder", "1000:1000")


def test_expose_splits_and_checks_ports() -> None:
    expose = build("FROM a\nENV PORTS=\"80 443/udp\"\nEXPOSE $PORTS 8000-8001 1.2.3.4:80:81\n")[1]
    assert isinstance(expose, Expose)
    assert expose.ports == ("80/tcp", "443/udp", "8000/tcp", "8001/tcp", "81/tcp")


@pytest.mark.parametrize(
    ("spec", "message"),
    [("80/xyz", "invalid proto: xyz"), ("abc", "invalid containerPort: abc"),
     ("70000", "invalid containerPort: 70000"), ("90-80", "invalid containerPort: 90-80"),
     ("/tcp", "no port specified"), ("8000-8002:80-81", "invalid ranges specified")],
)
def test_expose_errors(spec: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        exposed_ports(spec)


@pytest.mark.parametrize("signal", ["SIGKILL", "9", "TERM", "sigusr1", "SIGRTMIN+3"])
def test_stop_signals(signal: str) -> None:
    assert check_signal(signal) == signal


def test_stopsignal_and_volume_errors_name_the_line() -> None:
    with pytest.raises(InvalidArgument,
                       match=r"^dockerfile parse error on line 3: Invalid signal: SIGFOO$"):
        build("FROM a\nENV S=FOO\nSTOPSIGNAL SIG$S\n")
    with pytest.raises(InvalidArgument, match="VOLUME specified can not be an empty string"):
        build("FROM a\nVOLUME $NOTHING\n")
    with pytest.raises(InvalidArgument, match=r"line 2: failed to process \"\$\{\}\": syntax "
                                              "error: bad substitution"):
        build("FROM a\nWORKDIR ${}\n")


def test_volume_user_and_stopsignal_values() -> None:
    volume, user, signal = build("FROM a\nVOLUME [\"/data/${NAME:-x}\"]\nUSER ${U:-1000}:0\n"
                                 "STOPSIGNAL ${SIG:-SIGQUIT}\n")
    assert isinstance(volume, Volume) and volume.paths == ("/data/x",)
    assert isinstance(user, User) and user.user == "1000:0"
    assert isinstance(signal, StopSignal) and signal.signal == "SIGQUIT"


def test_escape_directive_applies_to_expansion() -> None:
    workdir = build("# escape=`\nFROM a\nENV X=y\nWORKDIR c:\\app\\`$X\\$X\n")[1]
    assert isinstance(workdir, Workdir) and workdir.path == "c:\\app\\$X\\y"


# --- build args and ARG scoping (the reference's ARG section) ---------------------------------

def test_arg_comes_into_effect_from_its_line() -> None:
    first, _, second = build("FROM busybox\nUSER ${username:-some_user}\nARG username\n"
                             "USER $username\n", {"username": "what_user"})
    assert isinstance(first, User) and first.user == "some_user"
    assert isinstance(second, User) and second.user == "what_user"


def test_env_overrides_arg_of_the_same_name() -> None:
    text = "FROM ubuntu\nARG CONT_IMG_VER\nENV CONT_IMG_VER=v1.0.0\nRUN echo $CONT_IMG_VER\n"
    plan = stages(parse(text), {"CONT_IMG_VER": "v2.0.1"}, platform="linux/amd64")
    scope = Scope.start(plan.build_args)
    for instruction in plan.stages[0].instructions[:2]:
        scope = scope.apply(expand(instruction, scope.variables()))
    assert scope.variables()["CONT_IMG_VER"] == "v1.0.0"
    assert scope.run_args() == {} and scope.cache_args() == ()


@pytest.mark.parametrize(("given", "expected"), [({"CONT_IMG_VER": "v2.0.1"}, "v2.0.1"),
                                                 ({}, "v1.0.0")])
def test_env_defaulting_from_an_arg(given: dict[str, str | None], expected: str) -> None:
    env = build("FROM ubuntu\nARG CONT_IMG_VER\nENV CONT_IMG_VER=${CONT_IMG_VER:-v1.0.0}\n",
                given)[1]
    assert isinstance(env, Env) and env.pairs == (("CONT_IMG_VER", expected),)


def test_global_args_are_for_from_lines_until_redeclared() -> None:
    text = "ARG VERSION=latest\nFROM busybox:$VERSION\nUSER u$VERSION\nARG VERSION\nUSER $VERSION\n"
    plan = stages(parse(text), platform="linux/amd64")
    assert plan.stages[0].base == "busybox:latest"
    before, _, after = walk(plan)
    assert isinstance(before, User) and before.user == "u"
    assert isinstance(after, User) and after.user == "latest"
    given = walk(stages(parse(text), {"VERSION": "1.36"}, platform="linux/amd64"))[2]
    assert isinstance(given, User) and given.user == "1.36"


def test_global_args_see_earlier_global_args() -> None:
    text = "ARG A=1\nARG B=${A}x\nFROM img:$B\n"
    assert stages(parse(text), platform="linux/amd64").stages[0].base == "img:1x"
    assert stages(parse(text), {"A": "5"}, platform="linux/amd64").stages[0].base == "img:5x"


def test_arg_defaults_and_build_arg_without_value() -> None:
    arg, user = build("FROM a\nARG user1=someuser\nUSER $user1\n", {"user1": None})
    assert isinstance(arg, Arg) and arg.pairs == (("user1", "someuser"),)
    assert isinstance(user, User) and user.user == "someuser"


def test_predefined_proxy_args() -> None:
    given = {"HTTP_PROXY": "http://proxy:3128", "https_proxy": "http://p:1"}
    scope = Scope.start(BuildArgs(given=given), ["PATH=/bin"])
    assert scope.run_args() == given  # usable without ARG ...
    assert scope.cache_args() == ()  # ... but not part of the cache key
    declared = scope.apply(Arg(keyword="ARG", pairs=(("HTTP_PROXY", None),)))
    assert declared.cache_args() == ("HTTP_PROXY=http://proxy:3128",)
    assert declared.variables()["PATH"] == "/bin"


def test_automatic_platform_args_need_redeclaring_in_a_stage() -> None:
    plan = stages(parse("FROM --platform=$BUILDPLATFORM alpine AS build\nUSER x$TARGETARCH\n"
                        "ARG TARGETARCH\nUSER $TARGETARCH\n"), platform="linux/arm64")
    before, _, after = walk(plan)
    assert isinstance(before, User) and before.user == "x"
    assert isinstance(after, User) and after.user == "arm64"


def test_a_stage_inherits_the_args_of_the_stage_it_builds_on() -> None:
    plan = stages(parse("FROM a AS base\nARG V=1\nFROM base\nUSER $V\n"),
                  platform="linux/amd64")
    parent = Scope.start(plan.build_args)
    for instruction in plan.stages[0].instructions:
        parent = parent.apply(expand(instruction, parent.variables()))
    child = Scope.start(plan.build_args, parent=parent)
    user = expand(plan.stages[1].instructions[0], child.variables())
    assert isinstance(user, User) and user.user == "1"
    unrelated = expand(plan.stages[1].instructions[0], Scope.start(plan.build_args).variables())
    assert isinstance(unrelated, User) and unrelated.user == ""


@pytest.mark.parametrize(
    ("text", "given", "target", "unused"),
    [
        ("FROM a\nARG USED\n", {"USED": "1", "X": "2", "A": None}, None, ("A", "X")),
        ("ARG G\nFROM a\n", {"G": "1"}, None, ()),  # a global ARG consumes it
        ("FROM a\n", {"HTTP_PROXY": "p", "no_proxy": "q"}, None, ()),  # predefined
        ("FROM a AS x\nARG B\nFROM c\n", {"B": "1"}, None, ()),  # any stage's ARG
        ("FROM a AS x\nFROM c AS y\nARG B\n", {"B": "1"}, "x", ("B",)),  # not built
    ],
)
def test_unused_build_args(text: str, given: dict[str, str | None], target: str | None,
                           unused: tuple[str, ...]) -> None:
    plan = stages(parse(text), given, target=target, platform="linux/amd64")
    assert plan.unused_build_args == unused
    warning = unused_build_args_warning(unused)
    assert (warning in plan.warnings) if warning else not plan.warnings
    if unused == ("A", "X"):
        assert warning == "[Warning] One or more build-args [A X] were not consumed"


def test_scope_env_keeps_order_and_replaces() -> None:
    scope = Scope.start(BuildArgs(), ["PATH=/usr/bin", "A=1"])
    scope = scope.apply(Env(keyword="ENV", pairs=(("PATH", "/bin"), ("B", "2"))))
    assert scope.env_list() == ["PATH=/bin", "A=1", "B=2"]
