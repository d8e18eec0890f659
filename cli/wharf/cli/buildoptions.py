"""What ``wharf build`` asks of ``POST /build`` besides the context: the query parameters.

Kept out of the API client's modules: making this dataclass costs ~1 ms at import, which every
command that talks to the daemon would pay (docs/cli.md "Start-up").
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class BuildOptions:
    """What ``POST /build`` is asked besides the context (Docker's ``ImageBuildOptions``).

    ``build_args`` maps a name to its value, or to None for a name given alone and unset in
    the environment (the daemon then keeps the ARG's default)."""

    tags: tuple[str, ...] = ()
    dockerfile: str = ""
    build_args: Mapping[str, str | None] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    target: str = ""
    network: str = ""
    nocache: bool = False
    pull: bool = False
    quiet: bool = False
    rm: bool = True
    forcerm: bool = False

    def params(self) -> dict[str, str | list[str]]:
        """The query as the docker CLI (28) sends it: what differs from the daemon's defaults
        (``rm=0`` only to keep intermediate containers; ``buildargs`` and ``labels`` as JSON
        objects when there are some), and ``version=1``, the classic builder."""
        params: dict[str, str | list[str]] = {"version": "1"}
        if self.tags:
            params["t"] = list(self.tags)
        if self.build_args:
            params["buildargs"] = json.dumps(dict(self.build_args), sort_keys=True)
        if self.labels:
            params["labels"] = json.dumps(dict(self.labels), sort_keys=True)
        flags = {"nocache": self.nocache, "pull": self.pull, "q": self.quiet,
                 "forcerm": self.forcerm}
        params.update({name: "1" for name, on in flags.items() if on})
        if not self.rm:
            params["rm"] = "0"
        network = "" if self.network == "default" else self.network
        texts = {"dockerfile": self.dockerfile, "target": self.target, "networkmode": network}
        params.update({name: text for name, text in texts.items() if text})
        return params
