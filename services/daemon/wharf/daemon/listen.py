"""Where wharfd listens: ``-H unix:///path`` and ``-H tcp://HOST[:PORT]`` addresses (pure).

Parsing lives here, apart from the server, so that settings validation needs neither uvicorn
nor ssl. TLS itself is served by :mod:`wharf.daemon.adapters.api.tls`.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

# dockerd's ports: 2376 for TLS, 2375 for plain TCP.
DEFAULT_TLS_PORT = 2376
DEFAULT_PLAIN_PORT = 2375


@dataclass(frozen=True)
class ListenAddress:
    """One listener: a unix socket path, or a TCP host and port."""

    scheme: str  # "unix" or "tcp"
    path: Path | None = None
    host: str = ""
    port: int = 0

    @property
    def url(self) -> str:
        if self.scheme == "unix":
            return f"unix://{self.path}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"tcp://{host}:{self.port}"


def parse_listen_address(url: str, *, tls: bool) -> ListenAddress:
    """Parse one ``-H`` value; ValueError names what is wrong with it.

    A TCP address without a port gets 2376 when TLS is on, 2375 otherwise (as dockerd).
    """
    parts = urlsplit(url)
    if parts.scheme == "unix":
        path = parts.netloc + parts.path
        if not path.startswith("/"):
            raise ValueError(f"invalid listen address {url!r}: a unix socket needs an absolute "
                             "path (unix:///run/wharf/wharfd.sock)")
        return ListenAddress("unix", path=Path(path))
    if parts.scheme == "tcp":
        try:
            port = parts.port
        except ValueError:
            raise ValueError(f"invalid listen address {url!r}: bad port") from None
        if not parts.hostname or parts.path not in ("", "/") or parts.query:
            raise ValueError(f"invalid listen address {url!r}: expected tcp://HOST[:PORT]")
        if port == 0:
            raise ValueError(f"invalid listen address {url!r}: port 0 is not allowed")
        default = DEFAULT_TLS_PORT if tls else DEFAULT_PLAIN_PORT
        return ListenAddress("tcp", host=parts.hostname, port=port or default)
    raise ValueError(f"invalid listen address {url!r}: use unix:///path or tcp://HOST[:PORT]")


def bind_tcp(address: ListenAddress, backlog: int = 128) -> socket.socket:
    """A listening TCP socket for ``address`` (IPv4, IPv6 or a name that resolves)."""
    family = socket.AF_INET
    try:
        if ipaddress.ip_address(address.host).version == 6:
            family = socket.AF_INET6
    except ValueError:
        infos = socket.getaddrinfo(address.host, address.port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
        family = infos[0][0]
    # proto IPPROTO_TCP: asyncio sets TCP_NODELAY on the connections it accepts only then, and
    # without it a reply written in two parts waits for the client's delayed ACK (~40 ms)
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((address.host, address.port))
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    return sock


def bind_unix_socket(path: Path, mode: int) -> socket.socket:
    """Bind the API socket with ``mode`` set before anyone can connect to it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)  # stale: we hold the data-root lock, so nobody serves it
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o777 & ~mode)
    try:
        sock.bind(str(path))
    finally:
        os.umask(old_umask)
    os.chmod(path, mode)
    sock.listen(128)
    return sock
