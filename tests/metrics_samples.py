"""Reading a Prometheus exposition in tests: every sample by (name, labels), parsed with
prometheus-client's own parser (which raises on anything not the text format)."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    """Every sample of an exposition by (name, labels)."""
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sample ``name`` with exactly ``labels``; KeyError when there is none."""
    return samples[name, frozenset(labels.items())]


def get(samples: Samples, name: str, **labels: str) -> float:
    """The same, 0 when there is none (a counter not yet incremented has no sample)."""
    return samples.get((name, frozenset(labels.items())), 0.0)
