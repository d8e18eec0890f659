"""HEALTHCHECK: the container's health config and the state machine of its checks, as dockerd's
``daemon/health.go`` and ``container/health.go`` have them.

Pure functions over data: the config comes from the image (``config.Healthcheck``) and the create
request (``Config.Healthcheck``), merged as dockerd merges them (the request's fields win, zero
inherits, ``["NONE"]`` disables); each probe result moves the state ``starting`` → ``healthy`` /
``unhealthy`` (after ``Retries`` consecutive failures; failures in the start period do not count
while still starting); the last five results are kept. The monitors that run the probes are in
``probes``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from wharf.dockerapi import go_duration_text
from wharf.errors import InvalidArgument

SECOND = 10**9
DEFAULT_INTERVAL = 30 * SECOND
DEFAULT_TIMEOUT = 30 * SECOND
DEFAULT_START_PERIOD = 0
DEFAULT_START_INTERVAL = 5 * SECOND
DEFAULT_RETRIES = 3
MINIMUM_DURATION = 10**6  # dockerd's containertypes.MinimumDuration: 1ms
MAX_OUTPUT = 4096  # bytes of a probe's output kept (then "...")
MAX_LOG = 5  # results kept
SHELL = ("/bin/sh", "-c")  # CMD-SHELL's shell (dockerd's getShell on Linux)

# Docker's field names, the durations in nanoseconds.
_DURATIONS = (("Interval", "interval"), ("Timeout", "timeout"),
              ("StartPeriod", "start_period"), ("StartInterval", "start_interval"))


class HealthStatus(StrEnum):
    STARTING = "starting"
    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"


# The values of `ps --filter health=…`: a status, or "none" for a container without Health.
FILTER_VALUES = frozenset({*(s.value for s in HealthStatus), "none"})


class HealthConfig(BaseModel):
    """Docker's HealthConfig: ``test`` is ``()`` (inherit), ``("NONE",)``, ``("CMD", *argv)``
    or ``("CMD-SHELL", command)``; durations in nanoseconds and 0 retries mean the default."""

    model_config = ConfigDict(frozen=True)

    test: tuple[str, ...] = ()
    interval: int = 0
    timeout: int = 0
    start_period: int = 0
    start_interval: int = 0
    retries: int = 0

    def docker(self) -> dict[str, Any]:
        """Docker's JSON (every field omitted when empty, as dockerd's ``omitempty``)."""
        out: dict[str, Any] = {"Test": list(self.test)} if self.test else {}
        out.update({key: getattr(self, name) for key, name in _DURATIONS if getattr(self, name)})
        if self.retries:
            out["Retries"] = self.retries
        return out

    def command(self) -> list[str] | None:
        """The probe's argv (CMD-SHELL through ``/bin/sh -c``); None when no check runs: no
        test, ``NONE``, an unknown type or no command."""
        if len(self.test) < 2 or self.test[0] not in ("CMD", "CMD-SHELL"):
            return None
        return [*(SHELL if self.test[0] == "CMD-SHELL" else ()), *self.test[1:]]

    @property
    def probe_interval(self) -> int:
        return self.interval or DEFAULT_INTERVAL

    @property
    def probe_timeout(self) -> int:
        return self.timeout or DEFAULT_TIMEOUT

    @property
    def probe_retries(self) -> int:
        return self.retries if self.retries > 0 else DEFAULT_RETRIES


def parse(value: Any, what: str) -> HealthConfig | None:
    """A HealthConfig from Docker's JSON (None when absent); InvalidArgument naming ``what``
    when a field has the wrong type (dockerd's JSON decoding refuses those)."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidArgument(f"{what} must be an object")
    test = value.get("Test")
    if isinstance(test, str):  # Docker's StrSlice takes a single string too
        test = [test]
    if test is not None and (not isinstance(test, list)
                             or not all(isinstance(t, str) for t in test)):
        raise InvalidArgument(f"{what}.Test must be a list of strings")
    numbers: dict[str, int] = {}
    for key, name in (*_DURATIONS, ("Retries", "retries")):
        number = value.get(key)
        if number is None:
            continue
        if isinstance(number, bool) or not isinstance(number, int):
            kind = "duration in nanoseconds" if key != "Retries" else "integer"
            raise InvalidArgument(f"{what}.{key} must be an integer ({kind}), not {number!r}")
        numbers[name] = number
    return HealthConfig(test=tuple(test or ()), **numbers)


def check(config: HealthConfig | None) -> None:
    """dockerd's ``validateHealthCheck`` of a create request's Healthcheck, in its words."""
    if config is None:
        return
    floor = go_duration_text(MINIMUM_DURATION)
    for key, name in _DURATIONS[:2]:
        value = getattr(config, name)
        if value != 0 and value < MINIMUM_DURATION:
            raise InvalidArgument(f"{key} in Healthcheck cannot be less than {floor}")
    if config.retries < 0:
        raise InvalidArgument("Retries in Healthcheck cannot be negative")
    for key, name in _DURATIONS[2:]:
        value = getattr(config, name)
        if value != 0 and value < MINIMUM_DURATION:
            raise InvalidArgument(f"{key} in Healthcheck cannot be less than {floor}")


def merge(request: HealthConfig | None, image: HealthConfig | None) -> HealthConfig | None:
    """dockerd's merge: the image's config where the request has none; field by field (a zero
    field inherits the image's) where both have one."""
    if request is None or image is None:
        return image if request is None else request
    return HealthConfig(
        test=request.test or image.test,
        interval=request.interval or image.interval,
        timeout=request.timeout or image.timeout,
        start_period=request.start_period or image.start_period,
        start_interval=request.start_interval or image.start_interval,
        retries=request.retries or image.retries)


# --- the state ---------------------------------------------------------------------------------


class HealthResult(BaseModel):
    """One probe: RFC 3339 start and end, exit code (-1: timed out or could not run), output."""

    start: str
    end: str
    exit_code: int
    output: str

    def docker(self) -> dict[str, Any]:
        return {"Start": self.start, "End": self.end, "ExitCode": self.exit_code,
                "Output": self.output}


class HealthState(BaseModel):
    """``State.Health``: the status, the consecutive failures, the last results."""

    status: HealthStatus = HealthStatus.STARTING
    failing_streak: int = 0
    log: list[HealthResult] = Field(default_factory=list)

    def docker(self) -> dict[str, Any]:
        return {"Status": self.status.value, "FailingStreak": self.failing_streak,
                "Log": [r.docker() for r in self.log]}


def on_start(state: HealthState | None) -> HealthState:
    """A (re)started container's health: starting, no failing streak, the log kept."""
    log = list(state.log) if state is not None else []
    return HealthState(status=HealthStatus.STARTING, failing_streak=0, log=log)


def on_stop(state: HealthState) -> HealthState:
    """The check stopped (the container exited or was paused): dockerd says ``unhealthy``."""
    return state.model_copy(update={"status": HealthStatus.UNHEALTHY})


def record_result(state: HealthState, result: HealthResult, config: HealthConfig,
                  since_start: int) -> HealthState:
    """The state after ``result``, which began ``since_start`` ns after the container started.

    Success: healthy, streak 0. A failure adds to the streak (unhealthy once it reaches the
    retries) unless the container is still starting within its start period."""
    log = [*state.log, result][-MAX_LOG:]
    if result.exit_code == 0:
        return HealthState(status=HealthStatus.HEALTHY, failing_streak=0, log=log)
    starting = state.status is HealthStatus.STARTING
    if starting and since_start < (config.start_period or DEFAULT_START_PERIOD):
        return state.model_copy(update={"log": log})
    streak = state.failing_streak + 1
    status = HealthStatus.UNHEALTHY if streak >= config.probe_retries else state.status
    return HealthState(status=status, failing_streak=streak, log=log)


def next_delay(config: HealthConfig, elapsed: int, status: HealthStatus) -> int:
    """Nanoseconds until the next probe, ``elapsed`` ns after the container started (dockerd's
    ``getInterval``): the interval; within the start period the start interval while starting,
    and never past the period's end when that comes before a whole interval (dockerd's rule,
    even when the start interval is shorter)."""
    start_period = config.start_period or DEFAULT_START_PERIOD
    if elapsed >= start_period:
        return config.probe_interval
    remaining = start_period - elapsed
    if remaining < config.probe_interval:
        return remaining
    if status is HealthStatus.STARTING:
        return config.start_interval or DEFAULT_START_INTERVAL
    return config.probe_interval


def timeout_output(timeout: int, output: str) -> str:
    """A timed-out probe's Output, in dockerd's words (with what it printed, if anything)."""
    message = f"Health check exceeded timeout ({go_duration_text(timeout)})"
    return f"{message}: {output}" if output else message


def filter_value(state: HealthState | None) -> str:
    """What ``ps --filter health=`` compares: the status, "none" without Health."""
    return state.status.value if state is not None else "none"


class OutputBuffer:
    """A probe's stdout and stderr as they come, up to ``MAX_OUTPUT`` bytes; the rest is
    dropped and "..." marks it (dockerd's limitedBuffer)."""

    def __init__(self, limit: int = MAX_OUTPUT) -> None:
        self._data = bytearray()
        self._limit = limit
        self.truncated = False

    def write(self, data: bytes) -> None:
        room = self._limit - len(self._data)
        if room > 0:
            self._data += data[:room]
        if len(data) > room:
            self.truncated = True

    def text(self) -> str:
        """The output as text (invalid UTF-8 replaced, as Go's JSON encoder does)."""
        return self._data.decode("utf-8", "replace") + ("..." if self.truncated else "")


def rfc3339_nano(nanoseconds: int) -> str:
    """Go's RFC3339Nano in UTC: nanoseconds with trailing zeros (and a bare point) dropped."""
    seconds, fraction = divmod(nanoseconds, SECOND)
    stamp = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    digits = f"{fraction:09d}".rstrip("0")
    return f"{stamp}.{digits}Z" if digits else f"{stamp}Z"
