"""Docker's image filters: the list's (``dangling``, ``reference``, ``before``, ``since``,
``label``, ``until``) and ``image prune``'s (``dangling``, ``until``, ``label``, ``label!``, as
dockerd's ``ImagesPrune`` takes them: ``until`` and the labels are :mod:`prunefilter`'s)."""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from wharf import reference
from wharf.daemon.core import prunefilter
from wharf.daemon.core.images.store import ImageRecord
from wharf.daemon.core.prunefilter import PruneFilter
from wharf.errors import InvalidArgument

KNOWN = {"dangling", "reference", "before", "since", "label", "until"}
PRUNE_KEYS = ("dangling",)  # image prune's own key, besides label, label! and until


class Resolver(Protocol):
    def resolve(self, text: str) -> ImageRecord: ...


@dataclass
class ImageFilter:
    """A parsed filter set; every key must match (values of one key are alternatives)."""

    terms: dict[str, list[str]] = field(default_factory=dict)
    selection: PruneFilter | None = None  # ``until``, ``label`` (and a prune's ``label!``)

    @classmethod
    def parse(cls, terms: dict[str, list[str]]) -> ImageFilter:
        for key in terms:
            if key not in KNOWN:
                raise InvalidArgument(f"invalid filter '{key}'")
        for value in terms.get("dangling", []):
            if value.lower() not in {"true", "false", "1", "0"}:
                raise InvalidArgument(f"invalid filter 'dangling={value}'")
        shared = {key: terms[key] for key in ("until", "label") if terms.get(key)}
        return cls(terms, prunefilter.parse(shared) if shared else None)

    @classmethod
    def for_prune(cls, terms: Mapping[str, list[str]]) -> tuple[bool, ImageFilter]:
        """``POST /images/prune``'s filters, checked in dockerd's order (keys, ``dangling``,
        ``until``): (untagged images only?, the filter the others make).

        Raises:
            InvalidArgument: another key, a bad ``dangling`` or ``until`` (dockerd's words).
        """
        prunefilter.check_keys(terms, (*prunefilter.LABEL_KEYS, "until", *PRUNE_KEYS))
        dangling_only = _prune_dangling(terms.get("dangling"))
        return dangling_only, cls(selection=prunefilter.parse(terms, extra=PRUNE_KEYS))

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
        if self.selection is None:
            return True
        labels = (record.config.get("config") or {}).get("Labels") or {}
        return self.selection.matches(labels, record.created)


def _prune_dangling(values: list[str] | None) -> bool:
    """dockerd: untagged images only unless a value is exactly ``false`` or ``0``; else one
    must be exactly ``true`` or ``1``."""
    if not values:
        return True
    if "false" in values or "0" in values:
        return False
    if "true" in values or "1" in values:
        return True
    raise InvalidArgument(f"invalid filter 'dangling=[{' '.join(values)}]'")


def _reference_matches(record: ImageRecord, pattern: str) -> bool:
    for name in record.tags:
        ref = reference.parse(name)
        familiar = ref.familiar
        repo_and_tag = f"{familiar}:{ref.tag}" if ref.tag else familiar
        if fnmatch.fnmatchcase(familiar, pattern) or fnmatch.fnmatchcase(repo_and_tag, pattern):
            return True
    return False
