"""``wharf volume …`` and the mount flags of ``run``/``create`` against a fake daemon."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.unit.test_cli_containers import CID, Daemon, run
from wharf.cli.commands.createbody import parse_mount
from wharf.cli.failure import FlagError

VOLUME = {"CreatedAt": "2026-11-28T01:07:14Z", "Driver": "local", "Labels": {"a": "b"},
          "Mountpoint": "/var/lib/wharf/volumes/cap-vol/_data", "Name": "cap-vol",
          "Options": {}, "Scope": "local"}


@pytest.fixture
def daemon() -> Daemon:
    return Daemon()


def _body(request: httpx.Request) -> Any:
    return json.loads(request.read())


# -- volume commands ------------------------------------------------------------------------------
def test_create_sends_dockers_body_and_prints_the_name(daemon: Daemon) -> None:
    daemon.route("POST", "/volumes/create", lambda r: httpx.Response(201, json=VOLUME))
    result = run(daemon, "volume", "create", "--label", "a=b", "-o", "type=tmpfs",
                 "-o", "device=tmpfs", "-o", "o=size=10m", "cap-vol")
    assert result.exit_code == 0, result.output
    assert result.stdout == "cap-vol\n"
    assert _body(daemon.requests[0]) == {
        "Name": "cap-vol", "Driver": "local", "Labels": {"a": "b"},
        "DriverOpts": {"type": "tmpfs", "device": "tmpfs", "o": "size=10m"}}


def test_create_refuses_bad_flags(daemon: Daemon) -> None:
    bad_opt = run(daemon, "volume", "create", "-o", "novalue", "x1")
    assert bad_opt.exit_code == 1 and 'for "--opt" flag' in bad_opt.output
    both = run(daemon, "volume", "create", "--name", "x1", "x2")
    assert both.exit_code == 1 and "conflicting options" in both.output
    assert daemon.requests == []


def test_ls_table_quiet_filters_and_format(daemon: Daemon) -> None:
    other = {**VOLUME, "Name": "aaa", "Labels": {}}
    daemon.route("GET", "/volumes", {"Volumes": [VOLUME, other], "Warnings": None})
    table = run(daemon, "volume", "ls")
    assert table.exit_code == 0, table.output
    assert table.stdout.splitlines() == ["DRIVER    VOLUME NAME", "local     aaa",
                                         "local     cap-vol"]
    quiet = run(daemon, "volume", "ls", "-q", "-f", "dangling=true", "--filter", "label=a")
    assert quiet.stdout == "aaa\ncap-vol\n"
    assert json.loads(daemon.requests[-1].url.params["filters"]) == {
        "dangling": {"true": True}, "label": {"a": True}}
    formatted = run(daemon, "volume", "ls", "--format", "{{.Name}} {{.Labels}} {{.Scope}}")
    assert formatted.stdout == "aaa  local\ncap-vol a=b local\n"
    daemon.route("GET", "/volumes", {"Volumes": None, "Warnings": None})
    assert run(daemon, "volume", "ls").stdout == "DRIVER    VOLUME NAME\n"


def test_inspect_prints_the_documents_and_fails_on_a_missing_one(daemon: Daemon) -> None:
    daemon.route("GET", "/volumes/cap-vol", VOLUME)
    daemon.route("GET", "/volumes/nope", lambda r: httpx.Response(
        404, json={"message": "get nope: no such volume"}))
    result = run(daemon, "volume", "inspect", "cap-vol", "nope")
    assert result.exit_code == 1
    assert json.loads(result.stdout) == [VOLUME]
    assert "Error response from daemon: get nope: no such volume" in result.stderr
    formatted = run(daemon, "volume", "inspect", "-f", "{{.Mountpoint}}", "cap-vol")
    assert formatted.stdout == VOLUME["Mountpoint"] + "\n"


def test_rm_prints_each_name_and_reports_refusals(daemon: Daemon) -> None:
    daemon.route("DELETE", "/volumes/free", 204)
    daemon.route("DELETE", "/volumes/busy", lambda r: httpx.Response(
        409, json={"message": f"remove busy: volume is in use - [{CID}]"}))
    result = run(daemon, "volume", "rm", "-f", "busy", "free")
    assert result.exit_code == 1
    assert result.stdout == "free\n"
    assert "remove busy: volume is in use" in result.stderr
    assert all(r.url.params["force"] == "1" for r in daemon.requests)


def test_prune_asks_first_and_prints_what_went(daemon: Daemon) -> None:
    daemon.route("POST", "/volumes/prune", {"VolumesDeleted": ["a1", "b2"],
                                            "SpaceReclaimed": 2048})
    declined = run(daemon, "volume", "prune", input="n\n")
    assert declined.exit_code == 0 and daemon.requests == []
    assert "not used by at least one container" in declined.stdout
    result = run(daemon, "volume", "prune", "-f", "--filter", "label!=keep")
    assert result.exit_code == 0, result.output
    assert result.stdout == "Deleted Volumes:\na1\nb2\n\nTotal reclaimed space: 2.048kB\n"
    assert json.loads(daemon.requests[0].url.params["filters"]) == {"label!": {"keep": True}}


# -- --mount, -v, --volumes-from on run/create ---------------------------------------------------
def test_parse_mount_like_the_docker_cli() -> None:
    assert parse_mount("type=bind,src=/srv/data,dst=/host2,readonly") == {
        "Type": "bind", "Source": "/srv/data", "Target": "/host2", "ReadOnly": True}
    assert parse_mount("source=v1,target=/d,volume-nocopy,volume-label=a=b,ro=false") == {
        "Type": "volume", "Source": "v1", "Target": "/d", "ReadOnly": False,
        "VolumeOptions": {"NoCopy": True, "Labels": {"a": "b"}}}
    assert parse_mount("type=tmpfs,destination=/t,tmpfs-size=64m,tmpfs-mode=1770") == {
        "Type": "tmpfs", "Target": "/t", "TmpfsOptions": {"SizeBytes": 64 << 20,
                                                          "Mode": 0o1770}}
    assert parse_mount("type=bind,source=/a,target=/b,bind-propagation=rshared")[
        "BindOptions"] == {"Propagation": "rshared"}


@pytest.mark.parametrize(("spec", "message"), [
    ("type=bind,source=/a", "target is required"),
    ("type=nfs,target=/a", "invalid mount type"),
    ("type=bind,src=/a,dst=/b,volume-nocopy", "cannot mix 'volume-*' options with mount type "
     "'bind'"),
    ("type=volume,dst=/b,tmpfs-size=1m", "cannot mix 'tmpfs-*'"),
    ("target=/b,readonly=maybe", "invalid value for readonly: maybe"),
    ("target=/b,tmpfs-mode=9", "invalid value for tmpfs-mode"),
    ("target=/b,source", "invalid field 'source' must be a key=value pair"),
    ("target=/b,colour=red", "unexpected key 'colour'"),
])
def test_parse_mount_errors(spec: str, message: str) -> None:
    with pytest.raises(FlagError, match=message.replace("*", r"\*")):
        parse_mount(spec)


def test_run_sends_mounts_binds_and_volumes_from(daemon: Daemon) -> None:
    daemon.route("POST", "/containers/create", lambda r: httpx.Response(
        201, json={"Id": CID, "Warnings": []}))
    result = run(daemon, "create", "-v", "data:/data", "-v", "/anon",
                 "--mount", "type=bind,src=/srv,dst=/srv,readonly",
                 "--tmpfs", "/run:size=1m", "--volumes-from", "other:ro", "busybox", "true")
    assert result.exit_code == 0, result.output
    body = _body(daemon.requests[0])
    host = body["HostConfig"]
    assert host["Binds"] == ["data:/data"] and body["Volumes"] == {"/anon": {}}
    assert host["Mounts"] == [{"Type": "bind", "Source": "/srv", "Target": "/srv",
                               "ReadOnly": True}]
    assert host["Tmpfs"] == {"/run": "size=1m"} and host["VolumesFrom"] == ["other:ro"]


def test_a_bad_mount_flag_stops_before_any_request(daemon: Daemon) -> None:
    result = run(daemon, "run", "--mount", "type=bind,src=/x", "busybox", "true")
    assert result.exit_code == 125
    assert 'invalid argument "type=bind,src=/x" for "--mount" flag: target is required' in (
        result.output)
    assert daemon.requests == []


def test_generic_inspect_finds_volumes_after_containers_and_images(daemon: Daemon) -> None:
    daemon.route("GET", "/volumes/cap-vol", VOLUME)
    result = run(daemon, "inspect", "cap-vol")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == [VOLUME]
    assert daemon.log == ["GET /containers/cap-vol/json", "GET /images/cap-vol/json",
                          "GET /networks/cap-vol", "GET /volumes/cap-vol"]
    typed = run(daemon, "inspect", "--type", "volume", "nope")
    assert typed.stderr == "Error: No such volume: nope\n"
