"""What ``wharf version`` prints, laid out like ``docker version``; without click, so that the
fast path (:mod:`wharf.cli.fast`) prints it too. The command itself is in
:mod:`wharf.cli.commands.system`."""

from __future__ import annotations

import os
import sys

from wharf.version import __version__

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

CLIENT_API_VERSION = "1.41"


def _go_arch() -> str:
    machine = os.uname().machine
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


def client_version() -> dict[str, str]:
    """What ``wharf version`` reports about the CLI itself."""
    return {"Version": __version__, "ApiVersion": CLIENT_API_VERSION,
            "PythonVersion": sys.version.split()[0], "Os": sys.platform,
            "Arch": _go_arch()}


def _kv(lines: list[str], indent: str, pairs: list[tuple[str, object]]) -> None:
    # docker aligns every value of both sections at column 20 (one tabwriter for the page)
    for key, value in pairs:
        lines.append(f"{indent}{key}:".ljust(20) + str(value))


def render_version(client: Mapping[str, str], host: str,
                   server: Mapping[str, Any] | None) -> str:
    """The ``Client:`` and (when known) ``Server:`` sections, aligned like docker's."""
    lines = ["Client:"]
    _kv(lines, " ", [("Version", client["Version"]), ("API version", client["ApiVersion"]),
                     ("Python version", client["PythonVersion"]),
                     ("OS/Arch", f"{client['Os']}/{client['Arch']}"), ("Host", host)])
    if server is None:
        return "\n".join(lines)
    lines += ["", "Server:"]
    components = server.get("Components") or [
        {"Name": "Engine", "Version": server.get("Version", ""), "Details": server}]
    for component in components:
        details: Mapping[str, Any] = component.get("Details") or {}
        lines.append(f" {component.get('Name', '')}:")
        pairs: list[tuple[str, object]] = [("Version", component.get("Version", ""))]
        if component.get("Name") == "Engine":
            api = server.get("ApiVersion", details.get("ApiVersion", ""))
            minimum = server.get("MinAPIVersion", details.get("MinAPIVersion", ""))
            pairs += [("API version", f"{api} (minimum version {minimum})" if minimum else api),
                      ("OS/Arch", f"{server.get('Os', '')}/{server.get('Arch', '')}"),
                      ("Kernel", server.get("KernelVersion", ""))]
        elif details.get("GitCommit"):
            pairs.append(("GitCommit", details["GitCommit"]))
        _kv(lines, "  ", pairs)
    return "\n".join(lines)
