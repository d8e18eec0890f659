"""The CLI's gateway token: from WHARF_TOKEN or a file (--token-file, WHARF_TOKEN_FILE,
~/.config/wharf/token), never from the command line; a file its group or others may read is
refused, as ssh refuses such a private key. And the gateway's TLS options."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner, Result

from wharf.cli.gateway import TokenSource, parse_gateway, read_token_file
from wharf.cli.main import build_cli
from wharf.cli.session import Hooks
from wharf.errors import InvalidArgument

TOKEN = "wgt_from-a-file"


def _file(path: Path, text: str = TOKEN + "\n", mode: int = 0o600) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)
    return path


def test_a_token_file_of_its_owner_alone_is_read(tmp_path: Path) -> None:
    assert read_token_file(_file(tmp_path / "token")) == TOKEN
    assert read_token_file(_file(tmp_path / "ro", mode=0o400)) == TOKEN
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "token")  # a link to a private file is fine: the file counts
    assert read_token_file(link) == TOKEN


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620, 0o602, 0o660, 0o610])
def test_a_token_file_open_to_group_or_others_is_refused(tmp_path: Path, mode: int) -> None:
    path = _file(tmp_path / "token", mode=mode)
    with pytest.raises(InvalidArgument, match=f"permissions {mode:04o} are too open") as err:
        read_token_file(path)
    assert f"chmod 600 {path}" in err.value.message


def test_a_missing_empty_or_odd_token_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="No such file"):
        read_token_file(tmp_path / "absent")
    with pytest.raises(InvalidArgument, match="expected one token"):
        read_token_file(_file(tmp_path / "empty", ""))
    with pytest.raises(InvalidArgument, match="expected one token"):
        read_token_file(_file(tmp_path / "two", "wgt_a\r\nX-Injected: 1\n"))
    with pytest.raises(InvalidArgument, match="not a regular file"):
        read_token_file(tmp_path)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo, 0o600)
    with pytest.raises(InvalidArgument, match="not a regular file"):  # and does not hang
        read_token_file(fifo)


def test_a_named_file_then_wharf_token_then_the_default_file(tmp_path: Path) -> None:
    named = _file(tmp_path / "named", "wgt_named\n")
    default = _file(tmp_path / "default", "wgt_default\n")
    assert TokenSource(file=named, env="wgt_env", default=default).read() == "wgt_named"
    assert TokenSource(env="wgt_env", default=default).read() == "wgt_env"
    assert TokenSource(default=default).read() == "wgt_default"
    assert TokenSource(default=tmp_path / "absent").read() is None
    with pytest.raises(InvalidArgument, match="WHARF_TOKEN: expected one token"):
        TokenSource(env="two words").read()


# --- through the CLI --------------------------------------------------------------------------


class Recorder:
    """A gateway answering GET /v1/nodes, recording the Authorization it was sent."""

    def __init__(self) -> None:
        self.seen: list[str | None] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request.headers.get("authorization"))
        return httpx.Response(200, json=[])


def _wharf(home: Path, *args: str, **env: str | None) -> tuple[Result, Recorder]:
    gateway = Recorder()
    hooks = Hooks(wire=httpx.MockTransport(gateway), stdout_tty=False, stdin_tty=False)
    base = {"HOME": str(home), "WHARF_GATEWAY": "http://127.0.0.1:8480", "WHARF_TOKEN": None,
            "WHARF_TOKEN_FILE": None}
    result = CliRunner().invoke(build_cli(), list(args), obj=hooks, env={**base, **env})
    return result, gateway


def test_the_cli_sends_the_token_of_its_file_or_env(tmp_path: Path) -> None:
    named = _file(tmp_path / "named", "wgt_named\n")
    result, gateway = _wharf(tmp_path, "--token-file", str(named), "node", "ls",
                             WHARF_TOKEN="wgt_env")
    assert result.exit_code == 0, result.output
    assert gateway.seen == ["Bearer wgt_named"]
    result, gateway = _wharf(tmp_path, "node", "ls", WHARF_TOKEN_FILE=str(named))
    assert gateway.seen == ["Bearer wgt_named"]
    result, gateway = _wharf(tmp_path, "node", "ls", WHARF_TOKEN="wgt_env")
    assert gateway.seen == ["Bearer wgt_env"]
    _file(tmp_path / ".config/wharf/token", "wgt_default\n")
    result, gateway = _wharf(tmp_path, "node", "ls")
    assert result.exit_code == 0 and gateway.seen == ["Bearer wgt_default"]


def test_the_cli_refuses_a_readable_token_file_and_sends_nothing(tmp_path: Path) -> None:
    default = _file(tmp_path / ".config/wharf/token", mode=0o644)
    result, gateway = _wharf(tmp_path, "node", "ls")
    assert result.exit_code == 1 and gateway.seen == []
    assert f"token file {default}: permissions 0644 are too open" in result.output
    assert "Error response from daemon" not in result.output  # the CLI's refusal
    local, _ = _wharf(tmp_path, "--help")  # a command that does not use the gateway runs
    assert local.exit_code == 0


def test_there_is_no_token_option_to_put_a_token_in_argv(tmp_path: Path) -> None:
    result, gateway = _wharf(tmp_path, "--token", "wgt_secret", "node", "ls")
    assert result.exit_code == 2 and "No such option '--token'" in result.output
    assert gateway.seen == []
    assert "--token " not in CliRunner().invoke(build_cli(), ["--help"]).output


def test_an_https_gateway_is_verified_with_the_ca_given(tmp_path: Path) -> None:
    ca = _file(tmp_path / "ca.pem", "ca\n", mode=0o644)
    host = parse_gateway("https://gw.example:8443", str(ca))
    assert host.netloc == "gw.example:8443" and host.tls is not None
    assert host.tls.verify and host.tls.ca_file == str(ca)
    system = parse_gateway("https://gw.example")  # the system's CAs
    assert system.tls is not None and system.tls.ca_file is None
    assert system.netloc == "gw.example:443"
    mutual = parse_gateway("https://gw.example", str(ca), str(ca), str(ca))
    assert mutual.tls is not None and mutual.tls.cert_file == str(ca)
    with pytest.raises(InvalidArgument, match=r"--gateway-cacert .*: no such file"):
        parse_gateway("https://gw.example", str(tmp_path / "absent.pem"))
    with pytest.raises(InvalidArgument, match="are for an https:// gateway"):
        parse_gateway("http://gw.example:8480", str(ca))
    with pytest.raises(InvalidArgument, match="--gateway-cert and --gateway-key go together"):
        parse_gateway("https://gw.example", None, str(ca))
    result, _ = _wharf(tmp_path, "--gateway-cacert", str(ca), "node", "ls")
    assert result.exit_code == 1 and "https:// gateway" in result.output
    assert os.stat(ca).st_mode & 0o777 == 0o644  # a CA is public: no mode check on it
