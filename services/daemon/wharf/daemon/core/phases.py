"""How long each phase of the run path took: the last samples of each, in memory.

``GET /system/phases`` reports them (count, median, p90, max) and ``bench/run_latency.py`` prints
them beside its wall times, so a slow run can be taken apart without a profiler. A phase is a
name and a span of wall time on the daemon (a ``with`` block); nothing is written to disk and
the cost is two ``perf_counter`` calls and a deque append.

The phases, in the order a ``run --rm`` meets them: ``create`` (the whole request, of which
``create.record`` and ``create.bundle``), ``start`` (the whole start, of which
``start.cleanup`` (a previous run's runtime state), ``start.mount``, ``start.network``,
``start.config``, ``start.create`` (conmon and the runtime's create), ``start.start`` (the
runtime's start), ``start.record``), ``exit.detect`` (from the start's end to the exit seen),
``exit.record`` (the exit recorded and the runtime's container deleted), then the removal's
``remove.runtime``, ``remove.bundle``, ``remove.record`` and ``remove.network``.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager

KEEP = 1000  # samples kept per phase


class Phases:
    """The last :data:`KEEP` durations (seconds) of each named phase."""

    def __init__(self, keep: int = KEEP) -> None:
        self.keep = keep
        self._samples: dict[str, deque[float]] = {}
        # told every sample as it comes (/metrics' histogram); not reset by clear()
        self.observers: list[Callable[[str, float], None]] = []

    @contextmanager
    def span(self, name: str) -> Iterator[None]:
        """Time the block as ``name`` (also when it raises)."""
        began = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - began)

    def add(self, name: str, seconds: float) -> None:
        samples = self._samples.get(name)
        if samples is None:
            samples = self._samples[name] = deque(maxlen=self.keep)
        samples.append(seconds)
        for observe in self.observers:
            observe(name, seconds)

    def clear(self) -> None:
        self._samples.clear()

    def summary(self) -> dict[str, dict[str, float]]:
        """Per phase: ``Count``, ``Median``, ``P90`` and ``Max`` in milliseconds."""
        out: dict[str, dict[str, float]] = {}
        for name, samples in sorted(self._samples.items()):
            ordered = sorted(samples)
            out[name] = {"Count": len(ordered),
                         "Median": round(_quantile(ordered, 0.5) * 1000, 3),
                         "P90": round(_quantile(ordered, 0.9) * 1000, 3),
                         "Max": round(ordered[-1] * 1000, 3)}
        return out


def _quantile(ordered: list[float], q: float) -> float:
    """The ``q`` quantile of sorted samples (linear between the nearest two)."""
    position = (len(ordered) - 1) * q
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)
