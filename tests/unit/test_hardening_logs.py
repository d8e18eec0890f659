"""Issue #12: container logs have a size cap (``--log-opt max-size/max-file`` and the daemon's
``log-opts``): the options as dockerd checks them, conmon's cap, the older files kept and read."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from tests.unit.test_runtime_logs import line, write
from tests.unit.test_runtime_monitor import _executable
from wharf.cli.commands.createbody import _log_config
from wharf.cli.failure import FlagError
from wharf.daemon.core.runtime import conmon, logfiles, oci
from wharf.daemon.core.runtime.cgroups import CgroupMode
from wharf.daemon.core.runtime.logfiles import LogLimits, parse_log_opts, resolve
from wharf.daemon.core.runtime.logs import read_logs
from wharf.daemon.core.runtime.monitor import ConmonRuntime
from wharf.daemon.settings import DaemonSettings
from wharf.errors import InvalidArgument


@pytest.mark.parametrize(("text", "size"), [("10m", 10_000_000), ("1.5k", 1500), ("100", 100),
                                            ("2MB", 2_000_000), ("1g", 10**9), ("3 KiB", 3000)])
def test_max_size_is_go_units_from_human_size(text: str, size: int) -> None:
    assert parse_log_opts({"max-size": text}) == LogLimits(size, 1)


@pytest.mark.parametrize(("opts", "message"), [
    ({"max-size": "0"}, "max-size must be a positive number"),
    ({"max-size": "ten"}, "invalid size: 'ten'"),
    ({"max-size": "1m", "max-file": "0"}, "max-file cannot be less than 1"),
    ({"max-size": "1m", "max-file": "x"}, "invalid max-file"),
    ({"max-sise": "1m"}, "unknown log opt 'max-sise' for json-file log driver"),
])
def test_bad_log_options_get_dockerd_s_messages(opts: dict[str, str], message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        parse_log_opts(opts)


def test_max_file_counts_only_with_max_size_and_other_drivers_are_left_alone() -> None:
    assert parse_log_opts({"max-file": "3"}) == LogLimits(None, 1)
    assert parse_log_opts({"max-size": "1k", "max-file": "3"}) == LogLimits(1000, 3)
    assert parse_log_opts({"syslog-address": "udp://x"}, "syslog") == LogLimits()


def test_the_container_s_options_win_over_the_daemon_s_key_by_key() -> None:
    defaults = {"max-size": "20m", "max-file": "5"}
    assert resolve({"Type": "", "Config": {}}, defaults) == LogLimits(20_000_000, 5)
    assert resolve(None, defaults) == LogLimits(20_000_000, 5)
    assert resolve({"Type": "json-file", "Config": {"max-size": "1m"}}, defaults) == \
        LogLimits(1_000_000, 5)
    with pytest.raises(InvalidArgument, match="must be an object"):
        resolve({"Config": ["max-size=1m"]}, defaults)


def test_the_daemon_default_caps_logs_and_can_be_set_in_daemon_json(tmp_path: Path) -> None:
    assert resolve(None, DaemonSettings().log_opts) == LogLimits(20_000_000, 5)
    config = tmp_path / "daemon.json"
    config.write_text('{"log-opts": {"max-size": "5m", "max-file": "2"}}')
    assert DaemonSettings(config_file=config).log_opts == {"max-size": "5m", "max-file": "2"}
    with pytest.raises(ValidationError, match="log-opts: max-file cannot be less than 1"):
        DaemonSettings(log_opts={"max-size": "5m", "max-file": "0"})


def test_conmon_gets_the_cap(tmp_path: Path) -> None:
    binary = _executable(tmp_path / "crun", "#!/bin/sh\nexit 0\n")
    rt = oci.make_runtime(oci.RuntimeKind.CRUN, tmp_path / "run", CgroupMode.HYBRID, binary)
    runtime = ConmonRuntime(rt, tmp_path / "run", tmp_path / "containers")
    paths = runtime.paths("c1")
    argv = conmon.conmon_argv(runtime.oci, paths, name="web", log_size_max=1_000_000)
    assert argv[argv.index("--log-size-max") + 1] == "1000000"
    assert "--log-size-max" not in conmon.conmon_argv(runtime.oci, paths, name="web")


def test_limits_are_kept_in_the_container_dir(tmp_path: Path) -> None:
    assert logfiles.read_limits(tmp_path) is None
    logfiles.write_limits(tmp_path, LogLimits(1000, 3))
    assert logfiles.read_limits(tmp_path) == LogLimits(1000, 3)


def test_the_cli_sends_log_opts_as_docker_does() -> None:
    opts = {"log_driver": "", "log_opts": ("max-size=10m", "max-file=3", "tag")}
    assert _log_config(opts) == {"Type": "", "Config": {"max-size": "10m", "max-file": "3",
                                                         "tag": ""}}
    with pytest.raises(FlagError, match="invalid logging opts for driver none"):
        _log_config({"log_driver": "none", "log_opts": ("max-size=1m",)})


# --- the older files ---------------------------------------------------------------------------


def replace_like_conmon(log: Path, text: str) -> None:
    """What conmon does at its cap: a new file renamed over the log."""
    tmp = log.with_name(log.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, log)


def test_files_conmon_replaces_are_kept_up_to_max_file(tmp_path: Path) -> None:
    log = write(tmp_path / "ctr.log", line(1, "stdout", "F", "one"))
    logfiles.keep(log, 3)  # links the live file as ctr.log.0
    assert os.path.samefile(log, tmp_path / "ctr.log.0")
    for second, word in ((2, "two"), (3, "three"), (4, "four")):
        replace_like_conmon(log, line(second, "stdout", "F", word))
        assert [e.data for e in read_logs(log)][-2:] == [
            {2: b"one\n", 3: b"two\n", 4: b"three\n"}[second], f"{word}\n".encode()]
        logfiles.keep(log, 3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ctr.log", "ctr.log.0", "ctr.log.1",
                                                          "ctr.log.2"]
    assert [e.data for e in read_logs(log)] == [b"two\n", b"three\n", b"four\n"]
    assert [e.data for e in read_logs(log, tail=2)] == [b"three\n", b"four\n"]


def test_a_restarted_container_starts_a_new_file(tmp_path: Path) -> None:
    log = write(tmp_path / "ctr.log", line(1, "stdout", "F", "first run"))
    logfiles.keep(log, 2)
    logfiles.start_new_file(log, LogLimits(1000, 2))
    assert not log.exists()
    assert (tmp_path / "ctr.log.1").read_text().endswith("first run\n")
    write(log, line(2, "stdout", "F", "second run"))
    assert [e.data for e in read_logs(log)] == [b"first run\n", b"second run\n"]
    logfiles.start_new_file(log, LogLimits(1000, 1))  # max-file 1: conmon appends
    assert log.exists()


def test_the_keeper_looks_at_every_container_that_keeps_files(tmp_path: Path) -> None:
    kept, single = tmp_path / "a", tmp_path / "b"
    for cdir, limits in ((kept, LogLimits(1000, 2)), (single, LogLimits(1000, 1))):
        cdir.mkdir()
        logfiles.write_limits(cdir, limits)
        write(cdir / "ctr.log", line(1, "stdout", "F", "x"))
    logfiles.LogKeeper(tmp_path).sweep()
    assert (kept / "ctr.log.0").exists()
    assert not (single / "ctr.log.0").exists()
