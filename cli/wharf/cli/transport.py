"""HTTP to wharfd over a unix socket or TCP: the only module of the CLI that knows httpx.

httpx is imported at the first request, not when this module is imported, so that
``wharf --help`` stays fast. Replies come back as :class:`Reply` / :class:`StreamReply`, so the
layers above never see an httpx type.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping

from wharf.cli.tls import DEFAULT_TLS_PORT
from wharf.errors import DeadlineExceeded, InvalidArgument, Unavailable

TYPE_CHECKING = False  # `typing` costs start-up time (docs/cli.md "Start-up")
if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator
    from typing import Any, Final, Literal, Protocol

    import httpx

    from wharf.cli.tls import TLSConfig
else:
    Protocol = object  # the Protocols below are plain classes at run time (annotations only)

DEFAULT_HOST = "unix:///run/wharf/wharfd.sock"
API_VERSION = "1.41"
CONNECT_TIMEOUT = 5.0
REQUEST_TIMEOUT = 120.0
USER_AGENT = "wharf-cli/0.1.0"

Params = Mapping[str, str | list[str]]


class DaemonUnreachable(Unavailable):
    """Nothing answers at the daemon address (socket missing, connection refused)."""


class TLSRefused(DaemonUnreachable):
    """A TLS connection failed: one side refused the other's certificate, or only one spoke
    TLS. Printed as is, like an unreachable daemon (not as a daemon's error response)."""


class IncompleteReply(Unavailable):
    """The daemon's reply ended before it was complete: EOF before the last chunk or before
    Content-Length bytes, a short chunk, a malformed chunk size, or a connection that broke
    mid-body. A daemon that fails after a streamed reply started can only say so this way (it
    logs why). Printed as is, like an unreachable daemon (not as a daemon's error response)."""


def incomplete_reply(detail: str) -> IncompleteReply:
    """The error for a reply body that stopped short; ``detail`` says how."""
    return IncompleteReply(f"the wharf daemon's reply ended before it was complete ({detail}); "
                           "the daemon's log may say why")


def closed_without_reply(host: Host) -> DaemonUnreachable:
    """The daemon hung up before any reply: with TLS it refused our certificate (asyncio
    sends no alert), without TLS it was probably a TLS port."""
    if host.tls is not None:
        return TLSRefused(
            f"the wharf daemon at {host.url} closed the TLS connection without answering: it "
            "requires a client certificate signed by its CA (--tlsverify --tlscert/--tlskey, or "
            "WHARF_CERT_PATH with cert.pem and key.pem)")
    if host.scheme == "tcp":
        return DaemonUnreachable(
            f"the wharf daemon at {host.url} closed the connection without answering: is it a "
            "TLS port? Use --tlsverify (or WHARF_TLS_VERIFY=1) with the daemon's certificates")
    return DaemonUnreachable(f"the wharf daemon at {host.url} closed the connection without "
                             "answering")


class Host:
    """A parsed ``-H`` address: ``unix:///path`` or ``tcp://host:port`` (``tls`` set when that
    TCP connection speaks TLS; never for a unix socket). A value, like :class:`TLSConfig`."""

    __slots__ = ("netloc", "scheme", "socket_path", "tls", "url")

    def __init__(self, url: str, scheme: str, socket_path: str = "", netloc: str = "",
                 tls: TLSConfig | None = None) -> None:
        self.url: Final = url
        self.scheme: Final = scheme
        self.socket_path: Final = socket_path
        self.netloc: Final = netloc
        self.tls: Final = tls

    def _fields(self) -> tuple[str, str, str, str, TLSConfig | None]:
        return self.url, self.scheme, self.socket_path, self.netloc, self.tls

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Host):
            return NotImplemented
        return self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash(self._fields())

    def __repr__(self) -> str:
        return (f"Host(url={self.url!r}, scheme={self.scheme!r}, "
                f"socket_path={self.socket_path!r}, netloc={self.netloc!r}, tls={self.tls!r})")

    @property
    def address(self) -> tuple[str, int]:
        """The TCP (host, port) to connect to."""
        name, _, port = self.netloc.rpartition(":")
        return name.strip("[]"), int(port)


def parse_host(url: str, tls: TLSConfig | None = None) -> Host:
    """Parse a daemon address; InvalidArgument names the bad address.

    ``tcp://HOST`` without a port means 2376 with TLS (as in the docker CLI); plain TCP needs
    its port spelled out (no silent 2375).
    TLS settings apply to TCP only (a unix socket is protected by its file mode).
    """
    scheme, netloc, path = _split_url(url)
    if scheme == "unix":
        path = netloc + path if netloc else path
        if not path.startswith("/"):
            raise InvalidArgument(f"invalid host {url!r}: a unix address needs an absolute path")
        return Host(url=url, scheme="unix", socket_path=path)
    if scheme == "tcp":
        hostname, port_text = _host_and_port(netloc)
        if port_text and not (port_text.isascii() and port_text.isdigit()
                              and int(port_text) <= 65535):
            raise InvalidArgument(f"invalid host {url!r}: bad port")
        port = int(port_text) if port_text else None
        if (not hostname or path not in ("", "/") or port == 0
                or (port is None and tls is None)):
            raise InvalidArgument(f"invalid host {url!r}: expected tcp://HOST:PORT "
                                  f"(the port may be left out with TLS: {DEFAULT_TLS_PORT})")
        if port is None:
            netloc = f"{netloc}:{DEFAULT_TLS_PORT}"
            url = f"tcp://{netloc}"
        return Host(url=url, scheme="tcp", netloc=netloc, tls=tls)
    raise InvalidArgument(
        f"invalid host {url!r}: use unix:///path/to/socket or tcp://host:port"
    )


# RFC 3986 appendix B: scheme, authority (netloc) and path; a query or fragment is left out.
_URL = re.compile(r"(?:([^:/?#]+):)?(?://([^/?#]*))?([^?#]*)")
_URL_IGNORED = str.maketrans("", "", "\t\r\n")
_C0_OR_SPACE = "".join(map(chr, range(0x21)))


def _split_url(url: str) -> tuple[str, str, str]:
    """The lower-cased scheme, the netloc and the path of ``url``, as ``urlsplit`` reads them.

    Not ``urllib.parse`` itself: it imports ``ipaddress``, which every ``wharf`` would pay for.
    """
    match = _URL.match(url.lstrip(_C0_OR_SPACE).translate(_URL_IGNORED))
    assert match is not None, "the pattern matches every string"
    return (match.group(1) or "").lower(), match.group(2) or "", match.group(3)


def _host_and_port(netloc: str) -> tuple[str, str]:
    """The host name (without brackets) and the port text of ``netloc``, as ``urlsplit``'s
    ``hostname`` and ``port`` read them; "" for none, and no host if a bracket is unpaired."""
    hostinfo = netloc.rpartition("@")[2]
    if ("[" in hostinfo) != ("]" in hostinfo):
        return "", ""
    if "[" in hostinfo:
        hostname, _, rest = hostinfo.partition("[")[2].partition("]")
        return hostname, rest.partition(":")[2]
    hostname, _, port = hostinfo.partition(":")
    return hostname, port


def unreachable_message(host: Host) -> str:
    """What the CLI prints when the daemon does not answer."""
    return (
        f"Cannot connect to the wharf daemon at {host.url}. Is wharfd running? "
        "Start it with `make up` (or `wharfd &`)."
    )


class Reply:
    """A complete HTTP reply."""

    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def __repr__(self) -> str:
        return f"Reply(status={self.status!r}, headers={self.headers!r}, body={self.body!r})"

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")


class StreamReply:
    """A reply whose body is read on demand; close it (or exhaust it) when done."""

    __slots__ = ("_closer", "_response", "headers", "status")

    def __init__(self, status: int, headers: dict[str, str], _response: Any,
                 _closer: Any) -> None:
        self.status = status
        self.headers = headers
        self._response = _response
        self._closer = _closer

    def __repr__(self) -> str:
        return f"StreamReply(status={self.status!r}, headers={self.headers!r})"

    def iter_lines(self) -> Iterator[str]:
        """Body lines without their newline (chunk boundaries do not matter)."""
        yield from _guarded(self._response.iter_lines())

    def iter_bytes(self) -> Iterator[bytes]:
        """Body bytes in chunks as they arrive."""
        yield from _guarded(self._response.iter_bytes())

    def read(self) -> bytes:
        return b"".join(self.iter_bytes())

    def close(self) -> None:
        self._closer.close()


def _guarded(chunks: Iterable[Any]) -> Iterator[Any]:
    """``chunks``; a connection that breaks mid-body is :class:`IncompleteReply` (a timeout
    is left as it is: it is the caller's deadline, not a reply cut short)."""
    httpx = sys.modules.get("httpx")  # only when the httpx transport is in use
    timeouts: tuple[type[BaseException], ...] = (TimeoutError,)
    broken: tuple[type[BaseException], ...] = (OSError,)
    if httpx is not None:
        timeouts, broken = (TimeoutError, httpx.TimeoutException), (OSError, httpx.TransportError)
    try:
        yield from chunks
    except timeouts:
        raise
    except broken as exc:  # h11's "incomplete chunked read" is an httpx.TransportError
        raise incomplete_reply(str(exc) or type(exc).__name__) from exc


class Transport(Protocol):
    """What the API client needs from the wire."""

    def request(self, method: str, path: str, *, params: Params | None = None,
                json: object = None, content: bytes | Iterable[bytes] | None = None,
                headers: Mapping[str, str] | None = None) -> Reply: ...

    def stream(self, method: str, path: str, *, params: Params | None = None,
               json: object = None, content: bytes | Iterable[bytes] | None = None,
               headers: Mapping[str, str] | None = None) -> StreamReply: ...

    def close(self) -> None: ...


class HttpTransport:
    """httpx over a unix socket or TCP, with the ``/v1.41`` prefix on every path.

    ``inject`` replaces the network layer (an ``httpx.MockTransport`` in tests).
    """

    def __init__(self, host: Host, *, inject: object = None, debug: bool = False,
                 prefix: str | None = None) -> None:
        self.host = host
        self._inject = inject
        self._debug = debug
        self._prefix = f"/v{API_VERSION}" if prefix is None else prefix
        self._client: httpx.Client | None = None

    def _http(self) -> httpx.Client:
        if self._client is None:
            import httpx  # noqa: PLC0415 - imported on first use, not at CLI start-up

            if self._inject is not None:
                wire: httpx.BaseTransport = self._inject  # type: ignore[assignment]
                base = "http://d"
            elif self.host.scheme == "unix":
                wire = httpx.HTTPTransport(uds=self.host.socket_path)
                base = "http://d"
            elif self.host.tls is not None:
                wire = httpx.HTTPTransport(verify=self.host.tls.context())
                base = f"https://{self.host.netloc}"
            else:
                wire = httpx.HTTPTransport()
                base = f"http://{self.host.netloc}"
            self._client = httpx.Client(
                transport=wire, base_url=f"{base}{self._prefix}",
                headers={"User-Agent": USER_AGENT},
                timeout=httpx.Timeout(REQUEST_TIMEOUT, connect=CONNECT_TIMEOUT),
            )
        return self._client

    def _build(self, method: str, path: str, *, params: Params | None, json: object,
               content: bytes | Iterable[bytes] | None,
               headers: Mapping[str, str] | None) -> httpx.Request:
        if self._debug:
            print(f"DEBU {method} {path} {dict(params or {})}", file=sys.stderr)
        return self._http().build_request(
            method, path, params=dict(params) if params else None, json=json,
            content=content, headers=dict(headers) if headers else None,
        )

    def request(self, method: str, path: str, *, params: Params | None = None,
                json: object = None, content: bytes | Iterable[bytes] | None = None,
                headers: Mapping[str, str] | None = None) -> Reply:
        """Send one request and read the whole reply."""
        req = self._build(method, path, params=params, json=json, content=content,
                          headers=headers)
        with self._wire_errors():
            resp = self._http().send(req, stream=True)
            try:
                body = b"".join(_guarded(resp.iter_bytes()))
            finally:
                resp.close()
        return Reply(resp.status_code, {k.lower(): v for k, v in resp.headers.items()}, body)

    def stream(self, method: str, path: str, *, params: Params | None = None,
               json: object = None, content: bytes | Iterable[bytes] | None = None,
               headers: Mapping[str, str] | None = None) -> StreamReply:
        """Send one request; the body is read as it arrives, with no read timeout."""
        import httpx  # noqa: PLC0415 - imported on first use, not at CLI start-up

        req = self._build(method, path, params=params, json=json, content=content,
                          headers=headers)
        req.extensions["timeout"] = httpx.Timeout(None, connect=CONNECT_TIMEOUT).as_dict()
        with self._wire_errors():
            resp = self._http().send(req, stream=True)
        return StreamReply(resp.status_code, {k.lower(): v for k, v in resp.headers.items()},
                           resp, resp)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def _wire_errors(self) -> _WireErrors:
        return _WireErrors(self.host)


class _WireErrors:
    """Turns httpx's connection failures into the error kinds the CLI prints."""

    def __init__(self, host: Host) -> None:
        self.host = host

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: object) -> Literal[False]:
        import httpx  # noqa: PLC0415 - imported on first use, not at CLI start-up

        if exc is None:
            return False
        if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | FileNotFoundError):
            raise DaemonUnreachable(unreachable_message(self.host)) from exc
        if isinstance(exc, httpx.TimeoutException):
            raise DeadlineExceeded(f"the wharf daemon at {self.host.url} timed out") from exc
        if isinstance(exc, httpx.TransportError):
            raise Unavailable(f"talking to the wharf daemon at {self.host.url}: {exc}") from exc
        return False
