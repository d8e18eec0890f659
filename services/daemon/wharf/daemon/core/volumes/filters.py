"""Docker's volume filters: ``name`` (regexp search), ``driver``, ``label``, ``dangling``;
prune takes ``label``, ``label!`` and (ignored at API 1.41) ``all``."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from wharf.errors import InvalidArgument

LIST_KEYS = {"name", "driver", "label", "dangling"}
PRUNE_KEYS = {"label", "label!", "all"}
_BOOLS = {"true": True, "1": True, "false": False, "0": False}


@dataclass
class VolumeFilter:
    """A parsed filter set: every key must match; the values of one key are alternatives
    (except ``label``, where every term must match, as in dockerd)."""

    terms: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def parse(cls, terms: Mapping[str, list[str]], *, prune: bool = False) -> VolumeFilter:
        """Validate the keys (list or prune set) and the ``dangling``/``name`` values.

        Raises:
            InvalidArgument: an unknown key, a bad boolean or regular expression.
        """
        known = PRUNE_KEYS if prune else LIST_KEYS
        for key in terms:
            if key not in known:
                raise InvalidArgument(f"invalid filter '{key}'")
        for key in ("dangling", "all"):
            for value in terms.get(key, []):
                if value.lower() not in _BOOLS:
                    raise InvalidArgument(f"invalid filter '{key}={value}'")
        for value in terms.get("name", []):
            try:
                re.compile(value)
            except re.error as exc:
                raise InvalidArgument(f"invalid filter 'name={value}': {exc}") from None
        return cls({k: list(v) for k, v in terms.items()})

    def matches(self, name: str, driver: str, labels: Mapping[str, str], in_use: bool) -> bool:
        names = self.terms.get("name")
        if names and not any(re.search(p, name) for p in names):
            return False
        drivers = self.terms.get("driver")
        if drivers and driver not in drivers:
            return False
        dangling = self.terms.get("dangling")
        if dangling and not any(_BOOLS[d.lower()] == (not in_use) for d in dangling):
            return False
        if not all(label_matches(labels, t) for t in self.terms.get("label", [])):
            return False
        return not any(label_matches(labels, t) for t in self.terms.get("label!", []))


def label_matches(labels: Mapping[str, str], term: str) -> bool:
    """``key`` (present) or ``key=value`` (present with that value)."""
    key, sep, value = term.partition("=")
    if key not in labels:
        return False
    return not sep or labels[key] == value
