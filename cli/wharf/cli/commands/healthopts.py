"""The ``Healthcheck`` that the health-check flags of ``run`` and ``create`` make, as the docker
CLI has them (``--health-*``, ``--no-healthcheck``, declared with the other flags in
:mod:`wharf.cli.commands.runflags`): Go durations, docker's messages for a bad value (exit 125),
nothing sent when no flag is given (the image's HEALTHCHECK applies)."""

from __future__ import annotations

from wharf.dockerapi import go_duration
from wharf.errors import InvalidArgument

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

# (flag, option key, Docker's HealthConfig field) of each duration flag
_DURATIONS = (("--health-interval", "health_interval", "Interval"),
              ("--health-timeout", "health_timeout", "Timeout"),
              ("--health-start-period", "health_start_period", "StartPeriod"),
              ("--health-start-interval", "health_start_interval", "StartInterval"))


def healthcheck(opts: Mapping[str, Any]) -> dict[str, Any] | None:
    """``Config.Healthcheck`` from the flags: ``{"Test": ["NONE"]}`` for ``--no-healthcheck``,
    None when no health flag is set (zero values are left out, as docker sends them).

    Raises:
        ValueError: docker's message for an unparsable or negative value, or for
            ``--no-healthcheck`` with a ``--health-*`` flag.
    """
    durations: dict[str, int] = {}
    for flag, key, field in _DURATIONS:
        try:
            durations[field] = go_duration(str(opts[key]))
        except InvalidArgument as exc:
            raise ValueError(f'invalid argument "{opts[key]}" for "{flag}" flag: '
                             f"{exc.message}") from exc
    text = str(opts["health_retries"])
    try:
        retries = int(text, 10)
    except ValueError:
        raise ValueError(f'invalid argument "{text}" for "--health-retries" flag: '
                         f'strconv.ParseInt: parsing "{text}": invalid syntax') from None
    command = str(opts["health_cmd"])
    given = bool(command or retries or any(durations.values()))
    if opts["no_healthcheck"]:
        if given:
            raise ValueError("--no-healthcheck conflicts with --health-* options")
        return {"Test": ["NONE"]}
    if not given:
        return None
    for flag, _, field in _DURATIONS[:2]:
        if durations[field] < 0:
            raise ValueError(f"{flag} cannot be negative")
    if retries < 0:
        raise ValueError("--health-retries cannot be negative")
    for flag, _, field in _DURATIONS[2:]:
        if durations[field] < 0:
            raise ValueError(f"{flag} cannot be negative")
    config: dict[str, Any] = {"Test": ["CMD-SHELL", command]} if command else {}
    config.update({field: value for field, value in durations.items() if value})
    if retries:
        config["Retries"] = retries
    return config
