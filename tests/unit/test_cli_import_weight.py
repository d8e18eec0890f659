"""The API client stack imports no heavy module: ``wharf run`` pays for every module it loads.

The modules ``wharf run`` needs to talk to the daemon (the API client, the socket transport, the
hijack and the stream pump) keep ``typing``, ``dataclasses`` and the other modules below out of
start-up: annotation-only names sit under ``TYPE_CHECKING``, values are plain classes, and URLs
are parsed and encoded without ``urllib.parse`` (which imports ``ipaddress``). See docs/cli.md
"Start-up".
"""

from __future__ import annotations

import subprocess
import sys
from urllib.parse import urlencode, urlsplit

import pytest

from wharf.cli.tls import TLSConfig
from wharf.cli.transport import Params, parse_host
from wharf.cli.wire import encode_query
from wharf.errors import InvalidArgument

STACK = ("wharf.cli.client", "wharf.cli.wire", "wharf.cli.hijack", "wharf.cli.streams")
HEAVY = frozenset({"typing", "dataclasses", "inspect", "pathlib", "ipaddress", "urllib.parse",
                   "click", "httpx", "pydantic", "ssl"})


def _imported(code: str) -> set[str]:
    """Every module a fresh interpreter imports to run ``code`` (``-X importtime``)."""
    result = subprocess.run([sys.executable, "-X", "importtime", "-c", code],
                            capture_output=True, text=True, check=True)
    # each line: "import time: self [us] | cumulative | <indent>name"
    return {line.rpartition("|")[2].strip() for line in result.stderr.splitlines()
            if line.startswith("import time:")}


def test_the_api_client_stack_imports_no_heavy_module() -> None:
    # what the interpreter loads by itself (site, .pth files) is not the stack's doing
    imported = _imported(f"import {', '.join(STACK)}") - _imported("pass")
    assert set(STACK) <= imported  # the measurement sees the modules themselves
    assert sorted(imported & HEAVY) == []


# What stands in for urllib.parse reads and writes what it does.

@pytest.mark.parametrize("params", [
    {}, {"name": "web"}, {"fromImage": "docker.io/library/busybox", "tag": "1.36"},
    {"filters": '{"label":{"a=b c":true}}', "all": "1"}, {"names": ["a:1", "b/c:2"]},
    {"changes": ["CMD [\"sh\"]", "ENV A=é ü"], "x&y": "1+1=2 ~_.-"}, {"k": []},
])
def test_query_strings_are_urlencodes(params: Params) -> None:
    assert encode_query(params) == urlencode(dict(params), doseq=True)


@pytest.mark.parametrize(("url", "where"), [
    ("unix:///run/wharf/wharfd.sock", "/run/wharf/wharfd.sock"), ("UNIX:///x.sock", "/x.sock"),
    ("unix:/x.sock", "/x.sock"), ("unix:///x.sock?q#f", "/x.sock"), (" unix:///x", "/x"),
    ("unix://run/x.sock", None), ("tcp://h:1", "h:1"), ("TCP://h:1/", "h:1"),
    ("tcp://[::1]:5", "[::1]:5"), ("tcp://h", "h:2376"), ("tcp://u@h:1?q", "u@h:1"),
    ("tcp://h:0", None), ("tcp://h:65536", None), ("tcp://h:x", None), ("tcp://h:1/x", None),
    ("tcp://:1", None), ("http://h:1", None), ("h:1", None), ("/x.sock", None), ("", None),
])
def test_addresses_read_as_urlsplit_reads_them(url: str, where: str | None) -> None:
    """``where``: the socket path or the TCP netloc; None for an address refused."""
    try:
        host = parse_host(url, TLSConfig(True))
    except InvalidArgument:
        assert where is None
        return
    assert host.scheme == urlsplit(url).scheme
    assert (host.socket_path or host.netloc) == where


def test_an_unpaired_bracket_is_an_invalid_address() -> None:
    with pytest.raises(InvalidArgument, match="expected tcp://HOST:PORT"):
        parse_host("tcp://[::1:2376")
