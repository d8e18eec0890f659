"""The CLI's TLS options: Docker's defaults and precedence, ports, and the errors it prints."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from wharf.cli.main import build_cli
from wharf.cli.tls import TLSConfig, describe_tls_error, resolve_tls
from wharf.cli.transport import parse_host
from wharf.errors import InvalidArgument


def _files(base: Path, *names: str) -> Path:
    base.mkdir(parents=True, exist_ok=True)
    for name in names:
        (base / name).write_text("pem")
    return base


def resolve(home: Path, **given: object) -> TLSConfig | None:
    options: dict[str, object] = {"tls": False, "tlsverify": False, "cacert": None,
                                  "cert": None, "key": None, "cert_path": None,
                                  "env_verify": None}
    options.update(given)
    return resolve_tls(home=home, **options)  # type: ignore[arg-type]


def test_no_tls_unless_asked(tmp_path: Path) -> None:
    _files(tmp_path / ".wharf", "ca.pem", "cert.pem", "key.pem")
    assert resolve(tmp_path) is None
    assert resolve(tmp_path, env_verify="") is None


def test_tlsverify_uses_the_files_in_the_cert_path_that_exist(tmp_path: Path) -> None:
    certs = _files(tmp_path / "certs", "ca.pem", "cert.pem", "key.pem")
    config = resolve(tmp_path, tlsverify=True, cert_path=str(certs))
    assert config == TLSConfig(True, str(certs / "ca.pem"), str(certs / "cert.pem"),
                               str(certs / "key.pem"))
    # ~/.wharf is the default; a default file that is missing is simply not used
    _files(tmp_path / ".wharf", "ca.pem")
    assert resolve(tmp_path, tlsverify=True) == TLSConfig(True, str(tmp_path / ".wharf/ca.pem"))


def test_wharf_tls_verify_is_any_non_empty_value(tmp_path: Path) -> None:
    for value in ("1", "0", "yes"):
        config = resolve(tmp_path, env_verify=value)
        assert config is not None and config.verify, value


def test_plain_tls_does_not_verify_but_presents_the_client_cert(tmp_path: Path) -> None:
    certs = _files(tmp_path / "c", "ca.pem", "cert.pem", "key.pem")
    config = resolve(tmp_path, tls=True, cert_path=str(certs))
    assert config == TLSConfig(False, None, str(certs / "cert.pem"), str(certs / "key.pem"))


def test_flags_win_and_must_name_existing_files(tmp_path: Path) -> None:
    _files(tmp_path / ".wharf", "ca.pem")
    mine = _files(tmp_path / "mine", "my-ca.pem", "c.pem", "k.pem")
    config = resolve(tmp_path, tlsverify=True, cacert=str(mine / "my-ca.pem"),
                     cert=str(mine / "c.pem"), key=str(mine / "k.pem"))
    assert config == TLSConfig(True, str(mine / "my-ca.pem"), str(mine / "c.pem"),
                               str(mine / "k.pem"))
    with pytest.raises(InvalidArgument, match=r"--tlscacert .*no such file"):
        resolve(tmp_path, tlsverify=True, cacert=str(tmp_path / "nope.pem"))
    with pytest.raises(InvalidArgument, match="go together"):
        resolve(tmp_path, tlsverify=True, cert=str(mine / "c.pem"))


def test_tcp_port_defaults_to_2376_only_with_tls() -> None:
    tls = TLSConfig(True)
    host = parse_host("tcp://node3.example", tls)
    assert (host.url, host.address, host.tls) == ("tcp://node3.example:2376",
                                                  ("node3.example", 2376), tls)
    assert parse_host("tcp://[::1]", tls).address == ("::1", 2376)
    assert parse_host("tcp://10.0.0.3:4000", tls).address == ("10.0.0.3", 4000)
    with pytest.raises(InvalidArgument, match="expected tcp://HOST:PORT"):
        parse_host("tcp://node3.example")
    with pytest.raises(InvalidArgument):
        parse_host("tcp://node3.example:0", tls)


def _cli(args: list[str], env: dict[str, str] | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(build_cli(), args, env={"WHARF_HOST": None,
                                                        "WHARF_CERT_PATH": None,
                                                        "WHARF_TLS_VERIFY": None, **(env or {})})
    return result.exit_code, result.output


def test_cli_reports_bad_tls_options_before_connecting(tmp_path: Path) -> None:
    code, out = _cli(["-H", "tcp://127.0.0.1:1", "--tlsverify", "--tlscert",
                      str(tmp_path / "missing.pem"), "--tlskey", str(tmp_path / "k"), "ps"])
    assert code == 1
    assert f"--tlscert {tmp_path / 'missing.pem'}: no such file" in out


def test_cli_tls_without_port_dials_2376(tmp_path: Path) -> None:
    # nothing listens on 127.0.0.2:2376 here: the message shows which address was dialled
    code, out = _cli(["-H", "tcp://127.0.0.2", "--tls", "ps"], {"HOME": str(tmp_path)})
    assert code == 1
    assert "Cannot connect to the wharf daemon at tcp://127.0.0.2:2376" in out


def test_cli_env_turns_tls_on(tmp_path: Path) -> None:
    code, out = _cli(["-H", "tcp://127.0.0.2", "ps"],
                     {"HOME": str(tmp_path), "WHARF_TLS_VERIFY": "1",
                      "WHARF_CERT_PATH": str(tmp_path / "none")})
    assert code == 1 and "tcp://127.0.0.2:2376" in out


def test_tls_is_ignored_for_unix_sockets(tmp_path: Path) -> None:
    code, out = _cli(["-H", f"unix://{tmp_path}/none.sock", "--tlsverify", "--tlscacert",
                      str(tmp_path / "missing"), "ps"])
    assert code == 1
    assert "Cannot connect to the wharf daemon" in out


def test_tls_error_messages_say_what_to_do() -> None:
    class FakeSSLError(OSError):
        pass

    refused = describe_tls_error("tcp://h:2376", ConnectionResetError("reset"))
    assert "require a client certificate" in refused
    text = describe_tls_error("tcp://h:2376", FakeSSLError("[SSL: CERTIFICATE_VERIFY_FAILED] x"))
    assert "cannot verify the certificate" in text and "--tlscacert" in text
