"""Volumes without a daemon: names and driver options, mount specs, filters, the store,
seeding from the image, the Docker API routes and the container service's use of volumes."""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.unit.test_container_service import FakeBundles, FakeImages, FakeRuntime
from wharf.daemon.adapters.api.server import create_app
from wharf.daemon.core.containers.records import ContainerRecords
from wharf.daemon.core.containers.service import ContainerService
from wharf.daemon.core.events import EventLog
from wharf.daemon.core.state import MIGRATIONS, StateStore
from wharf.daemon.core.volumes import mountspec, populate
from wharf.daemon.core.volumes import options as vopts
from wharf.daemon.core.volumes.filters import VolumeFilter
from wharf.daemon.core.volumes.mountspec import MountPoint
from wharf.daemon.core.volumes.service import VolumeService
from wharf.daemon.core.volumes.store import VolumeStore
from wharf.errors import Conflict, InvalidArgument, NotFound

NAMES = iter(f"anon{i:04d}" for i in range(10_000))


def anon() -> str:
    return next(NAMES)


# -- names and driver options -------------------------------------------------------------------
@pytest.mark.parametrize("name", ["ab", "my-vol_1.x", "0a"])
def test_valid_names(name: str) -> None:
    assert vopts.validate_name(name) == name


@pytest.mark.parametrize("name", ["a", "-ab", "a b", "a/b", "a:b", ""])
def test_invalid_names_get_dockers_message(name: str) -> None:
    with pytest.raises(InvalidArgument, match="includes invalid characters for a local volume"):
        vopts.validate_name(name)


def test_local_driver_options() -> None:
    assert vopts.local_options("v", {}) == vopts.LocalOptions()
    tmpfs = vopts.local_options("v", {"type": "tmpfs", "device": "tmpfs", "o": "size=10m"})
    assert (tmpfs.kind, tmpfs.device, tmpfs.options) == ("tmpfs", "tmpfs", "size=10m")
    bind = vopts.local_options("v", {"type": "none", "device": "/srv", "o": "bind,ro"})
    assert (bind.kind, bind.device, bind.mounted) == ("bind", "/srv", True)


@pytest.mark.parametrize(("opts", "message"), [
    ({"foo": "bar"}, 'invalid option: "foo"'),
    ({"type": "tmpfs"}, 'missing required option: "device"'),
    ({"o": "size=1m", "device": "tmpfs"}, 'missing required option: "type"'),
    ({"size": "1g"}, "no quota support"),
    ({"type": "tmpfs", "device": "tmpfs", "o": "size=1m,evil"}, "invalid tmpfs option"),
    ({"type": "tmpfs", "device": "tmpfs", "o": "size=lots"}, "invalid tmpfs size"),
    ({"type": "none", "device": "rel", "o": "bind"}, "absolute path"),
    ({"type": "none", "device": "/srv", "o": "bind,weird"}, "invalid bind option"),
    ({"type": "nfs", "device": ":/x", "o": "addr=1.2.3.4"}, "not supported"),
])
def test_local_driver_refusals(opts: dict[str, str], message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        vopts.local_options("v", opts)


def test_only_the_local_driver_exists() -> None:
    assert vopts.check_driver("v", "") == "local"
    with pytest.raises(NotFound, match='plugin "flocker" not found'):
        vopts.check_driver("v", "flocker")


# -- Binds ----------------------------------------------------------------------------------------
def test_bind_specs() -> None:
    named = mountspec.parse_bind("data:/srv/data")
    assert (named.type, named.name, named.destination, named.rw, named.mode) == (
        "volume", "data", "/srv/data", True, "z")
    assert named.copy_data and not named.anonymous
    host = mountspec.parse_bind("/host/dir/:/x:ro,rshared")
    assert (host.type, host.source, host.rw, host.propagation, host.create_source) == (
        "bind", "/host/dir", False, "rshared", True)
    assert mountspec.parse_bind("/h:/x").propagation == "rprivate"
    nocopy = mountspec.parse_bind("v1:/x:nocopy")
    assert not nocopy.copy_data and nocopy.rw
    anonymous = mountspec.parse_bind("/only/dest", anon)
    assert anonymous.anonymous and anonymous.name.startswith("anon")


@pytest.mark.parametrize(("spec", "message"), [
    ("a:b:c:d", "invalid volume specification"),
    ("v::ro", "invalid volume specification"),
    ("v:rel", "mount path must be absolute"),
    ("v:/", "destination can't be '/'"),
    ("v:/x:rw,ro", "invalid mode: rw,ro"),
    ("v:/x:rshared", "invalid mode"),  # propagation is for binds
    ("/h:/x:nocopy", "invalid mode"),  # nocopy is for volumes
    ("v:/x:bogus", "invalid mode: bogus"),
    ("bad name:/x", "invalid characters"),
    ("./rel:/x", "invalid characters"),
])
def test_bad_bind_specs(spec: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        mountspec.parse_bind(spec)


# -- Mounts ---------------------------------------------------------------------------------------
def test_mount_bind_source_must_exist_with_dockers_message() -> None:
    with pytest.raises(InvalidArgument) as info:
        mountspec.parse_mount({"Type": "bind", "Source": "/x", "Target": "/y"},
                              exists=lambda _p: False)
    assert info.value.message == ('invalid mount config for type "bind": bind source path does '
                                  "not exist: /x")
    mount = mountspec.parse_mount({"Type": "bind", "Source": "/x", "Target": "/y",
                                   "ReadOnly": True,
                                   "BindOptions": {"Propagation": "rslave",
                                                   "NonRecursive": True}},
                                  exists=lambda _p: True)
    assert (mount.rw, mount.propagation, mount.recursive, mount.create_source) == (
        False, "rslave", False, False)
    assert mount.oci().options == ("bind", "rslave", "ro")


def test_mount_volume_and_tmpfs() -> None:
    volume = mountspec.parse_mount({"Type": "volume", "Source": "vol", "Target": "/d",
                                    "VolumeOptions": {"NoCopy": True, "Labels": {"a": "b"}}})
    assert (volume.name, volume.copy_data, volume.labels, volume.mode) == (
        "vol", False, {"a": "b"}, "")
    anonymous = mountspec.parse_mount({"Type": "volume", "Target": "/d"}, new_name=anon)
    assert anonymous.anonymous
    tmpfs = mountspec.parse_mount({"Type": "tmpfs", "Target": "/t",
                                   "TmpfsOptions": {"SizeBytes": 64 << 20, "Mode": 0o1777}})
    assert tmpfs.tmpfs_options == "size=64m,mode=1777"
    oci = tmpfs.oci()
    assert (oci.type, oci.options) == ("tmpfs", ("noexec", "nosuid", "nodev", "size=64m",
                                                 "mode=1777"))
    assert mountspec.tmpfs_options({"SizeBytes": 1000}) == "size=1000"
    assert mountspec.tmpfs_options({"SizeBytes": 3 << 10}) == "size=3k"


@pytest.mark.parametrize(("spec", "message"), [
    ({"Type": "npipe", "Target": "/x"}, "mount type unknown"),
    ({"Type": "volume"}, "field Target must not be empty"),
    ({"Type": "volume", "Target": "rel"}, "mount path must be absolute"),
    ({"Type": "bind", "Target": "/x"}, "field Source must not be empty"),
    ({"Type": "tmpfs", "Source": "x", "Target": "/x"}, "field Source must not be specified"),
    ({"Type": "bind", "Source": "/", "Target": "/x", "VolumeOptions": {"NoCopy": True}},
     "field VolumeOptions must not be specified"),
    ({"Type": "volume", "Target": "/x", "ReadOnly": "yes"}, "must be a boolean"),
    ({"Type": "tmpfs", "Target": "/x", "TmpfsOptions": {"SizeBytes": -1}}, "size"),
    ({"Type": "bind", "Source": "/", "Target": "/x", "BindOptions": {"Propagation": "up"}},
     "invalid propagation"),
    ("type=bind", "must be objects"),
])
def test_bad_mounts(spec: Any, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        mountspec.parse_mount(spec)


# -- plan -----------------------------------------------------------------------------------------
def test_plan_precedence_and_anonymous_image_volumes() -> None:
    inherited = [MountPoint(type="volume", name="old", destination="/a"),
                 MountPoint(type="volume", name="kept", destination="/k")]
    mounts = mountspec.plan(
        {"Binds": ["new:/a", "/h:/b:ro"], "Mounts": [{"Type": "tmpfs", "Target": "/c"}],
         "Tmpfs": {"/run": "size=1m"}},
        {"/b": {}, "/data": {}, "/run": {}}, inherited=inherited, new_name=anon)
    by_dest = {m.destination: m for m in mounts}
    assert set(by_dest) == {"/a", "/k", "/b", "/c", "/data"}
    assert by_dest["/a"].name == "new" and by_dest["/k"].name == "kept"
    assert by_dest["/b"].type == "bind" and by_dest["/c"].type == "tmpfs"
    assert by_dest["/data"].anonymous and by_dest["/data"].copy_data


@pytest.mark.parametrize("host", [
    {"Binds": ["va:/x", "vb:/x"]},
    {"Binds": ["va:/x"], "Mounts": [{"Type": "volume", "Target": "/x"}]},
    {"Binds": ["va:/x/"], "Tmpfs": {"/x": ""}},
])
def test_plan_refuses_duplicate_mount_points(host: dict[str, Any]) -> None:
    with pytest.raises(InvalidArgument, match="Duplicate mount point: /x"):
        mountspec.plan(host, None)


def test_plan_takes_the_volume_driver_for_binds() -> None:
    [mount] = mountspec.plan({"Binds": ["vol:/x"], "VolumeDriver": "flocker"}, None)
    assert mount.driver == "flocker"  # and the store answers 404 for an unknown plugin


def test_plan_validates_tmpfs_and_shapes() -> None:
    with pytest.raises(InvalidArgument, match="invalid tmpfs"):
        mountspec.plan({"Tmpfs": {"/x": "size=1m,exec,hacks"}}, None)
    with pytest.raises(InvalidArgument, match="absolute"):
        mountspec.plan({"Tmpfs": {"x": ""}}, None)
    with pytest.raises(InvalidArgument, match="must be lists"):
        mountspec.plan({"Binds": "a:/x"}, None)


def test_inspect_shape_of_mount_points() -> None:
    volume = MountPoint(type="volume", name="v", source="/d/v/_data", destination="/x",
                        driver="local", mode="z")
    assert volume.docker() == {"Type": "volume", "Name": "v", "Source": "/d/v/_data",
                               "Destination": "/x", "Driver": "local", "Mode": "z", "RW": True,
                               "Propagation": ""}
    bind = mountspec.parse_bind("/srv/data:/host:ro")
    assert bind.docker() == {"Type": "bind", "Source": "/srv/data", "Destination": "/host",
                             "Mode": "ro", "RW": False, "Propagation": "rprivate"}
    assert bind.oci().to_oci() == {"destination": "/host", "type": "bind",
                                   "source": "/srv/data", "options": ["rbind", "rprivate", "ro"]}


def test_volumes_from_copies_mounts_with_the_mode() -> None:
    mounts = [MountPoint(type="volume", name="v", destination="/v", anonymous=True),
              MountPoint(type="bind", source="/h", destination="/h", rw=False),
              MountPoint(type="tmpfs", destination="/t")]
    ro = mountspec.from_volumes_from(mounts, "ro")
    assert [(m.destination, m.rw) for m in ro] == [("/v", False), ("/h", False)]
    assert [m.rw for m in mountspec.from_volumes_from(mounts, "")] == [True, False]
    with pytest.raises(InvalidArgument, match="invalid mode"):
        mountspec.from_volumes_from(mounts, "rx")


# -- filters --------------------------------------------------------------------------------------
def test_filters() -> None:
    wanted = VolumeFilter.parse({"name": ["^da"], "label": ["env=prod", "team"]})
    assert wanted.matches("data", "local", {"env": "prod", "team": "x"}, True)
    assert not wanted.matches("data", "local", {"env": "dev", "team": "x"}, True)
    assert not wanted.matches("adata", "local", {"env": "prod", "team": "x"}, True)
    dangling = VolumeFilter.parse({"dangling": ["true"], "driver": ["local"]})
    assert dangling.matches("a", "local", {}, False)
    assert not dangling.matches("a", "local", {}, True)
    not_labelled = VolumeFilter.parse({"label!": ["keep"]}, prune=True)
    assert not not_labelled.matches("a", "local", {"keep": ""}, False)
    for bad, prune in (({"until": ["1h"]}, False), ({"dangling": ["maybe"]}, False),
                       ({"name": ["("]}, False), ({"name": ["a"]}, True)):
        with pytest.raises(InvalidArgument, match="invalid filter"):
            VolumeFilter.parse(bad, prune=prune)


# -- the store ------------------------------------------------------------------------------------
@pytest.fixture
def state(tmp_path: Path) -> Iterator[StateStore]:
    store = StateStore(tmp_path / "state.db")
    store.open()
    yield store
    store.close()


@pytest.fixture
def volumes(state: StateStore, tmp_path: Path) -> VolumeStore:
    return VolumeStore(state, tmp_path / "volumes")


def _container_row(state: StateStore, cid: str) -> None:
    with state.tx() as db:
        db.execute("INSERT INTO containers (id, name, image_id, created_at, record)"
                   " VALUES (?,?,?,?,?)", (cid, cid, "img", "now", "{}"))


def test_migration_5_adds_the_volume_tables(state: StateStore) -> None:
    assert len(MIGRATIONS) >= 5
    with state.tx() as db:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"volumes", "volume_refs"} <= tables


def test_create_is_idempotent_and_lays_out_data(volumes: VolumeStore, tmp_path: Path) -> None:
    volume, created = volumes.create("data", labels={"a": "b"})
    assert created and volume.mountpoint == tmp_path / "volumes/data/_data"
    assert volume.mountpoint.is_dir() and volume.labels == {"a": "b"}
    again, created = volumes.create("data", "local", labels={"other": "x"})
    assert not created and again.labels == {"a": "b"}
    anonymous, _ = volumes.create(None, anonymous=True)
    assert len(anonymous.name) == 64 and anonymous.anonymous
    assert vopts.ANONYMOUS_LABEL in anonymous.labels
    unnamed, _ = volumes.create(None)  # `volume create` without a name: named at random
    assert len(unnamed.name) == 64 and not unnamed.anonymous and unnamed.labels == {}
    with pytest.raises(NotFound, match="get nope: no such volume"):
        volumes.get("nope")
    with pytest.raises(NotFound, match="plugin"):
        volumes.create("vx", "other")


def test_a_volume_in_use_is_never_removed(volumes: VolumeStore, state: StateStore) -> None:
    _container_row(state, "c1")
    volumes.attach("c1", [MountPoint(type="volume", name="data", destination="/d")])
    assert volumes.users("data") == ["c1"]
    for force in (False, True):
        with pytest.raises(Conflict, match=r"remove data: volume is in use - \[c1\]"):
            volumes.remove("data", force=force)
    with state.tx() as db:  # the container goes: its use of the volume goes with it
        db.execute("DELETE FROM containers WHERE id = 'c1'")
    assert volumes.users("data") == []
    (volumes.data_dir("data") / "f").write_text("12345")
    assert volumes.remove("data") == 5
    assert list(volumes.root.iterdir()) == []  # nothing left, not even the moved-aside dir
    with pytest.raises(NotFound):
        volumes.remove("data")
    assert volumes.remove("data", force=True) == 0


def test_attach_fills_in_sources_and_refuses_a_second_driver(volumes: VolumeStore,
                                                             state: StateStore) -> None:
    _container_row(state, "c1")
    mounts = volumes.attach("c1", [
        MountPoint(type="volume", name="vv", destination="/v", labels={"l": "1"}),
        MountPoint(type="bind", source="/h", destination="/h")])
    assert mounts[0].source == str(volumes.data_dir("vv")) and mounts[0].driver == "local"
    assert mounts[1].source == "/h"
    assert volumes.get("vv").labels == {"l": "1"}
    with sqlite3.connect(state.path) as db:  # what was committed
        assert db.execute("SELECT count(*) FROM volume_refs").fetchone()[0] == 1


def test_prune_removes_unused_volumes_matching_labels(volumes: VolumeStore,
                                                      state: StateStore) -> None:
    _container_row(state, "c1")
    volumes.create("keep", labels={"keep": "yes"})
    volumes.create("junk")
    volumes.create("used")
    volumes.attach("c1", [MountPoint(type="volume", name="used", destination="/u")])
    removed, _ = volumes.prune(VolumeFilter.parse({"label!": ["keep"]}, prune=True))
    assert removed == ["junk"]
    removed, _ = volumes.prune(VolumeFilter())
    assert removed == ["keep"]
    assert [v.name for v in volumes.find()] == ["used"]
    listed = volumes.find(VolumeFilter.parse({"dangling": ["false"]}))
    assert [v.name for v in listed] == ["used"]


# -- seeding from the image -----------------------------------------------------------------------
def test_seed_follows_image_symlinks_inside_the_rootfs_only(tmp_path: Path) -> None:
    """The mount path is resolved with ``core.rootpath`` (tests/unit/test_rootpath.py): a link
    to ``/etc`` is the image's /etc, never the host's."""
    root = tmp_path / "rootfs"
    (root / "real/etc").mkdir(parents=True)
    (root / "real/etc/hosts").write_text("image")
    (root / "etc").symlink_to("/real/etc")
    (root / "up").symlink_to("../../../../..")
    (root / "loop").symlink_to("loop")
    (root / "host").symlink_to(tmp_path)
    (tmp_path / "secret").mkdir()
    (tmp_path / "secret/key").write_text("host")
    for destination in ("/etc", "/up/real/etc", "/../../etc"):
        data = tmp_path / "data"
        data.mkdir()
        assert populate.seed(root, destination, data)
        assert [p.name for p in data.iterdir()] == ["hosts"]
        shutil.rmtree(data)
    data = tmp_path / "data"
    data.mkdir()
    for destination in ("/host/secret", "/missing", "/missing/../real/etc", "/loop",
                        "/real/etc/hosts", "/real/etc/hosts/.."):
        assert not populate.seed(root, destination, data), destination
    assert not any(data.iterdir())


def test_seed_copies_owners_and_modes_into_an_empty_volume(tmp_path: Path) -> None:
    root, data = tmp_path / "rootfs", tmp_path / "data"
    (root / "etc/sub").mkdir(parents=True)
    data.mkdir()
    (root / "etc/passwd").write_text("root:x:0:0\n")
    os.chmod(root / "etc/passwd", 0o640)
    os.chown(root / "etc/passwd", 12, 34)
    os.chmod(root / "etc", 0o1777)  # noqa: S103 - the sticky, world-writable mode to copy
    (root / "etc/link").symlink_to("/etc/passwd")
    assert populate.seed(root, "/etc", data)
    st = os.stat(data / "passwd")
    assert (st.st_mode & 0o777, st.st_uid, st.st_gid) == (0o640, 12, 34)
    assert os.stat(data).st_mode & 0o7777 == 0o1777
    assert os.readlink(data / "link") == "/etc/passwd" and (data / "sub").is_dir()
    (root / "etc/new").write_text("x")
    assert not populate.seed(root, "/etc", data)  # not empty: left alone
    assert not (data / "new").exists()
    assert not populate.seed(root, "/nowhere", tmp_path / "data")


# -- the Docker API -------------------------------------------------------------------------------
@pytest.fixture
def api(volumes: VolumeStore, state: StateStore) -> Iterator[TestClient]:
    engine = SimpleNamespace(volumes=VolumeService(volumes, EventLog(state)))
    with TestClient(create_app(engine)) as client:  # type: ignore[arg-type]
        yield client


def test_api_create_inspect_list_remove(api: TestClient) -> None:
    reply = api.post("/v1.41/volumes/create", json={"Name": "cap-vol", "Driver": "local",
                                                     "DriverOpts": {}, "Labels": {"a": "b"}})
    assert reply.status_code == 201
    body = reply.json()
    assert set(body) == {"CreatedAt", "Driver", "Labels", "Mountpoint", "Name", "Options",
                         "Scope"}
    assert (body["Name"], body["Scope"], body["Labels"]) == ("cap-vol", "local", {"a": "b"})
    assert body["Mountpoint"].endswith("/volumes/cap-vol/_data")
    assert api.get("/volumes/cap-vol").json() == body
    listed = api.get("/volumes", params={"filters": '{"label":{"a=b":true}}'}).json()
    assert listed == {"Volumes": [body], "Warnings": []}
    assert api.get("/volumes", params={"filters": '{"name":["zzz"]}'}).json()["Volumes"] == []
    assert api.delete("/volumes/cap-vol").status_code == 204
    missing = api.get("/volumes/cap-vol")
    assert (missing.status_code, missing.json()) == (404, {"message":
                                                           "get cap-vol: no such volume"})
    assert api.delete("/volumes/cap-vol").status_code == 404
    assert api.delete("/volumes/cap-vol?force=1").status_code == 204


@pytest.mark.parametrize(("body", "status"), [
    ({"Name": "a b"}, 400),
    ({"Name": 5}, 400),
    ({"Labels": ["a"]}, 400),
    ({"DriverOpts": {"type": 1}}, 400),
    ({"DriverOpts": {"bogus": "1"}}, 400),
    ([1, 2], 400),
    ({"Driver": "nfs-plugin"}, 404),
])
def test_api_create_validates_the_body(api: TestClient, body: Any, status: int) -> None:
    reply = api.post("/volumes/create", json=body)
    assert reply.status_code == status, reply.text
    assert reply.json()["message"]


def test_api_prune_and_events(api: TestClient, state: StateStore) -> None:
    api.post("/volumes/create", json={"Name": "one"})
    anonymous = api.post("/volumes/create", json={}).json()["Name"]
    reply = api.post("/volumes/prune", params={"filters": '{"label":["nothing"]}'})
    assert reply.json() == {"VolumesDeleted": None, "SpaceReclaimed": 0}
    reply = api.post("/volumes/prune").json()
    assert sorted(reply["VolumesDeleted"]) == sorted(["one", anonymous])
    assert api.post("/volumes/prune", params={"filters": '{"until":["1h"]}'}).status_code == 400
    events = [(e.type, e.action, e.actor_id) for e in EventLog(state).history(None, None)]
    assert ("volume", "create", "one") in events and ("volume", "destroy", "one") in events


# -- containers use volumes -----------------------------------------------------------------------
@pytest.fixture
def containers(state: StateStore, volumes: VolumeStore) -> ContainerService:
    events = EventLog(state)
    return ContainerService(ContainerRecords(state), FakeImages(), FakeRuntime(),  # type: ignore[arg-type]
                            FakeBundles(), events,  # type: ignore[arg-type]
                            volumes=VolumeService(volumes, events))


def test_container_mounts_are_recorded_and_rm_v_removes_anonymous_volumes(
        containers: ContainerService, volumes: VolumeStore) -> None:
    record = containers.create({"Image": "img", "Volumes": {"/anon": {}},
                                "HostConfig": {"Binds": ["named:/n"]}}, "c1")
    by_dest = {m.destination: m for m in containers.get("c1").mounts}
    assert by_dest["/n"].source == str(volumes.data_dir("named"))
    anonymous = by_dest["/anon"].name
    assert volumes.users(anonymous) == volumes.users("named") == [record.id]
    with pytest.raises(Conflict, match="volume is in use"):
        volumes.remove("named")
    asyncio.run(containers.remove("c1", volumes=True))
    assert [v.name for v in volumes.find()] == ["named"]  # named volumes stay


def test_rm_without_v_keeps_anonymous_volumes_and_a_bad_spec_creates_nothing(
        containers: ContainerService, volumes: VolumeStore) -> None:
    containers.create({"Image": "img", "HostConfig": {"Binds": ["/a"]}}, "c1")
    asyncio.run(containers.remove("c1"))
    assert len(volumes.find()) == 1 and volumes.users(volumes.find()[0].name) == []
    with pytest.raises(InvalidArgument, match="Duplicate mount point"):
        containers.create({"Image": "img", "HostConfig": {"Binds": ["vx:/d", "vy:/d"]}}, "c2")
    with pytest.raises(InvalidArgument, match="bind source path does not exist"):
        containers.create({"Image": "img", "HostConfig": {"Mounts": [
            {"Type": "bind", "Source": "/no/such/dir", "Target": "/d"}]}}, "c3")
    assert len(volumes.find()) == 1 and containers.list_containers() == []


def test_volumes_from_another_container(containers: ContainerService) -> None:
    containers.create({"Image": "img", "HostConfig": {"Binds": ["shared:/s"]}}, "src")
    containers.create({"Image": "img", "HostConfig": {"VolumesFrom": ["src:ro"]}}, "dst")
    [mount] = containers.get("dst").mounts
    assert (mount.name, mount.rw) == ("shared", False)
    with pytest.raises(NotFound):
        containers.create({"Image": "img", "HostConfig": {"VolumesFrom": ["nope"]}}, "c9")


def test_start_prepares_volumes_and_creates_missing_bind_sources(
        containers: ContainerService, tmp_path: Path) -> None:
    missing = tmp_path / "made/by/start"
    containers.create({"Image": "img", "HostConfig": {"Binds": [f"{missing}:/m", "vol:/v"]}},
                      "c1")
    asyncio.run(containers.start("c1"))
    assert missing.is_dir()
