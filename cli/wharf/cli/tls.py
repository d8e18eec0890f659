"""The client side of TLS to a TCP daemon: Docker's options, defaults and error messages.

``ssl`` is imported only when a TLS connection is made (it costs ~15 ms, more than
``wharf --help`` should pay). Resolution follows the docker CLI: ``--tlsverify`` (or a
non-empty ``WHARF_TLS_VERIFY``) implies ``--tls``; files default to ``ca.pem``, ``cert.pem`` and
``key.pem`` in ``WHARF_CERT_PATH`` (default ``~/.wharf``) and a default file that does not
exist is simply not used, while a file named on the command line must exist.
"""

from __future__ import annotations

import os
import sys

from wharf.errors import InvalidArgument

TYPE_CHECKING = False  # `typing` costs start-up time (docs/cli.md "Start-up")
if TYPE_CHECKING:
    import ssl
    from typing import Final

DEFAULT_TLS_PORT = 2376


class TLSConfig:
    """How to speak TLS to a daemon. ``verify``: check its certificate (against ``ca_file``,
    or the system CAs without one) and its name; ``cert_file``/``key_file``: our identity.

    A value: immutable, equal to and hashed as its settings (a plain class, not a frozen
    dataclass: ``dataclasses`` costs start-up time)."""

    __slots__ = ("ca_file", "cert_file", "key_file", "verify")

    def __init__(self, verify: bool, ca_file: str | None = None, cert_file: str | None = None,
                 key_file: str | None = None) -> None:
        self.verify: Final = verify
        self.ca_file: Final = ca_file
        self.cert_file: Final = cert_file
        self.key_file: Final = key_file

    def _settings(self) -> tuple[bool, str | None, str | None, str | None]:
        return self.verify, self.ca_file, self.cert_file, self.key_file

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TLSConfig):
            return NotImplemented
        return self._settings() == other._settings()

    def __hash__(self) -> int:
        return hash(self._settings())

    def __repr__(self) -> str:
        return (f"TLSConfig(verify={self.verify!r}, ca_file={self.ca_file!r}, "
                f"cert_file={self.cert_file!r}, key_file={self.key_file!r})")

    def context(self) -> ssl.SSLContext:
        """A client context (made once per config); InvalidArgument when a file cannot be
        loaded."""
        context = _CONTEXTS.get(self)
        if context is None:
            context = _CONTEXTS[self] = self._new_context()
        return context

    def _new_context(self) -> ssl.SSLContext:
        import ssl  # noqa: PLC0415 - only for TLS connections

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            if self.verify:
                if self.ca_file:
                    context.load_verify_locations(cafile=self.ca_file)
                else:
                    context.load_default_certs()
            else:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            if self.cert_file and self.key_file:
                context.load_cert_chain(self.cert_file, self.key_file)
        except (ssl.SSLError, OSError) as exc:
            raise InvalidArgument(f"cannot load TLS files (CA {self.ca_file}, certificate "
                                  f"{self.cert_file}, key {self.key_file}): {exc}") from exc
        return context


_CONTEXTS: dict[TLSConfig, ssl.SSLContext] = {}


def is_tls_error(exc: BaseException) -> bool:
    """True for an error of the TLS layer (handshake, alert, verification)."""
    ssl = sys.modules.get("ssl")  # loaded whenever a TLS connection was attempted
    return ssl is not None and isinstance(exc, ssl.SSLError | ssl.CertificateError)


def resolve_tls(*, tls: bool, tlsverify: bool, cacert: str | None, cert: str | None,
                key: str | None, cert_path: str | None, env_verify: str | None,
                home: str | os.PathLike[str]) -> TLSConfig | None:
    """The TLS settings of one invocation, or None for plain connections.

    ``cert_path`` and ``env_verify`` are ``WHARF_CERT_PATH`` and ``WHARF_TLS_VERIFY``; ``home``
    is the user's home directory.
    InvalidArgument names a file given on the command line that does not exist, or a
    certificate without its key.
    """
    verify = tlsverify or bool(env_verify)
    if not (tls or verify):
        return None
    base = cert_path or os.path.join(home, ".wharf")
    ca_file = _pick(cacert, os.path.join(base, "ca.pem"), "--tlscacert")
    cert_file = _pick(cert, os.path.join(base, "cert.pem"), "--tlscert")
    key_file = _pick(key, os.path.join(base, "key.pem"), "--tlskey")
    if (cert is not None or key is not None) and (cert_file is None) != (key_file is None):
        raise InvalidArgument("--tlscert and --tlskey go together: give both (or neither)")
    if cert_file is None or key_file is None:
        cert_file = key_file = None
    return TLSConfig(verify=verify, ca_file=ca_file if verify else None, cert_file=cert_file,
                     key_file=key_file)


def _pick(given: str | None, default: str, flag: str) -> str | None:
    if given is not None:
        path = os.path.expanduser(given)
        if not os.path.isfile(path):
            raise InvalidArgument(f"{flag} {given}: no such file")
        return path
    return default if os.path.isfile(default) else None


def _who(url: str) -> str:
    return "wharf gateway" if url.startswith("https://") else "wharf daemon"


def describe_tls_error(url: str, exc: BaseException) -> str:
    """A message that says what to do about a failed TLS connection to ``url``."""
    text = str(exc)
    reason = getattr(exc, "reason", None) or ""
    if "CERTIFICATE_VERIFY_FAILED" in text or reason == "CERTIFICATE_VERIFY_FAILED":
        flags = "--gateway-cacert / WHARF_GATEWAY_CACERT" if url.startswith("https://") \
            else "--tlscacert / WHARF_CERT_PATH"
        return (f"cannot verify the certificate of the {_who(url)} at {url}: "
                f"{getattr(exc, 'verify_message', '') or text} (check {flags}, and that the "
                "server certificate names this host)")
    if "CERTIFICATE_REQUIRED" in text or "HANDSHAKE_FAILURE" in text:
        return (f"the wharf daemon at {url} refused the connection: it requires a client "
                "certificate signed by its CA (use --tlsverify --tlscert/--tlskey, or "
                "WHARF_CERT_PATH with cert.pem and key.pem)")
    if "BAD_CERTIFICATE" in text or "UNKNOWN_CA" in text or "DECRYPT_ERROR" in text:
        return (f"the wharf daemon at {url} rejected our client certificate ({text}); it "
                "must be signed by the daemon's CA")
    if "WRONG_VERSION_NUMBER" in text or "RECORD_LAYER" in text:
        return (f"TLS to {url} failed ({text}): is the daemon listening with TLS on that "
                "port?")
    if not is_tls_error(exc):  # a reset right after the handshake: refused by the daemon
        return (f"the wharf daemon at {url} closed the TLS connection ({text}); does it "
                "require a client certificate (--tlsverify --tlscert/--tlskey)?")
    return f"TLS connection to the wharf daemon at {url} failed: {text}"
