"""HostConfig → typed container options: every refusal at create in dockerd's words, the host
checks (CPUs, rlimits, device nodes), and records of an older wharfd that have no options."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
from pathlib import Path
from typing import Any

import pytest

from tests.unit.test_container_service import FakeBundles, FakeImages, FakeRuntime
from wharf.daemon.core.containers import options as opts
from wharf.daemon.core.containers.bundle import Bundles
from wharf.daemon.core.containers.lifecycle import Status
from wharf.daemon.core.containers.records import ContainerRecord, ContainerRecords
from wharf.daemon.core.containers.service import ContainerService
from wharf.daemon.core.events import EventLog
from wharf.daemon.core.network.ports import PortRequest
from wharf.daemon.core.runtime.seccomp_bpf import BpfCache
from wharf.daemon.core.runtime.spec import Resources, build_config
from wharf.daemon.core.state import StateStore
from wharf.errors import InvalidArgument

MiB = 1 << 20
HOST = FakeBundles.host  # 2 CPUs, nofile hard limit 20000
CONFIG: dict[str, Any] = {"Hostname": "0123456789ab", "Env": ["PATH=/bin"], "Cmd": ["sh"]}
# what docker 28's `docker run busybox` sends: zero values everywhere
DOCKER_CLI = {
    "Binds": None, "NetworkMode": "default", "PortBindings": {}, "AutoRemove": False,
    "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0}, "VolumeDriver": "",
    "VolumesFrom": None, "CapAdd": None, "CapDrop": None, "Dns": [], "DnsOptions": [],
    "DnsSearch": [], "ExtraHosts": None, "GroupAdd": None, "IpcMode": "", "Links": None,
    "OomScoreAdj": 0, "PidMode": "", "Privileged": False, "PublishAllPorts": False,
    "ReadonlyRootfs": False, "SecurityOpt": None, "UTSMode": "", "UsernsMode": "",
    "ShmSize": 0, "ConsoleSize": [0, 0], "Memory": 0, "NanoCpus": 0, "CpuShares": 0,
    "CpuPeriod": 0, "CpuQuota": 0, "CpusetCpus": "", "Devices": [], "MemoryReservation": 0,
    "MemorySwap": 0, "MemorySwappiness": None, "PidsLimit": None, "Ulimits": [],
    "MaskedPaths": None, "ReadonlyPaths": None,
}


def _refused(host: dict[str, Any], config: dict[str, Any] | None = None) -> str:
    with pytest.raises(InvalidArgument) as caught:
        opts.parse(host, {**CONFIG, **(config or {})}).check_host(HOST)
    return caught.value.message


def test_links_on_a_user_defined_network_are_taken() -> None:
    # docker-compose run sends the service's dependencies as links
    parsed = opts.parse({"Links": ["ct_db_1:db", "ct_db_1:ct_db_1", "ct_db_1"],
                         "NetworkMode": "ct_default"}, CONFIG)
    assert parsed.network_mode == "ct_default"


@pytest.mark.parametrize(("host", "message"), [
    # dockerd's verifyPlatformContainerResources
    ({"Memory": 1024}, "Minimum memory limit allowed is 6MB"),
    ({"Memory": -5}, "Minimum memory limit allowed is 6MB"),
    ({"Memory": 64 * MiB, "MemorySwap": 32 * MiB},
     "Minimum memoryswap limit should be larger than memory limit, see usage"),
    ({"MemorySwap": 64 * MiB},
     "You should always set the Memory limit when using Memoryswap limit, see usage"),
    ({"MemoryReservation": MiB}, "Minimum memory reservation allowed is 6MB"),
    ({"Memory": 32 * MiB, "MemoryReservation": 64 * MiB},
     "Minimum memory limit can not be less than memory reservation limit, see usage"),
    ({"NanoCpus": 3 * 10**9},
     "Range of CPUs is from 0.01 to 2.00, as there are only 2 CPUs available"),
    ({"NanoCpus": -1}, "Range of CPUs is from 0.01 to 2.00, as there are only 2 CPUs available"),
    ({"NanoCpus": 10**9, "CpuPeriod": 100_000},
     "Conflicting options: Nano CPUs and CPU Period cannot both be set"),
    ({"NanoCpus": 10**9, "CpuQuota": 50_000},
     "Conflicting options: Nano CPUs and CPU Quota cannot both be set"),
    ({"CpuPeriod": 999},
     "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)"),
    ({"CpuQuota": 999}, "CPU cfs quota can not be less than 1ms (i.e. 1000)"),
    ({"CpuShares": -2}, "CPU shares can not be less than 0"),
    ({"ShmSize": -1}, "SHM size can not be less than 0"),
    ({"OomScoreAdj": 1001}, "Invalid value 1001, range for oom score adj is [-1000, 1000]"),
    # ValidateRestartPolicy and validateHostConfig
    ({"RestartPolicy": {"Name": "sometimes"}},
     "invalid restart policy: unknown policy 'sometimes'; use one of 'no', 'always', "
     "'on-failure', or 'unless-stopped'"),
    ({"RestartPolicy": {"Name": "always", "MaximumRetryCount": 2}},
     "invalid restart policy: maximum retry count can only be used with 'on-failure'"),
    ({"RestartPolicy": {"Name": "no", "MaximumRetryCount": -1}},
     "invalid restart policy: maximum retry count can only be used with 'on-failure' and "
     "cannot be negative"),
    ({"RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": -2}},
     "invalid restart policy: maximum retry count cannot be negative"),
    ({"RestartPolicy": {"Name": "always"}, "AutoRemove": True},
     "can't create 'AutoRemove' container with restart policy"),
    # parseSecurityOpt, capabilities
    ({"SecurityOpt": ["bogus"]}, 'invalid --security-opt 1: "bogus"'),
    ({"SecurityOpt": ["foo=bar"]}, 'invalid --security-opt 2: "foo=bar"'),
    ({"SecurityOpt": ["no-new-privileges=maybe"]},
     'invalid --security-opt 2: "no-new-privileges=maybe"'),
    ({"SecurityOpt": ["seccomp=/my/profile.json"]}, "custom seccomp profiles are not supported"),
    ({"CapAdd": ["NOT_A_CAP"]}, "unknown capability: 'NOT_A_CAP'"),
    # devices: the docker CLI's checks, then dockerd's devicesFromPath
    ({"Devices": [{"PathOnHost": "/dev/null", "PathInContainer": "null"}]},
     "null is not an absolute path"),
    ({"Devices": [{"PathOnHost": "/dev/null", "CgroupPermissions": "rwx"}]},
     "bad mode specified: rwx"),
    ({"Devices": [{"PathOnHost": "/dev/null", "CgroupPermissions": "rr"}]},
     "bad mode specified: rr"),
    ({"Devices": [{"PathOnHost": "/dev/no-such-device"}]},
     'error gathering device information while adding custom device "/dev/no-such-device": '
     "no such file or directory"),
    ({"Devices": [{"PathOnHost": "/etc/hostname"}]},
     'error gathering device information while adding custom device "/etc/hostname": '
     "not a device node"),
    # ulimits: go-units' words, then the daemon's own hard limit
    ({"Ulimits": [{"Name": "nofiles", "Soft": 1, "Hard": 1}]}, "invalid ulimit type: nofiles"),
    ({"Ulimits": [{"Name": "nofile", "Soft": 1024, "Hard": 1}]},
     "ulimit soft limit must be less than or equal to hard limit: 1024 > 1"),
    ({"Ulimits": [{"Name": "nofile", "Soft": -1, "Hard": 1024}]},
     "ulimit soft limit must be less than or equal to hard limit: -1 > 1024"),
    ({"Ulimits": [{"Name": "nofile", "Soft": 1024, "Hard": 1048576}]},
     "ulimit nofile: hard limit 1048576 exceeds the daemon's own hard limit 20000"),
    # ports, network, mounts, types
    ({"PortBindings": {"80/sctp": [{"HostPort": "8080"}]}}, "invalid protocol in port"),
    ({"PortBindings": {"80/tcp": [{"HostPort": "70000"}]}}, "invalid host port '70000'"),
    ({"NetworkMode": "container:"}, "network mode container: needs a container name or ID"),
    ({"Links": ["a:b"]}, "--link (Links) is not supported by wharf on the default bridge"),
    ({"Links": ["a:b"], "NetworkMode": "bridge"}, "--link (Links) is not supported by wharf"),
    ({"Links": ["a:b:c"], "NetworkMode": "proj_default"}, "Links must be a list of NAME"),
    ({"Links": "a:b", "NetworkMode": "proj_default"}, "Links must be a list of NAME"),
    ({"Tmpfs": {"rel": ""}},
     "invalid mount config for type \"tmpfs\": invalid mount path: 'rel' mount path must be "
     "absolute"),
    ({"Dns": ["not-an-ip"]}, "IP address is not correctly formatted: not-an-ip"),
    ({"Memory": "lots"}, "HostConfig.Memory must be a number"),
    ({"RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": "2"}},
     "HostConfig.RestartPolicy.MaximumRetryCount must be a number"),
    ({"Privileged": "yes"}, "HostConfig.Privileged must be a boolean"),
    ({"CapAdd": "NET_ADMIN"}, "HostConfig.CapAdd must be a list of strings"),
])
def test_each_bad_value_is_refused_in_dockers_words(host: dict[str, Any], message: str) -> None:
    assert re.match(re.escape(message), _refused(host)), _refused(host)


@pytest.mark.parametrize(("config", "message"), [
    ({"WorkingDir": "srv"},
     "the working directory 'srv' is invalid, it needs to be an absolute path"),
    ({"StopSignal": "SIGNOPE"}, "Invalid signal: SIGNOPE"),
    ({"ExposedPorts": {"http/tcp": {}}}, "invalid container port 'http/tcp'"),
])
def test_config_fields_that_shape_the_process_are_checked_too(config: dict[str, Any],
                                                              message: str) -> None:
    assert _refused({}, config).startswith(message)


def test_what_the_docker_cli_sends_by_default_is_accepted() -> None:
    options = opts.parse(DOCKER_CLI, CONFIG)
    options.check_host(HOST)
    assert options == opts.ContainerOptions(process=opts.ProcessOptions(
        hostname="0123456789ab", env=["PATH=/bin"]))
    assert options.resources.runtime() == Resources()
    assert options.network == "bridge" and options.port_requests() == []


def test_good_values_become_typed_options() -> None:
    host = {
        "Memory": 64 * MiB, "MemorySwap": -1, "MemoryReservation": 32 * MiB, "NanoCpus": 2 * 10**9,
        "CpuShares": 512, "PidsLimit": 10, "RestartPolicy": {"Name": "on-failure",
                                                           "MaximumRetryCount": 3},
        "NetworkMode": "bridge", "PortBindings": {"80/tcp": [{"HostIp": "127.0.0.1",
                                                              "HostPort": "8080"}]},
        "PublishAllPorts": True, "Devices": [{"PathOnHost": "/dev/null",
                                              "PathInContainer": "/dev/mynull",
                                              "CgroupPermissions": "rw"}],
        "Ulimits": [{"Name": "nofile", "Soft": 1024, "Hard": 20000}],
        "Tmpfs": {"/run": "size=1m"}, "SecurityOpt": ["no-new-privileges:true",
                                                     "seccomp=unconfined", "label=disable"],
        "CapAdd": ["NET_ADMIN"], "ShmSize": 128 * MiB, "OomScoreAdj": -500, "Dns": ["1.1.1.1"],
        "GroupAdd": ["wheel"], "ReadonlyRootfs": True,
    }
    options = opts.parse(host, {**CONFIG, "ExposedPorts": {"80/tcp": {}, "53/udp": {}},
                                "Tty": True, "OpenStdin": True, "StopSignal": "SIGUSR1",
                                "WorkingDir": "/srv", "User": "nobody"})
    options.check_host(HOST)
    assert options.resources.runtime() == Resources(
        memory=64 * MiB, memory_swap=-1, memory_reservation=32 * MiB, nano_cpus=2 * 10**9,
        cpu_shares=512, pids_limit=10)
    assert (options.restart.name, options.restart.max_retries) == ("on-failure", 3)
    assert options.network_mode == "default" and options.network == "bridge"
    assert options.port_requests() == [PortRequest(80, "tcp", "127.0.0.1", 8080, 8080),
                                       PortRequest(53, "udp")]
    node = options.devices[0].node()
    assert (node.path, node.type, node.major, node.minor, node.access) == (
        "/dev/mynull", "c", 1, 3, "rw")
    assert [u.runtime().hard for u in options.ulimits] == [20000]
    assert (options.no_new_privileges, options.seccomp_unconfined) == (True, True)
    assert options.tmpfs == {"/run": "size=1m"} and options.shm_size == 128 * MiB
    assert (options.oom_score_adj, options.dns, options.group_add) == (-500, ["1.1.1.1"],
                                                                       ["wheel"])
    process = options.process
    assert (process.tty, process.open_stdin, process.cwd, process.user) == (
        True, True, "/srv", "nobody")
    assert process.stop_signal == signal.SIGUSR1
    # a record keeps them through its JSON
    assert opts.ContainerOptions.model_validate_json(options.model_dump_json()) == options


def test_unset_swap_and_restart_names_take_dockers_defaults() -> None:
    options = opts.parse({"Memory": 64 * MiB, "RestartPolicy": {"Name": "",
                                                               "MaximumRetryCount": 5}}, CONFIG)
    assert options.resources.memory_swap == 0  # the spec gives twice the memory
    assert (options.restart.name, options.restart.max_retries) == ("no", 5)
    assert opts.parse({"SecurityOpt": ["no-new-privileges=false"]}, CONFIG).no_new_privileges \
        is False


def test_a_device_node_is_read_with_the_given_stat() -> None:
    device = opts.DeviceOption(path_on_host="/dev/x", path_in_container="/dev/y")
    fake = os.stat_result((0o20640, 0, 0, 1, 7, 8, 0, 0, 0, 0),  # char device, mode 640
                          {"st_rdev": os.makedev(4, 5)})
    block = os.stat_result((0o60600, 0, 0, 1, 0, 0, 0, 0, 0, 0), {"st_rdev": 0})

    def char_stat(path: str) -> os.stat_result:
        assert path == "/dev/x"
        return fake

    node = device.node(char_stat)
    assert (node.type, node.major, node.minor, node.file_mode, node.uid, node.gid) == (
        "c", 4, 5, 0o640, 7, 8)
    assert device.node(lambda _p: block).type == "b"


# --- records of an older wharfd -----------------------------------------------------------

CID = "ab" + "0" * 62
# a record exactly as the wharfd before typed options wrote it: no "options"
OLD_RECORD = {
    "id": CID, "name": "old", "image": "img", "image_id": "sha256:" + "1" * 64,
    "created_at": "2026-11-28T00:00:00.000000Z", "path": "run", "args": ["0"],
    "config": {"Hostname": CID[:12], "Domainname": "", "User": "", "AttachStdin": False,
               "AttachStdout": True, "AttachStderr": True, "ExposedPorts": {"80/tcp": {}},
               "Tty": False, "OpenStdin": False, "StdinOnce": False, "Env": ["PATH=/bin"],
               "Cmd": ["run", "0"], "Image": "img", "Volumes": None, "WorkingDir": "",
               "Entrypoint": None, "OnBuild": None, "Labels": {}, "StopSignal": "SIGTERM"},
    "host_config": {**DOCKER_CLI, "NetworkMode": "default", "Memory": 64 * MiB,
                    "PidsLimit": 10, "AutoRemove": False, "PublishAllPorts": True,
                    "RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 2},
                    # ignored by that wharfd, so not applied to its containers now either
                    "Ulimits": [{"Name": "nofile", "Soft": 1, "Hard": 1 << 40}],
                    "Devices": [{"PathOnHost": "/dev/gone", "PathInContainer": "/dev/gone",
                                 "CgroupPermissions": "rwm"}]},
    "runtime": "fake",
    "state": {"status": "exited", "pid": 0, "exit_code": 0, "oom_killed": False, "error": "",
              "started_at": "2026-11-28T00:00:01Z", "finished_at": "2026-11-28T00:00:02Z",
              "conmon_pid": 0, "restart_count": 0, "stopped_by_user": False},
    "exec_ids": [], "mounts": [], "endpoints": {}, "network": {},
}


def _old_store(tmp_path: Path, *records: dict[str, Any]) -> ContainerService:
    state = StateStore(tmp_path / "s.db")
    state.open()
    with state.tx() as db:
        for record in records:
            db.execute("INSERT INTO containers (id, name, image_id, created_at, record)"
                       " VALUES (?,?,?,?,?)", (record["id"], record["name"],
                                                record["image_id"], record["created_at"],
                                                json.dumps(record)))
    return ContainerService(ContainerRecords(state), FakeImages(), FakeRuntime(),  # type: ignore[arg-type]
                            FakeBundles(), EventLog(state))  # type: ignore[arg-type]


def test_an_old_record_gets_its_options_from_its_host_config() -> None:
    record = ContainerRecord.model_validate_json(json.dumps(OLD_RECORD))
    options = record.options
    assert options.resources.memory == 64 * MiB and options.resources.pids_limit == 10
    assert record.restart_policy == opts.RestartOptions(name="on-failure", max_retries=2)
    assert options.port_requests() == [PortRequest(80, "tcp")]  # -P of the exposed port
    assert options.ulimits == [] and options.devices == [] and not options.refused
    assert options.process.hostname == CID[:12] and options.process.cwd == "/"
    # saved again, it carries them; its HostConfig is untouched (inspect shows it)
    again = ContainerRecord.model_validate_json(record.model_dump_json())
    assert again.options == options and again.host_config == OLD_RECORD["host_config"]


def test_old_records_load_and_start_after_an_upgrade(tmp_path: Path) -> None:
    refused = {**OLD_RECORD, "id": "ac" + "0" * 62, "name": "swapless",
               "host_config": {"Memory": 64 * MiB, "MemorySwap": 32 * MiB,
                               "NetworkMode": "host", "AutoRemove": False}}
    service = _old_store(tmp_path, OLD_RECORD, refused)
    assert sorted(r.name for r in service.list_containers()) == ["old", "swapless"]
    assert service.get("swapless").options.network_mode == "host"

    async def start_both() -> None:
        await service.start("old")
        with pytest.raises(InvalidArgument, match="Minimum memoryswap limit should be larger"):
            await service.start("swapless")

    asyncio.run(start_both())
    assert service.get("old").state.status in (Status.RUNNING, Status.EXITED)
    assert service.get("swapless").state.error.startswith("Minimum memoryswap limit")
    assert service.get("swapless").state.status is Status.EXITED


def test_a_refused_create_records_nothing(tmp_path: Path) -> None:
    service = _old_store(tmp_path)
    for host in ({"Memory": 1024}, {"MemorySwap": 64 * MiB},
                 {"Memory": 64 * MiB, "MemorySwap": 8 * MiB}, {"NanoCpus": 64 * 10**9}):
        with pytest.raises(InvalidArgument):
            service.create({"Image": "img", "HostConfig": host}, "refused")
    assert service.list_containers() == []
    record = service.create({"Image": "img", "HostConfig": {"Memory": 64 * MiB,
                                                            "NanoCpus": 10**9}}, "ok")
    assert service.get("ok").options == record.options
    assert service.get("ok").options.resources.nano_cpus == 10**9
    assert service.get("ok").host_config == {"Memory": 64 * MiB, "NanoCpus": 10**9,
                                             "NetworkMode": "default"}


def test_the_oci_spec_is_built_from_the_options(tmp_path: Path) -> None:
    old = ContainerRecord.model_validate_json(json.dumps(OLD_RECORD))
    bundles = Bundles(tmp_path, HOST, {}, BpfCache(tmp_path))
    rootfs = tmp_path / "rootfs"
    (rootfs / "etc").mkdir(parents=True)
    spec = bundles.spec(old, rootfs, "private")
    assert spec.resources == Resources(memory=64 * MiB, pids_limit=10)
    assert spec.ulimits == () and spec.devices == ()  # as that wharfd ran it
    linux = build_config(spec, HOST)["linux"]
    assert linux["resources"]["memory"] == {"limit": 64 * MiB, "swap": 128 * MiB}
    new = old.model_copy(update={"options": opts.parse(
        {"Memory": 64 * MiB, "MemorySwap": 96 * MiB, "NanoCpus": 5 * 10**8,
         "Devices": [{"PathOnHost": "/dev/null", "PathInContainer": "/dev/mynull"}],
         "Ulimits": [{"Name": "nofile", "Soft": 100, "Hard": 200}], "OomScoreAdj": 10},
        OLD_RECORD["config"])})
    config = build_config(bundles.spec(new, rootfs, "private"), HOST)
    assert config["linux"]["resources"]["memory"] == {"limit": 64 * MiB, "swap": 96 * MiB}
    assert config["linux"]["resources"]["cpu"] == {"quota": 50_000, "period": 100_000}
    assert config["linux"]["devices"][0]["path"] == "/dev/mynull"
    assert config["process"]["rlimits"] == [{"type": "RLIMIT_NOFILE", "hard": 200, "soft": 100}]
    assert config["process"]["oomScoreAdj"] == 10
