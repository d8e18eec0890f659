"""``commit``'s pure parts: the layer tar of an overlay upper dir (whiteouts in OCI form) and the
new image's Config (changes applied, then merged with the container's as dockerd does)."""

from __future__ import annotations

import os
import stat
import tarfile
from pathlib import Path

import pytest

from wharf.cli.commands.commit import split_repository
from wharf.daemon.core.images.commit import commit_config, write_layer
from wharf.daemon.core.images.layers import LayerStore
from wharf.errors import Internal, InvalidArgument


def _can_make_whiteouts(tmp_path: Path) -> bool:
    try:
        os.mknod(tmp_path / "probe", stat.S_IFCHR, os.makedev(0, 0))
        os.setxattr(tmp_path, "trusted.overlay.opaque", b"y")
    except (PermissionError, OSError):
        return False
    os.unlink(tmp_path / "probe")
    os.removexattr(tmp_path, "trusted.overlay.opaque")
    return True


@pytest.fixture
def upper(tmp_path: Path) -> Path:
    """An upper dir as overlayfs leaves it: a new file, a deleted file, a replaced directory."""
    if not _can_make_whiteouts(tmp_path):
        pytest.skip("needs root (mknod, trusted.* xattrs)")
    up = tmp_path / "upper"
    (up / "etc").mkdir(parents=True)
    (up / "marker").write_text("committed\n")
    os.mknod(up / "etc" / "group", stat.S_IFCHR, os.makedev(0, 0))
    (up / "var" / "new").mkdir(parents=True)
    os.setxattr(up / "var", "trusted.overlay.opaque", b"y")
    (up / "proc").mkdir()
    return up


def test_write_layer_turns_overlay_whiteouts_into_oci_ones(upper: Path, tmp_path: Path) -> None:
    digest, count = write_layer(upper, tmp_path / "layer.tar", skip={"/proc"})
    with tarfile.open(tmp_path / "layer.tar") as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert sorted(members) == ["etc", "etc/.wh.group", "marker", "var", "var/.wh..wh..opq",
                               "var/new"]
    assert count == len(members)
    assert members["etc/.wh.group"].isreg() and members["etc/.wh.group"].size == 0
    assert not any("trusted.overlay" in k for m in members.values() for k in m.pax_headers)
    layers = LayerStore(tmp_path / "layers")
    assert layers.diff_id_of(tmp_path / "layer.tar", "application/vnd.oci.image.layer.v1.tar",
                             "test") == digest


def test_the_layer_unpacks_back_into_overlay_form(upper: Path, tmp_path: Path) -> None:
    digest, _ = write_layer(upper, tmp_path / "layer.tar", skip={"/proc"})
    layers = LayerStore(tmp_path / "layers")
    try:
        result = layers.unpack(digest, tmp_path / "layer.tar",
                               "application/vnd.oci.image.layer.v1.tar", digest)
    except Internal as exc:  # the confined tar needs CAP_SYS_ADMIN
        pytest.skip(f"cannot unpack here: {exc}")
    diff = layers.diff_path(digest)
    assert result.diff_id == digest
    assert (diff / "marker").read_text() == "committed\n"
    st = os.lstat(diff / "etc" / "group")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
    assert os.getxattr(diff / "var", "trusted.overlay.opaque") == b"y"
    assert not (diff / "var" / ".wh..wh..opq").exists()


def test_a_missing_upper_dir_is_an_empty_layer(tmp_path: Path) -> None:
    _, count = write_layer(tmp_path / "never-started", tmp_path / "layer.tar")
    assert count == 0


CONTAINER = {
    "Cmd": ["sh", "-c", "echo hi"], "Entrypoint": None, "Env": ["PATH=/bin", "A=1"],
    "WorkingDir": "/work", "User": "nobody", "ExposedPorts": {"80/tcp": {}},
    "Labels": {"keep": "yes", "over": "old"}, "Volumes": {"/data": {}},
    "Hostname": "abc", "Tty": True, "StopSignal": "SIGINT",
}


def test_changes_are_applied_then_merged_with_the_container() -> None:
    config = commit_config(CONTAINER, None, [
        'CMD ["cat","/marker"]', "ENV A=2", "EXPOSE 53/udp", "LABEL over=new",
        "ONBUILD RUN true", "STOPSIGNAL SIGQUIT", "VOLUME /logs", "WORKDIR /srv"])
    assert config["Cmd"] == ["cat", "/marker"]
    assert config["Env"] == ["A=2", "PATH=/bin"]
    assert config["ExposedPorts"] == {"80/tcp": {}, "53/udp": {}}
    assert config["Labels"] == {"keep": "yes", "over": "new"}
    assert config["OnBuild"] == ["RUN true"]
    assert config["StopSignal"] == "SIGQUIT"
    assert config["Volumes"] == {"/logs": {}, "/data": {}}
    assert (config["WorkingDir"], config["User"]) == ("/srv", "nobody")
    assert "Hostname" not in config and "Tty" not in config


def test_without_changes_the_container_config_is_kept() -> None:
    config = commit_config(CONTAINER, {}, [])
    assert config["Cmd"] == CONTAINER["Cmd"]
    assert config["Env"] == CONTAINER["Env"]
    assert config["StopSignal"] == "SIGINT"


def test_an_entrypoint_change_drops_the_containers_cmd() -> None:
    config = commit_config(CONTAINER, None, ['ENTRYPOINT ["top"]'])
    assert config["Entrypoint"] == ["top"]
    assert "Cmd" not in config


def test_the_body_config_is_merged_too() -> None:
    config = commit_config(CONTAINER, {"Env": ["B=3"], "Cmd": ["true"]}, [])
    assert config["Env"] == ["B=3", "PATH=/bin", "A=1"]
    assert config["Cmd"] == ["true"]


def test_a_bad_change_line_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="FOO"):
        commit_config(CONTAINER, None, ["FOO bar"])


@pytest.mark.parametrize(("text", "expected"), [
    ("repo", ("repo", "")),
    ("repo:tag", ("repo", "tag")),
    ("localhost:5000/repo", ("localhost:5000/repo", "")),
    ("localhost:5000/repo:v1", ("localhost:5000/repo", "v1")),
])
def test_split_repository(text: str, expected: tuple[str, str]) -> None:
    assert split_repository(text) == expected


def test_change_lines_for_import_and_commit_alike() -> None:
    # one parser for `import --change` and `commit --change`: VOLUME takes paths (it used to
    # become a shell command), ONBUILD and STOPSIGNAL are accepted as dockerd accepts them
    from wharf.daemon.core.images.changes import apply_changes  # noqa: PLC0415

    out = apply_changes({}, ["VOLUME /a /b", 'VOLUME ["/c"]', "ONBUILD RUN make",
                             "STOPSIGNAL SIGINT", "", "ENV A=1"])
    assert out == {"Volumes": {"/a": {}, "/b": {}, "/c": {}}, "OnBuild": ["RUN make"],
                   "StopSignal": "SIGINT", "Env": ["A=1"]}
