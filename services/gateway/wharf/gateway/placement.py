"""Where a container goes when the caller names no node: a pure function over the cluster view.

Among the ready nodes whose availability is ``active`` (an operator's ``pause`` or ``drain``
keeps new containers off a node, as Swarm's node availability does) and that satisfy every
constraint, the one with the fewest running containers wins; ties go to the most available
memory, then to the name (so the choice is stable).
Constraints follow Swarm's syntax: ``node.name==x``, ``node.name!=x``, ``node.labels.k==v``,
``node.labels.k!=v``.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum

from wharf.errors import InvalidArgument, Unavailable

# one placement constraint, as Swarm writes them (also the gateway's query pattern)
CONSTRAINT = re.compile(r"^\s*node\.(name|labels\.([a-zA-Z0-9_.-]+))\s*(==|!=)\s*(\S+)\s*$")


class Availability(StrEnum):
    """Whether placement may choose a node (Swarm's node availability): ``active`` yes;
    ``pause`` no, though a container may still be created there by name; ``drain`` no, and
    no container is created there at all (its existing ones keep their lifecycle)."""

    ACTIVE = "active"
    PAUSE = "pause"
    DRAIN = "drain"


_HELD = {Availability.PAUSE: "paused", Availability.DRAIN: "drained"}


@dataclass(frozen=True)
class Candidate:
    name: str
    ready: bool
    running: int
    memory_available: int
    labels: dict[str, str] = field(default_factory=dict)
    availability: Availability = Availability.ACTIVE


@dataclass(frozen=True)
class Constraint:
    key: str  # "name" or a label key
    is_label: bool
    equal: bool
    value: str

    def allows(self, node: Candidate) -> bool:
        actual = node.labels.get(self.key) if self.is_label else node.name
        return (actual == self.value) == self.equal


def parse_constraint(text: str) -> Constraint:
    match = CONSTRAINT.match(text)
    if match is None:
        raise InvalidArgument(f"invalid constraint {text!r}: expected node.name==NAME, "
                              "node.labels.KEY==VALUE (or !=)")
    _field, label, operator, value = match.groups()
    return Constraint(key=label if label else "name", is_label=bool(label),
                      equal=operator == "==", value=value)


def place(nodes: list[Candidate], constraints: list[Constraint]) -> str:
    """The chosen node's name; Unavailable, saying how many nodes are ready and how many of
    those are paused or drained, when no ready and active node qualifies."""
    fitting = [n for n in nodes if n.ready and n.availability is Availability.ACTIVE
               and all(c.allows(n) for c in constraints)]
    if not fitting:
        ready = [n for n in nodes if n.ready]
        detail = f"{len(ready)} of {len(nodes)} nodes ready"
        held = Counter(n.availability for n in ready if n.availability in _HELD)
        detail += "".join(f", {held[kind]} {word}" for kind, word in _HELD.items()
                          if held[kind])
        if constraints:
            detail += ", none matching the constraints"
        elif held:
            detail += ": placement skips paused and drained nodes"
        raise Unavailable(f"no node can take the container ({detail})")
    best = min(fitting, key=lambda n: (n.running, -n.memory_available, n.name))
    return best.name
