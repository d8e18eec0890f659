"""Docker's ``ps`` filters: status, name, id, label, ancestor, exited, health."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from wharf.daemon.core.containers import health
from wharf.daemon.core.containers.lifecycle import Status
from wharf.daemon.core.containers.records import ContainerRecord
from wharf.dockerapi import UP_STATES
from wharf.errors import InvalidArgument

KNOWN = {"status", "name", "id", "label", "ancestor", "exited", "health"}
LISTED = frozenset(Status(state) for state in UP_STATES)  # what `ps` lists without -a


@dataclass
class ContainerFilter:
    terms: dict[str, list[str]]

    @classmethod
    def parse(cls, terms: dict[str, list[str]]) -> ContainerFilter:
        for key, values in terms.items():
            if key not in KNOWN:
                raise InvalidArgument(f"invalid filter '{key}'")
            if key == "status":
                for value in values:
                    if value not in {s.value for s in Status}:
                        raise InvalidArgument(f"invalid filter 'status={value}'")
            if key == "exited" and not all(v.lstrip("-").isdigit() for v in values):
                raise InvalidArgument("invalid filter 'exited': not a number")
            for value in values if key == "health" else ():
                if value not in health.FILTER_VALUES:
                    raise InvalidArgument(f"Unrecognised filter value for health: {value}")
        return cls(terms)

    def matches(self, record: ContainerRecord) -> bool:
        checks: dict[str, Callable[[str], bool]] = {
            "status": lambda v: record.state.status.value == v,
            "name": lambda v: re.search(v, record.name) is not None,
            "id": record.id.startswith,
            "label": lambda v: _label(record, v),
            "ancestor": lambda v: v in (record.image, record.image_id, record.image_id[7:19]),
            "exited": lambda v: (record.state.status is Status.EXITED
                                 and record.state.exit_code == int(v)),
            "health": lambda v: health.filter_value(record.state.health) == v,
        }
        # dockerd: the values of one key match if any does, but every label must be there
        # (docker-compose finds a service's containers by project, service and one-off labels)
        return all((all if key == "label" else any)(checks[key](value) for value in values)
                   for key, values in self.terms.items() if values)


def _label(record: ContainerRecord, term: str) -> bool:
    labels = record.config.get("Labels") or {}
    key, sep, value = term.partition("=")
    return key in labels and (not sep or labels[key] == value)


def select(records: list[ContainerRecord], *, all: bool,
           filters: dict[str, list[str]]) -> list[ContainerRecord]:
    """``docker ps`` selection: running ones (paused and restarting count) unless ``all`` or a
    status filter says otherwise, then the filters (InvalidArgument for an unknown one)."""
    if not all and "status" not in filters:
        records = [r for r in records if r.state.status in LISTED]
    if filters:
        matcher = ContainerFilter.parse(filters)
        records = [r for r in records if matcher.matches(r)]
    return records
