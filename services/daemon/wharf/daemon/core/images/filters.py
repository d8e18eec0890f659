"""Docker's image filters (``dangling``, ``reference``, ``before``, ``since``, ``label``)."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import Protocol

from wharf import reference
from wharf.daemon.core.images.store import ImageRecord
from wharf.errors import InvalidArgument

KNOWN = {"dangling", "reference", "before", "since", "label", "until"}


class Resolver(Protocol):
    def resolve(self, text: str) -> ImageRecord: ...


@dataclass
class ImageFilter:
    """A parsed filter set; every key must match (values of one key are alternatives)."""

    terms: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def parse(cls, terms: dict[str, list[str]]) -> ImageFilter:
        for key in terms:
            if key not in KNOWN:
                raise InvalidArgument(f"invalid filter '{key}'")
        for value in terms.get("dangling", []):
            if value.lower() not in {"true", "false", "1", "0"}:
                raise InvalidArgument(f"invalid filter 'dangling={value}'")
        return cls(terms)

    @property
    def dangling(self) -> bool | None:
        values = self.terms.get("dangling")
        if not values:
            return None
        return values[0].lower() in {"true", "1"}

    def matches(self, record: ImageRecord, images: Resolver) -> bool:
        dangling = self.dangling
        if dangling is not None and dangling != (not record.tags):
            return False
        if "reference" in self.terms and not any(
            _reference_matches(record, pattern) for pattern in self.terms["reference"]
        ):
            return False
        for key, newer in (("before", False), ("since", True)):
            for value in self.terms.get(key, []):
                anchor = images.resolve(value)
                if (record.created_at > anchor.created_at) != newer or record.id == anchor.id:
                    return False
        labels = record.config.get("config", {}).get("Labels") or {}
        return all(_label_matches(labels, term) for term in self.terms.get("label", []))


def _reference_matches(record: ImageRecord, pattern: str) -> bool:
    for name in record.tags:
        ref = reference.parse(name)
        familiar = ref.familiar
        repo_and_tag = f"{familiar}:{ref.tag}" if ref.tag else familiar
        if fnmatch.fnmatchcase(familiar, pattern) or fnmatch.fnmatchcase(repo_and_tag, pattern):
            return True
    return False


def _label_matches(labels: dict[str, str], term: str) -> bool:
    key, sep, value = term.partition("=")
    if key not in labels:
        return False
    return not sep or labels[key] == value
