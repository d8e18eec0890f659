"""login/logout: POST /auth, then credentials in Docker's config.json format, mode 0600."""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path

import httpx

from tests.unit.test_cli_images import FakeDaemon, run
from wharf.cli.config import INDEX_SERVER, ConfigFile, auth_header


def _daemon(accept: bool = True) -> FakeDaemon:
    daemon = FakeDaemon()
    if accept:
        daemon.route("POST", "/auth", lambda r: httpx.Response(
            200, json={"Status": "Login Succeeded", "IdentityToken": ""}))
    else:
        daemon.route("POST", "/auth", lambda r: httpx.Response(
            401, json={"message": "login attempt to http://127.0.0.1:5000/v2/ failed with "
                                  "status: 401 Unauthorized"}))
    return daemon


def test_login_stores_credentials_0600_in_a_0700_dir(tmp_path: Path) -> None:
    conf = tmp_path / "wharf"
    daemon = _daemon()
    result = run(daemon, "--config", str(conf), "login", "127.0.0.1:5000", "-u", "bob",
                 "--password-stdin", input="s3cret\n")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1] == "Login Succeeded"
    assert json.loads(daemon.seen[0].content) == {
        "username": "bob", "password": "s3cret", "serveraddress": "127.0.0.1:5000"}
    path = conf / "config.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(conf.stat().st_mode) == 0o700
    data = json.loads(path.read_text())
    assert data == {"auths": {"127.0.0.1:5000": {"auth": base64.b64encode(b"bob:s3cret").decode()}}}
    assert [p.name for p in conf.iterdir()] == ["config.json"]  # no temp file left behind


def test_login_defaults_to_docker_hub_and_keeps_other_keys(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"psFormat": "x", "auths": {}}))
    result = run(_daemon(), "--config", str(tmp_path), "login", "-u", "al", "-p", "pw")
    assert result.exit_code == 0, result.output
    assert "WARNING! Using --password via the CLI is insecure" in result.output
    data = json.loads((tmp_path / "config.json").read_text())
    assert data["psFormat"] == "x"
    assert list(data["auths"]) == [INDEX_SERVER]
    creds = ConfigFile.load(tmp_path).credentials("docker.io")
    assert creds is not None and (creds.username, creds.password) == ("al", "pw")


def test_failed_login_stores_nothing(tmp_path: Path) -> None:
    result = run(_daemon(accept=False), "--config", str(tmp_path), "login", "127.0.0.1:5000",
                 "-u", "bob", "--password-stdin", input="bad\n")
    assert result.exit_code == 1
    assert result.output.splitlines()[-1].startswith("Error response from daemon: login attempt")
    assert not (tmp_path / "config.json").exists()


def test_password_stdin_needs_username(tmp_path: Path) -> None:
    result = run(_daemon(), "--config", str(tmp_path), "login", "--password-stdin", input="x\n")
    assert result.exit_code == 1
    assert "Must provide --username with --password-stdin" in result.output


def test_logout_removes_credentials(tmp_path: Path) -> None:
    run(_daemon(), "--config", str(tmp_path), "login", "127.0.0.1:5000", "-u", "b",
        "--password-stdin", input="p\n")
    assert auth_header(ConfigFile.load(tmp_path), "127.0.0.1:5000") != "e30="
    result = run(_daemon(), "--config", str(tmp_path), "logout", "127.0.0.1:5000")
    assert result.output == "Removing login credentials for 127.0.0.1:5000\n"
    assert auth_header(ConfigFile.load(tmp_path), "127.0.0.1:5000") == "e30="
    result = run(_daemon(), "--config", str(tmp_path), "logout", "127.0.0.1:5000")
    assert result.output == "Not logged in to 127.0.0.1:5000\n"
