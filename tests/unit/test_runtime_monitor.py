"""conmon's command line and sync protocol (against a fake conmon), exit files, the wrapper."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from wharf.daemon.core.runtime import conmon, oci
from wharf.daemon.core.runtime.cgroups import CgroupMode
from wharf.daemon.core.runtime.conmon import ContainerPaths
from wharf.daemon.core.runtime.monitor import ConmonRuntime, CreateRequest, ExitStatus, Runtime
from wharf.errors import DeadlineExceeded, Internal, InvalidArgument, NotFound

CID = "c" * 64

FAKE_CONMON = """#!/bin/sh
# waits for the start byte like conmon, records its argv, answers on the sync pipe
# (dash cannot redirect fds above 9, so the pipes are reopened through /proc)
head -c1 "/proc/self/fd/$_OCI_STARTPIPE" >/dev/null
printf '%s\\n' "$@" > "{argv_file}"
printf '%s\\n' '{reply}' >"/proc/self/fd/$_OCI_SYNCPIPE"
"""


def _executable(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.fixture
def runtime(tmp_path: Path) -> ConmonRuntime:
    (tmp_path / "bin").mkdir()
    binary = _executable(tmp_path / "bin" / "crun", "#!/bin/sh\nexit 0\n")
    rt = oci.make_runtime(oci.RuntimeKind.CRUN, tmp_path / "run", CgroupMode.HYBRID, binary)
    return ConmonRuntime(rt, tmp_path / "run", tmp_path / "containers")


def _fake_conmon(tmp_path: Path, reply: str) -> Path:
    text = FAKE_CONMON.replace("{argv_file}", str(tmp_path / "argv")).replace("{reply}", reply)
    return _executable(tmp_path / "conmon", text)


def test_conmon_runtime_satisfies_the_protocol(runtime: ConmonRuntime) -> None:
    as_protocol: Runtime = runtime
    assert as_protocol.attach_socket(CID) == runtime.paths(CID).socket_dir / CID / "attach"


def test_hybrid_wrapper_is_written_only_for_crun_on_hybrid(tmp_path: Path) -> None:
    (tmp_path / "bin").mkdir()
    binary = _executable(tmp_path / "bin" / "crun", "#!/bin/sh\n")
    rt = oci.make_runtime(oci.RuntimeKind.CRUN, tmp_path, CgroupMode.HYBRID, binary)
    assert rt.wrapper == tmp_path / "crun-hybrid" and os.access(rt.wrapper, os.X_OK)
    text = rt.wrapper.read_text()
    assert "--propagation private" in text and "umount -l /sys/fs/cgroup/unified" in text
    assert str(binary) in text
    for kind, mode in ((oci.RuntimeKind.CRUN, CgroupMode.UNIFIED),
                       (oci.RuntimeKind.RUNC, CgroupMode.HYBRID)):
        assert oci.make_runtime(kind, tmp_path, mode, binary).wrapper is None
    with pytest.raises(InvalidArgument, match="not found"):
        oci.make_runtime(oci.RuntimeKind.CRUN, tmp_path, CgroupMode.HYBRID, tmp_path / "nope")


def test_conmon_argv(runtime: ConmonRuntime) -> None:
    paths = runtime.paths(CID)
    argv = conmon.conmon_argv(runtime.oci, paths, name="web", terminal=True, stdin=True)
    pairs = dict(zip(argv[1::2], argv[2::2], strict=False))
    assert pairs["--api-version"] == "1" and pairs["-c"] == CID and pairs["-u"] == CID
    assert argv[argv.index("-r") + 1] == str(runtime.oci.wrapper)
    assert argv[argv.index("-l") + 1] == f"k8s-file:{paths.log}"
    assert argv[argv.index("--persist-dir") + 1] == str(paths.container_dir / "persist")
    assert argv[argv.index("--runtime-arg") + 1] == f"--root={runtime.oci.root}"
    assert "-t" in argv and "-i" in argv and "--sync" not in argv


def test_create_speaks_the_sync_protocol(tmp_path: Path, runtime: ConmonRuntime) -> None:
    runtime._conmon = _fake_conmon(tmp_path, '{"data": 4242}')
    paths = runtime.paths(CID)
    with pytest.raises(NotFound, match=r"config\.json"):
        runtime.create(CreateRequest(CID, "web"))
    paths.container_dir.mkdir(parents=True)
    paths.config.write_text("{}")
    assert runtime.create(CreateRequest(CID, "web")) == 4242
    assert paths.persist_dir.is_dir() and paths.exit_dir.is_dir()  # pre-created for conmon
    assert (tmp_path / "argv").read_text().splitlines()[:2] == ["--api-version", "1"]


@pytest.mark.parametrize(("reply", "match"), [
    ('{"data": -1, "message": "crun: executable file not found"}', "executable file not found"),
    ("", "without reporting"),
    ("garbage", "unreadable"),
])
def test_create_failures(tmp_path: Path, runtime: ConmonRuntime, reply: str, match: str) -> None:
    runtime._conmon = _fake_conmon(tmp_path, reply)
    paths = runtime.paths(CID)
    paths.container_dir.mkdir(parents=True)
    paths.config.write_text("{}")
    with pytest.raises(Internal, match=match):
        runtime.create(CreateRequest(CID, "web"))


def test_exit_status_and_oom(runtime: ConmonRuntime) -> None:
    paths = runtime.paths(CID)
    assert runtime.exit_status(CID) is None
    with pytest.raises(DeadlineExceeded):
        runtime.wait(CID, timeout=0.01)
    paths.exit_dir.mkdir(parents=True)
    paths.exit_file.write_text("137")
    paths.persist_dir.mkdir(parents=True)
    paths.oom_file.touch()
    status = runtime.wait(CID, timeout=1)
    assert isinstance(status, ExitStatus) and (status.code, status.oom_killed) == (137, True)


def test_resize_writes_to_the_ctl_fifo(runtime: ConmonRuntime) -> None:
    paths = runtime.paths(CID)
    with pytest.raises(NotFound):
        runtime.resize(CID, 40, 120)
    paths.container_dir.mkdir(parents=True)
    os.mkfifo(paths.ctl_fifo)
    reader = os.open(paths.ctl_fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        runtime.resize(CID, 40, 120)
        assert os.read(reader, 100) == b"1 40 120\n"
    finally:
        os.close(reader)


def test_paths_reject_bad_ids(runtime: ConmonRuntime) -> None:
    for bad in ("", "../x", ".hidden", "a/b"):
        with pytest.raises(InvalidArgument):
            runtime.paths(bad)
    assert isinstance(runtime.paths(CID), ContainerPaths)
