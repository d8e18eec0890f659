"""HEALTHCHECK as pure data: the config (parse, dockerd's checks and merge), the state machine
(streak, retries, start period, last five), the probe schedule, the output cap, the words and
times dockerd uses, and where health shows: ps STATUS, the health filter, inspect, the CLI flags."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.unit.test_cli_containers import Daemon, _body, _run_routes, run
from wharf.daemon.adapters.views.containers import container_inspect, container_summary
from wharf.daemon.core.containers import health
from wharf.daemon.core.containers.config import merge_config
from wharf.daemon.core.containers.filters import select
from wharf.daemon.core.containers.health import (
    HealthConfig,
    HealthResult,
    HealthState,
    HealthStatus,
)
from wharf.daemon.core.containers.lifecycle import Status
from wharf.daemon.core.containers.options import ContainerOptions
from wharf.daemon.core.containers.records import ContainerRecord
from wharf.dockerapi import go_duration, go_duration_text, status_text
from wharf.errors import InvalidArgument

S = health.SECOND
SHELL_CHECK = {"Test": ["CMD-SHELL", "test -f /tmp/ok"], "Interval": S, "Retries": 2}


def _result(code: int, n: int = 0) -> HealthResult:
    return HealthResult(start=f"t{n}", end=f"t{n}", exit_code=code, output=f"out{n}")


# --- config ------------------------------------------------------------------------------------

def test_the_request_overrides_the_image_field_by_field() -> None:
    image = {"config": {"Cmd": ["sh"], "Healthcheck": {
        "Test": ["CMD", "check"], "Interval": 5 * S, "Timeout": 2 * S, "Retries": 4}}}
    config = merge_config({"Healthcheck": {"Interval": S, "StartPeriod": 3 * S}}, image, "abc")
    assert config["Healthcheck"] == {"Test": ["CMD", "check"], "Interval": S, "Timeout": 2 * S,
                                     "StartPeriod": 3 * S, "Retries": 4}
    # no request Healthcheck: the image's as it is; neither: no key at all (omitempty)
    assert merge_config({}, image, "abc")["Healthcheck"]["Interval"] == 5 * S
    assert "Healthcheck" not in merge_config({}, {"config": {"Cmd": ["sh"]}}, "abc")


def test_none_disables_the_images_check_and_shows_as_sent() -> None:
    image = {"config": {"Healthcheck": {"Test": ["CMD-SHELL", "true"]}}}
    config = merge_config({"Healthcheck": {"Test": ["NONE"]}}, image, "abc")
    assert config["Healthcheck"] == {"Test": ["NONE"]}
    assert HealthConfig(test=("NONE",)).command() is None


def test_the_probe_command() -> None:
    assert HealthConfig(test=("CMD-SHELL", "test -f /x")).command() == [
        "/bin/sh", "-c", "test -f /x"]
    assert HealthConfig(test=("CMD", "check", "--quick")).command() == ["check", "--quick"]
    for test in [(), ("CMD",), ("FOO", "x"), ("NONE",)]:
        assert HealthConfig(test=test).command() is None


@pytest.mark.parametrize(("sent", "message"), [
    ({"Interval": -10 * 10**6}, "Interval in Healthcheck cannot be less than 1ms"),
    ({"Interval": 500_000}, "Interval in Healthcheck cannot be less than 1ms"),
    ({"Timeout": -1}, "Timeout in Healthcheck cannot be less than 1ms"),
    ({"Retries": -10}, "Retries in Healthcheck cannot be negative"),
    ({"StartPeriod": 1}, "StartPeriod in Healthcheck cannot be less than 1ms"),
    ({"StartInterval": 10}, "StartInterval in Healthcheck cannot be less than 1ms"),
    ({"Interval": "1s"}, "Config.Healthcheck.Interval must be an integer"),
    ({"Test": [1]}, "Config.Healthcheck.Test must be a list of strings"),
    ("x", "Config.Healthcheck must be an object"),
])
def test_dockerds_checks_of_the_request(sent: Any, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message.replace(".", r"\.")):
        merge_config({"Healthcheck": sent}, {}, "abc")


def test_docker_shape_leaves_zero_fields_out() -> None:
    assert HealthConfig().docker() == {}
    assert health.parse(SHELL_CHECK, "x") == HealthConfig(
        test=("CMD-SHELL", "test -f /tmp/ok"), interval=S, retries=2)
    assert health.parse(SHELL_CHECK, "x").docker() == SHELL_CHECK  # type: ignore[union-attr]
    assert health.parse({"Test": "CMD-SHELL"}, "x") == HealthConfig(test=("CMD-SHELL",))


# --- the state machine -------------------------------------------------------------------------

def test_failures_count_up_to_the_retries_then_a_success_resets() -> None:
    config = HealthConfig(test=("CMD", "x"), retries=2)
    state = health.on_start(None)
    assert (state.status, state.failing_streak, state.log) == (HealthStatus.STARTING, 0, [])
    state = health.record_result(state, _result(1, 1), config, since_start=10 * S)
    assert (state.status, state.failing_streak) == (HealthStatus.STARTING, 1)
    state = health.record_result(state, _result(1, 2), config, since_start=11 * S)
    assert (state.status, state.failing_streak) == (HealthStatus.UNHEALTHY, 2)
    state = health.record_result(state, _result(1, 3), config, since_start=12 * S)
    assert (state.status, state.failing_streak) == (HealthStatus.UNHEALTHY, 3)  # keeps counting
    state = health.record_result(state, _result(0, 4), config, since_start=13 * S)
    assert (state.status, state.failing_streak) == (HealthStatus.HEALTHY, 0)


def test_the_default_is_three_retries_and_a_healthy_one_stays_healthy_until_then() -> None:
    config = HealthConfig(test=("CMD", "x"))
    state = HealthState(status=HealthStatus.HEALTHY)
    for n in (1, 2):
        state = health.record_result(state, _result(1, n), config, since_start=S)
        assert (state.status, state.failing_streak) == (HealthStatus.HEALTHY, n)
    state = health.record_result(state, _result(1, 3), config, since_start=S)
    assert state.status is HealthStatus.UNHEALTHY


def test_failures_in_the_start_period_do_not_count_while_starting() -> None:
    config = HealthConfig(test=("CMD", "x"), retries=1, start_period=10 * S)
    state = health.record_result(health.on_start(None), _result(1), config, since_start=9 * S)
    assert (state.status, state.failing_streak, len(state.log)) == (HealthStatus.STARTING, 0, 1)
    state = health.record_result(state, _result(1), config, since_start=10 * S)
    assert (state.status, state.failing_streak) == (HealthStatus.UNHEALTHY, 1)
    # once healthy, a failure in the start period counts
    healthy = HealthState(status=HealthStatus.HEALTHY)
    state = health.record_result(healthy, _result(1), config, since_start=S)
    assert (state.status, state.failing_streak) == (HealthStatus.UNHEALTHY, 1)


def test_the_last_five_results_are_kept() -> None:
    config = HealthConfig(test=("CMD", "x"))
    state = health.on_start(None)
    for n in range(8):
        state = health.record_result(state, _result(0, n), config, since_start=S)
    assert [r.output for r in state.log] == ["out3", "out4", "out5", "out6", "out7"]


def test_a_restart_starts_again_with_the_log_and_a_stop_is_unhealthy() -> None:
    state = HealthState(status=HealthStatus.HEALTHY, failing_streak=0, log=[_result(0)])
    stopped = health.on_stop(state)
    assert (stopped.status, stopped.log) == (HealthStatus.UNHEALTHY, state.log)
    again = health.on_start(HealthState(status=HealthStatus.UNHEALTHY, failing_streak=4,
                                        log=[_result(1)]))
    assert (again.status, again.failing_streak, again.log) == (
        HealthStatus.STARTING, 0, [_result(1)])


def test_the_probe_schedule() -> None:
    plain = HealthConfig(test=("CMD", "x"))
    assert health.next_delay(plain, 0, HealthStatus.STARTING) == 30 * S
    quick = HealthConfig(test=("CMD", "x"), interval=S)
    assert health.next_delay(quick, 0, HealthStatus.STARTING) == S
    period = HealthConfig(test=("CMD", "x"), interval=30 * S, start_period=60 * S)
    assert health.next_delay(period, 0, HealthStatus.STARTING) == 5 * S  # start interval
    assert health.next_delay(period, 0, HealthStatus.HEALTHY) == 30 * S
    # the period ends before a whole interval: the next probe comes at its end (dockerd)
    assert health.next_delay(period, 40 * S, HealthStatus.STARTING) == 20 * S
    assert health.next_delay(period, 60 * S, HealthStatus.STARTING) == 30 * S
    custom = HealthConfig(test=("CMD", "x"), interval=30 * S, start_period=60 * S,
                          start_interval=2 * S)
    assert health.next_delay(custom, 0, HealthStatus.STARTING) == 2 * S


def test_output_is_capped_at_4096_bytes_then_dots() -> None:
    buffer = health.OutputBuffer()
    buffer.write(b"a" * 4000)
    buffer.write(b"b" * 200)
    buffer.write(b"c")
    assert buffer.truncated and buffer.text() == "a" * 4000 + "b" * 96 + "..."
    small = health.OutputBuffer()
    small.write(b"ok \xff\n")
    assert small.text() == "ok \ufffd\n"


def test_dockerds_words_and_times() -> None:
    assert health.timeout_output(S, "") == "Health check exceeded timeout (1s)"
    assert health.timeout_output(500 * 10**6, "partial") == (
        "Health check exceeded timeout (500ms): partial")
    assert health.rfc3339_nano(1_796_408_091_661_091_437) == "2026-12-04T18:14:51.661091437Z"
    assert health.rfc3339_nano(1_796_408_091_660_000_000) == "2026-12-04T18:14:51.66Z"
    assert health.rfc3339_nano(1_796_408_091 * S) == "2026-12-04T18:14:51Z"


@pytest.mark.parametrize(("text", "ns", "shown"), [
    ("1s", S, "1s"), ("500ms", 500 * 10**6, "500ms"), ("1m30s", 90 * S, "1m30s"),
    ("1.5h", 5400 * S, "1h30m0s"), ("0", 0, "0s"), ("300us", 300_000, "300µs"),
    ("1.5s", 1500 * 10**6, "1.5s"), ("2ns", 2, "2ns"), ("-2s", -2 * S, "-2s"),
])
def test_go_durations(text: str, ns: int, shown: str) -> None:
    assert go_duration(text) == ns
    assert go_duration_text(ns) == shown


@pytest.mark.parametrize(("text", "message"), [
    ("1x", 'time: unknown unit "x" in duration "1x"'),
    ("1", 'time: missing unit in duration "1"'),
    ("", 'time: invalid duration ""'),
    ("s", 'time: invalid duration "s"'),
])
def test_go_duration_errors(text: str, message: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        go_duration(text)
    assert caught.value.message == message


# --- where it shows ------------------------------------------------------------------------------

def _record(status: Status, state: HealthState | None, name: str = "web") -> ContainerRecord:
    record = ContainerRecord(
        id=name * 10, name=name, image="busybox", image_id="sha256:" + "1" * 64,
        created_at="2026-01-01T00:00:00Z", path="sleep", args=["1"],
        config={"Healthcheck": SHELL_CHECK}, host_config={}, options=ContainerOptions())
    started = (datetime.now(UTC) - timedelta(seconds=5)).isoformat().replace("+00:00", "Z")
    record.state = record.state.model_copy(update={"status": status, "health": state,
                                                   "started_at": started})
    return record


def test_ps_status_text_names_the_health_of_a_running_container() -> None:
    stamp = (datetime.now(UTC) - timedelta(seconds=5)).isoformat()
    assert status_text("running", 0, stamp, "", health="healthy") == "Up 5 seconds (healthy)"
    assert status_text("running", 0, stamp, "", health="unhealthy") == (
        "Up 5 seconds (unhealthy)")
    assert status_text("running", 0, stamp, "", health="starting") == (
        "Up 5 seconds (health: starting)")
    assert status_text("paused", 0, stamp, "", health="unhealthy") == "Up 5 seconds (Paused)"
    state = HealthState(status=HealthStatus.STARTING)
    assert container_summary(_record(Status.RUNNING, state))["Status"] == (
        "Up 5 seconds (health: starting)")
    assert container_summary(_record(Status.RUNNING, None))["Status"] == "Up 5 seconds"


def test_inspect_shows_health_once_it_exists() -> None:
    result = HealthResult(start="a", end="b", exit_code=1, output="no\n")
    state = HealthState(status=HealthStatus.UNHEALTHY, failing_streak=2, log=[result])
    shown = container_inspect(_record(Status.RUNNING, state), "/c", "/c/log")
    assert shown["State"]["Health"] == {"Status": "unhealthy", "FailingStreak": 2, "Log": [
        {"Start": "a", "End": "b", "ExitCode": 1, "Output": "no\n"}]}
    assert shown["Config"]["Healthcheck"] == SHELL_CHECK
    assert "Health" not in container_inspect(_record(Status.CREATED, None), "/c", "/c/l")["State"]


def test_the_health_filter() -> None:
    records = [_record(Status.RUNNING, HealthState(status=s), name=s.value[:4])
               for s in HealthStatus] + [_record(Status.RUNNING, None, name="none"),
                                         _record(Status.EXITED, HealthState(
                                             status=HealthStatus.UNHEALTHY), name="gone")]
    for value in ("starting", "healthy", "unhealthy", "none"):
        names = [r.name for r in select(records, all=True, filters={"health": [value]})]
        expected = {"starting": ["star"], "healthy": ["heal"], "unhealthy": ["unhe", "gone"],
                    "none": ["none"]}[value]
        assert names == expected, value
    assert [r.name for r in select(records, all=False, filters={"health": ["unhealthy"]})] == [
        "unhe"]
    with pytest.raises(InvalidArgument, match="Unrecognised filter value for health: foo"):
        select(records, all=True, filters={"health": ["foo"]})


def test_a_record_gets_its_typed_healthcheck_from_its_config() -> None:
    record = _record(Status.CREATED, None)
    assert record.healthcheck == HealthConfig(test=("CMD-SHELL", "test -f /tmp/ok"),
                                              interval=S, retries=2)
    older = record.model_dump(mode="json")
    del older["healthcheck"]
    older["config"] = {}
    assert ContainerRecord.model_validate(older).healthcheck is None


# --- the CLI flags ----------------------------------------------------------------------------

@pytest.fixture
def daemon() -> Daemon:
    return Daemon()


def test_run_sends_the_health_flags_as_docker_does(daemon: Daemon) -> None:
    _run_routes(daemon)
    result = run(daemon, "run", "-d", "--health-cmd", "test -f /tmp/ok", "--health-interval",
                 "1s", "--health-retries", "2", "--health-timeout", "500ms",
                 "--health-start-period", "1m", "--health-start-interval", "2s", "busybox")
    assert result.exit_code == 0, result.output
    assert _body(daemon.requests[0])["Healthcheck"] == {
        "Test": ["CMD-SHELL", "test -f /tmp/ok"], "Interval": S, "Timeout": 500 * 10**6,
        "StartPeriod": 60 * S, "StartInterval": 2 * S, "Retries": 2}
    assert run(daemon, "create", "--no-healthcheck", "busybox").exit_code == 0
    assert _body(daemon.requests[-1])["Healthcheck"] == {"Test": ["NONE"]}
    assert run(daemon, "create", "busybox").exit_code == 0
    assert "Healthcheck" not in _body(daemon.requests[-1])  # the image's applies
    assert run(daemon, "create", "--health-retries", "3", "busybox").exit_code == 0
    assert _body(daemon.requests[-1])["Healthcheck"] == {"Retries": 3}


@pytest.mark.parametrize(("args", "message"), [
    (["--no-healthcheck", "--health-retries", "2"],
     "--no-healthcheck conflicts with --health-* options"),
    (["--no-healthcheck", "--health-cmd", "true"],
     "--no-healthcheck conflicts with --health-* options"),
    (["--health-interval", "-1s"], "--health-interval cannot be negative"),
    (["--health-timeout", "-1s"], "--health-timeout cannot be negative"),
    (["--health-retries", "-1"], "--health-retries cannot be negative"),
    (["--health-start-period", "-2s"], "--health-start-period cannot be negative"),
    (["--health-start-interval", "-2s"], "--health-start-interval cannot be negative"),
    (["--health-interval", "1x"],
     'invalid argument "1x" for "--health-interval" flag: time: unknown unit "x" in duration '
     '"1x"'),
    (["--health-retries", "x"],
     'invalid argument "x" for "--health-retries" flag: strconv.ParseInt: parsing "x": '
     "invalid syntax"),
])
def test_bad_health_flags_are_dockers_flag_errors(daemon: Daemon, args: list[str],
                                                   message: str) -> None:
    result = run(daemon, "create", *args, "busybox")
    assert result.exit_code == 125
    assert result.stderr.splitlines() == [message, "See 'wharf create --help'."]
    assert daemon.log == []


def test_help_lists_the_health_flags(daemon: Daemon) -> None:
    shown = run(daemon, "run", "--help").output
    for flag in ("--health-cmd", "--health-interval", "--health-retries",
                 "--health-start-interval", "--health-start-period", "--health-timeout",
                 "--no-healthcheck"):
        assert flag in shown, flag
