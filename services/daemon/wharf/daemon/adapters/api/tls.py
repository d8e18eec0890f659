"""TLS listeners for the Docker API: the server context, half-close over TLS, one uvicorn server.

Why one uvicorn ``Server`` and not two: uvicorn applies its single ``config.ssl`` to every socket
it serves, so a unix socket and a TLS TCP socket cannot share a stock server. Two servers in
one loop would each install signal handlers (the second shadows the first), run the app's
lifespan twice and shut down separately. :class:`ListeningServer` instead lets uvicorn serve
the plain sockets and adds one asyncio server per TLS socket in ``startup``, built from the
same protocol class, server state and app state, and registered in ``self.servers``: one app,
one lifespan, one signal handling, one graceful shutdown that also drains TLS connections.

Why a subclass of asyncio's ``SSLProtocol``: Docker's attach and exec are hijacked byte pipes
in which the client half-closes when its stdin ends (the docker CLI sends TLS ``close_notify``
then; ``wharf`` sends a TCP FIN), and output must keep flowing afterwards. asyncio's TLS
transport treats either as the end of the connection. :class:`HalfCloseTLSProtocol` delivers
the end of input to the application protocol and, when that protocol's ``eof_received``
returns true (the hijacked protocol does), keeps the connection open for writing; otherwise it
behaves exactly as asyncio's. It relies on CPython 3.11's ``asyncio.sslproto`` internals; the
TLS integration tests (attach with stdin over TLS) catch a change there.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from asyncio import sslproto
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import uvicorn

from wharf.errors import InvalidArgument

log = logging.getLogger("wharfd")
HANDSHAKE_TIMEOUT = 10.0

_WRAPPED = sslproto.SSLProtocolState.WRAPPED
_CON_MADE = sslproto.AppProtocolState.STATE_CON_MADE
_EOF = sslproto.AppProtocolState.STATE_EOF
# typeshed describes the pre-3.11 SSLProtocol (no _state, _do_read, ...): typed as Any here.
_SSLProtocol: Any = sslproto.SSLProtocol


def server_context(ca: Path, cert: Path, key: Path, *, verify: bool) -> ssl.SSLContext:
    """A TLS 1.2+ server context; with ``verify`` a client certificate signed by ``ca`` is
    required (Docker's ``--tlsverify``). InvalidArgument names a missing or bad file."""
    needed = [("--tlscert", cert), ("--tlskey", key)] + ([("--tlscacert", ca)] if verify else [])
    for flag, path in needed:
        if not path.is_file():
            raise InvalidArgument(f"TLS file {path} ({flag}) does not exist; create the "
                                  "certificates with `make certs` (docs/tls.md)")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(str(cert), str(key))
        if verify:
            context.load_verify_locations(cafile=str(ca))
    except (ssl.SSLError, OSError) as exc:
        raise InvalidArgument(f"cannot load the TLS certificate {cert} / key {key} / CA {ca}: "
                              f"{exc}") from exc
    context.verify_mode = ssl.CERT_REQUIRED if verify else ssl.CERT_NONE
    return context


class HalfCloseTLSProtocol(_SSLProtocol):  # type: ignore[misc]
    """asyncio's TLS protocol, plus half-close when the application protocol asks for it."""

    _peer_done = False  # the peer ended its input and the app keeps writing
    _skip_shutdown = False  # the read path's shutdown right after that end is not wanted

    def _app_keeps_open(self) -> bool:
        """Tell the app its input ended; True when it keeps the connection for writing."""
        self._app_state = _EOF
        try:
            keep = bool(self._app_protocol.eof_received())
        except Exception as exc:
            self._fatal_error(exc, "Error calling eof_received()")
            return False
        self._peer_done = keep
        return keep

    def _call_eof_received(self) -> None:
        # A close_notify while wrapped; asyncio would shut the connection down next.
        if self._state == _WRAPPED and self._app_state == _CON_MADE:
            if self._app_keeps_open():
                self._skip_shutdown = True
            return
        super()._call_eof_received()

    def _start_shutdown(self) -> None:
        if self._skip_shutdown:
            self._skip_shutdown = False
            return
        super()._start_shutdown()

    def _do_read(self) -> None:
        if self._peer_done:  # nothing more can come; only flush what we owe
            if self._write_backlog:
                self._do_write()
            return
        super()._do_read()

    def eof_received(self) -> bool | None:
        # A TCP FIN without close_notify (a raw half-close) while wrapped.
        if self._state == _WRAPPED and self._app_state == _CON_MADE:
            self._do_read()  # application data that came before the FIN
        if self._state == _WRAPPED and self._app_state == _CON_MADE:
            self._eof_received = True  # no close_notify will come: do not wait for one
            if self._app_keeps_open():
                return True
        elif self._peer_done and self._state == _WRAPPED:
            return True
        result: bool | None = super().eof_received()
        return result


class ListeningServer(uvicorn.Server):
    """uvicorn serving the plain sockets it is given plus ``tls_sockets`` with their contexts."""

    def __init__(self, config: uvicorn.Config,
                 tls_sockets: Sequence[tuple[socket.socket, ssl.SSLContext]] = ()) -> None:
        super().__init__(config)
        self.tls_sockets = list(tls_sockets)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.should_exit or not self.started:
            return
        loop = asyncio.get_running_loop()
        for sock, context in self.tls_sockets:
            server = await loop.create_server(self._tls_factory(loop, context), sock=sock,
                                              backlog=self.config.backlog)
            self.servers.append(server)

    def _tls_factory(self, loop: asyncio.AbstractEventLoop,
                     context: ssl.SSLContext) -> Any:
        config, state = self.config, self.server_state

        def factory() -> asyncio.BaseProtocol:
            app = config.http_protocol_class(  # type: ignore[call-arg]
                config=config, server_state=state, app_state=self.lifespan.state, _loop=loop)
            return HalfCloseTLSProtocol(loop, app, context, None, server_side=True,
                                        ssl_handshake_timeout=HANDSHAKE_TIMEOUT)

        return factory
