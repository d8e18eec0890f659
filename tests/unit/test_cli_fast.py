"""The click-free fast path (wharf.cli.fast, wharf.cli.commands.runflags) against click itself.

The fast path serves ``wharf run`` and ``wharf --help`` without importing click; click is the
reference: on every command line here the fast parser either reads exactly what click reads or
declines (None), and what it prints is what click prints.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest

from wharf.cli.commands.run import run_cmd
from wharf.cli.commands.runflags import CREATE_FLAGS, RUN_FLAGS, parse
from wharf.cli.failure import FlagError
from wharf.cli.fast import serve

FLAGS = RUN_FLAGS + CREATE_FLAGS

READ = [
    ["busybox"],
    ["busybox", "true"],
    ["--rm", "busybox", "true"],
    ["--rm", "--network", "none", "busybox", "sh", "-c", "exit 3"],
    ["-it", "busybox", "sh"],
    ["-itd", "--name", "web", "busybox"],
    ["-d", "-p", "8080:80", "-p80", "-e", "A=1", "-eB=2", "--env=C=3", "busybox"],
    ["--net=none", "--read-only", "--tmpfs", "/run", "busybox", "ls", "-l", "--", "x"],
    ["--sig-proxy=false", "busybox", "true"],
    ["--sig-proxy", "OFF", "busybox"],
    ["--pids-limit", "12", "--pids-limit=7", "busybox"],
    ["--pids-limit", "-1", "busybox"],
    ["-v", "/a:/b:ro", "--volume", "data:/data", "--mount", "type=tmpfs,target=/t", "busybox"],
    ["--name", "-odd-", "busybox"],
    ["-h", "box", "-w", "/tmp", "-u", "1000:1000", "--entrypoint", "", "busybox"],
    ["--health-cmd", "true", "--health-interval=1s", "--no-healthcheck", "busybox"],
    ["--log-driver", "json-file", "--log-opt", "max-size=1m", "busybox"],
    ["--", "busybox", "true"],
    ["-l", "a=b", "--label", "c=d", "--cap-add", "NET_ADMIN", "--cap-drop=ALL", "busybox"],
    ["-P", "--expose", "80", "--ip", "10.0.0.2", "--network-alias", "x", "busybox"],
    ["--detach-keys", "ctrl-a,a", "--node", "n1", "busybox"],
    ["busybox", "--rm", "-it"],
    ["-", "x"],
]

DECLINED = [
    [],
    ["--rm"],
    ["--help"],
    ["--rm", "--help", "busybox"],
    ["--no-such-flag", "busybox"],
    ["-Z", "busybox"],
    ["--rm=yes", "busybox"],
    ["--pids-limit", "many", "busybox"],
    ["--pids-limit", "1.5", "busybox"],
    ["--sig-proxy", "maybe", "busybox"],
    ["--name"],
    ["-e"],
    ["-itZ", "busybox"],
    ["--net", "none"],
]


def _click(args: list[str]) -> dict[str, Any]:
    ctx = run_cmd.make_context("run", list(args), resilient_parsing=False)
    return dict(ctx.params)


@pytest.mark.parametrize("args", READ, ids=" ".join)
def test_the_fast_parser_reads_what_click_reads(args: list[str]) -> None:
    parsed = parse(args, FLAGS)
    assert parsed is not None
    params = _click(args)
    assert (parsed.image, parsed.command) == (params.pop("image"), params.pop("command"))
    assert parsed.values == params


@pytest.mark.parametrize("args", DECLINED, ids=" ".join)
def test_what_the_fast_parser_declines_click_reads_or_refuses(args: list[str]) -> None:
    assert parse(args, FLAGS) is None


@pytest.mark.parametrize("args", [a for a in DECLINED if "--help" not in a
                                  and a not in ([], ["--rm"], ["--name"], ["-e"])])
def test_click_refuses_the_bad_ones(args: list[str]) -> None:
    with pytest.raises(FlagError):  # run's UsageError, printed the docker way
        _click(args)


def test_every_flag_is_declared_once() -> None:
    names = [decl for flag in FLAGS for decl in flag.decls]
    assert len(names) == len(set(names))
    assert len({flag.dest for flag in FLAGS}) == len(FLAGS)


def _wharf(entry: str, *args: str, columns: str = "80") -> subprocess.CompletedProcess[str]:
    code = f"import sys; sys.argv = ['wharf', *{list(args)!r}]; from {entry} import main; main()"
    env = {**os.environ, "COLUMNS": columns}
    for name in ("WHARF_GATEWAY", "WHARF_NODE", "WHARF_HOST"):
        env.pop(name, None)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, check=False)


@pytest.mark.parametrize("args", [["--help"], ["-h"], ["--version"]], ids=" ".join)
@pytest.mark.parametrize("columns", ["80", "200"])
def test_root_help_and_version_are_what_click_prints(args: list[str], columns: str) -> None:
    fast, slow = _wharf("wharf.cli.fast", *args, columns=columns), \
        _wharf("wharf.cli.main", *args, columns=columns)
    assert (fast.returncode, fast.stdout, fast.stderr) == \
        (slow.returncode, slow.stdout, slow.stderr)
    assert fast.returncode == 0 and fast.stdout


def test_a_narrow_terminal_gets_clicks_wrapping(monkeypatch: Any) -> None:
    monkeypatch.setenv("COLUMNS", "79")
    assert serve(["--help"]) is None


@pytest.mark.parametrize("args", [
    ["run", "--rm", "busybox"], ["container", "run", "busybox"], ["version"]], ids=" ".join)
def test_an_unreachable_daemon_gets_the_same_message_and_status(args: list[str],
                                                                tmp_path: Any) -> None:
    env = {"WHARF_HOST": f"unix://{tmp_path}/none.sock"}
    fast, slow = (subprocess.run(
        [sys.executable, "-c", f"import sys; sys.argv = ['wharf', *{args!r}]; "
         f"from {entry} import main; main()"],
        capture_output=True, text=True, check=False,
        env={**os.environ, **env, "HOME": str(tmp_path)}) for entry in
        ("wharf.cli.fast", "wharf.cli.main"))
    assert (fast.returncode, fast.stdout, fast.stderr) == \
        (slow.returncode, slow.stdout, slow.stderr)
    assert fast.returncode != 0 and "Cannot connect" in fast.stderr + fast.stdout


def test_the_gateway_in_the_environment_leaves_run_to_click(monkeypatch: Any) -> None:
    monkeypatch.setenv("WHARF_GATEWAY", "http://127.0.0.1:1")
    assert serve(["run", "busybox"]) is None
    monkeypatch.delenv("WHARF_GATEWAY")
    monkeypatch.setenv("WHARF_HOST", "tcp://127.0.0.1:2376")
    assert serve(["run", "busybox"]) is None
    assert serve(["ps"]) is None
    monkeypatch.delenv("WHARF_HOST")
    assert serve(["-H", "tcp://127.0.0.1:2376", "run", "busybox"]) is None
    assert serve(["--host=node://n1", "version"]) is None
    assert serve(["-H", "unix:///x", "--debug", "run", "busybox"]) is None


@pytest.mark.parametrize("host", [["-H", "SOCK"], ["--host", "SOCK"], ["--host=SOCK"]],
                         ids=" ".join)
@pytest.mark.parametrize("args", [["run", "--rm", "busybox"], ["version"]], ids=" ".join)
def test_a_host_option_is_served_like_clicks(host: list[str], args: list[str],
                                             tmp_path: Any, monkeypatch: Any) -> None:
    sock = f"unix://{tmp_path}/none.sock"
    argv = [a.replace("SOCK", sock) for a in host] + args
    monkeypatch.setenv("HOME", str(tmp_path))
    assert serve(argv) == 125 if args[0] == "run" else serve(argv) == 1  # served here
    fast, slow = (subprocess.run(
        [sys.executable, "-c", f"import sys; sys.argv = ['wharf', *{argv!r}]; "
         f"from {entry} import main; main()"],
        capture_output=True, text=True, check=False,
        env={**os.environ, "HOME": str(tmp_path), "WHARF_HOST": "tcp://127.0.0.1:1"})
        for entry in ("wharf.cli.fast", "wharf.cli.main"))
    assert (fast.returncode, fast.stdout, fast.stderr) == \
        (slow.returncode, slow.stdout, slow.stderr)
    assert f"{tmp_path}/none.sock" in fast.stderr + fast.stdout
