"""Merging a Docker create request with the image config; records.

HostConfig parsing and checks: test_container_options.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from wharf.daemon.core.containers import config as cfg
from wharf.daemon.core.containers.records import ContainerRecord, ContainerRecords
from wharf.daemon.core.state import StateStore
from wharf.errors import Conflict, InvalidArgument, NotFound

IMAGE = {"config": {"Cmd": ["sh"], "Env": ["PATH=/bin", "A=image"], "WorkingDir": "/srv",
                    "Labels": {"from": "image"}, "User": "nobody"}}


def test_image_defaults_fill_what_the_request_leaves_empty() -> None:
    merged = cfg.merge_config({"Image": "busybox", "Env": ["A=req", "B=2"],
                               "Labels": {"x": "y"}}, IMAGE, "0123456789ab")
    assert merged["Cmd"] == ["sh"] and merged["Entrypoint"] is None
    assert merged["Env"] == ["PATH=/bin", "A=req", "B=2"]
    assert merged["WorkingDir"] == "/srv" and merged["User"] == "nobody"
    assert merged["Labels"] == {"from": "image", "x": "y"}
    assert merged["Hostname"] == "0123456789ab"
    assert cfg.command_line(merged) == ["sh"]


def test_an_entrypoint_in_the_request_drops_the_image_cmd() -> None:
    merged = cfg.merge_config({"Entrypoint": ["echo"]}, IMAGE, "x")
    assert cfg.command_line(merged) == ["echo"]
    merged = cfg.merge_config({"Entrypoint": ["echo"], "Cmd": ["hi"]}, IMAGE, "x")
    assert cfg.command_line(merged) == ["echo", "hi"]


def test_no_command_is_dockers_error() -> None:
    with pytest.raises(InvalidArgument, match="No command specified"):
        cfg.command_line(cfg.merge_config({}, {"config": {}}, "x"))


def test_ps_command_quotes_like_dockerd() -> None:
    assert cfg.docker_command("sh", ["-c", "echo a; echo b"]) == "sh -c 'echo a; echo b'"
    assert cfg.docker_command("/hello", []) == "/hello"


def _record(cid: str, name: str) -> ContainerRecord:
    return ContainerRecord(id=cid, name=name, image="busybox", image_id="sha256:" + "1" * 64,
                           created_at="2026-11-28T00:00:00Z", path="sh", args=[], config={},
                           host_config={})


def test_records_resolve_by_id_name_and_unique_prefix(tmp_path: Path) -> None:
    state = StateStore(tmp_path / "s.db")
    state.open()
    records = ContainerRecords(state)
    records.insert(_record("ab" + "0" * 62, "web"))
    records.insert(_record("ac" + "0" * 62, "db"))
    assert records.resolve("web").id.startswith("ab")
    assert records.resolve("/db").id.startswith("ac")
    assert records.resolve("ab0").name == "web"
    with pytest.raises(Conflict, match="multiple IDs"):
        records.resolve("a")
    with pytest.raises(NotFound, match="No such container: zz"):
        records.resolve("zz")
    with pytest.raises(Conflict, match='"/web" is already in use'):
        records.insert(_record("ad" + "0" * 62, "web"))
    assert records.using_image("sha256:" + "1" * 64) == ["ab0000000000", "ac0000000000"]
    state.close()
