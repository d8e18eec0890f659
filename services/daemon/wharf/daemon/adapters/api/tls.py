"""TLS listeners for the Docker API: the server context.

The half-close over TLS (a hijacked attach or exec whose client ended its input) and the one
uvicorn server for plain and TLS sockets are :mod:`wharf.hijack`'s, shared with the gateway.
"""

from __future__ import annotations

import logging
import ssl
from pathlib import Path

from wharf.errors import InvalidArgument

log = logging.getLogger("wharfd")


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
