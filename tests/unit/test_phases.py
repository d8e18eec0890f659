"""The run path's phase clock (wharf.daemon.core.phases): spans, quantiles, the bound."""

from __future__ import annotations

import pytest

from wharf.daemon.core.phases import Phases


def test_a_span_is_timed_also_when_it_raises() -> None:
    phases = Phases()
    with phases.span("ok"):
        pass
    with pytest.raises(ValueError), phases.span("failed"):
        raise ValueError("x")
    summary = phases.summary()
    assert summary["ok"]["Count"] == 1 and summary["failed"]["Count"] == 1
    assert 0 <= summary["ok"]["Median"] < 50


def test_the_summary_gives_median_p90_and_max_in_milliseconds() -> None:
    phases = Phases()
    for ms in range(1, 11):  # 1..10 ms, out of order
        phases.add("start", (11 - ms) / 1000)
    assert phases.summary() == {"start": {"Count": 10, "Median": 5.5, "P90": 9.1, "Max": 10.0}}


def test_only_the_last_samples_are_kept_and_clear_forgets_them() -> None:
    phases = Phases(keep=3)
    for seconds in (1.0, 1.0, 0.002, 0.002, 0.002):
        phases.add("create", seconds)
    assert phases.summary()["create"] == {"Count": 3, "Median": 2.0, "P90": 2.0, "Max": 2.0}
    phases.clear()
    assert phases.summary() == {}
