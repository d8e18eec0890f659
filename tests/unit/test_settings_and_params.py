"""Daemon settings sources and Docker query-string parsing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from wharf.daemon.settings import DaemonSettings
from wharf.dockerapi import parse_filters, parse_time, qbool, unix_seconds
from wharf.errors import InvalidArgument
from wharf.models import AuthConfig


def test_daemon_json_then_env_then_flags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "daemon.json"
    config.write_text(json.dumps({"registry-mirrors": ["http://127.0.0.1:5000"],
                                  "max-concurrent-downloads": 5, "data-root": "/tmp/from-file"}))
    monkeypatch.setenv("WHARF_CONFIG_FILE", str(config))
    monkeypatch.setenv("WHARF_MAX_CONCURRENT_DOWNLOADS", "7")
    settings = DaemonSettings(data_root=Path("/tmp/from-flag"))
    assert settings.registry_mirrors == ["http://127.0.0.1:5000"]
    assert settings.max_concurrent_downloads == 7
    assert settings.data_root == Path("/tmp/from-flag")
    assert settings.socket_path == Path("/run/wharf/wharfd.sock")


def test_bad_settings_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WHARF_CONFIG_FILE", str(tmp_path / "none.json"))
    with pytest.raises(ValidationError):
        DaemonSettings(registry_mirrors=["127.0.0.1:5000"])
    with pytest.raises(ValidationError):
        DaemonSettings(data_root=Path("relative"))
    with pytest.raises(ValidationError):
        DaemonSettings(max_concurrent_downloads=0)
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(InvalidArgument, match="cannot read daemon config"):
        DaemonSettings(config_file=broken)


@pytest.mark.parametrize(("raw", "expected"), [
    (None, False), ("", False), ("0", False), ("False", False), ("no", False), (" none ", False),
    ("1", True), ("True", True), ("yes", True),
])
def test_query_booleans_like_dockerd(raw: str | None, expected: bool) -> None:
    assert qbool(raw) is expected


def test_filters_in_map_and_list_form() -> None:
    assert parse_filters('{"label":{"a=b":true,"c":false}}') == {"label": ["a=b"]}
    assert parse_filters('{"type":["container"]}') == {"type": ["container"]}
    with pytest.raises(InvalidArgument):
        parse_filters("{nope")
    with pytest.raises(InvalidArgument):
        parse_filters("[1]")


def test_timestamps_with_nanoseconds() -> None:
    assert unix_seconds("2026-11-28T01:05:21.808445982Z") == 1795827921
    with pytest.raises(InvalidArgument):
        parse_time("yesterday")


def test_registry_auth_header_round_trip() -> None:
    auth = AuthConfig(username="u", password="p", serveraddress="127.0.0.1:5000")
    assert AuthConfig.from_header(auth.to_header()) == auth
    assert AuthConfig.from_header("e30=") is None
    assert AuthConfig.from_header(None) is None
    with pytest.raises(InvalidArgument):
        AuthConfig.from_header("%%%")
