"""System routes: ping, version, info, disk usage, registry login and the store check."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi.responses import PlainTextResponse, Response
from starlette.concurrency import run_in_threadpool

from wharf.daemon.adapters.api.volumes import volume_shape
from wharf.daemon.adapters.views import diskusage as usage_shapes
from wharf.daemon.core import diskusage
from wharf.daemon.core.engine import Engine
from wharf.daemon.core.system import runtime_paths
from wharf.dockerapi import qbool
from wharf.models import AuthConfig
from wharf.version import __version__

router = APIRouter()
_PING_HEADERS = {"Cache-Control": "no-cache, no-store, must-revalidate", "Pragma": "no-cache"}


def _engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


EngineDep = Annotated[Engine, Depends(_engine)]


@router.head("/_ping")
async def ping_head() -> Response:
    return Response(status_code=200, media_type="text/plain; charset=utf-8",
                    headers=_PING_HEADERS)


@router.get("/_ping")
async def ping() -> Response:
    return PlainTextResponse("OK", headers=_PING_HEADERS)


@router.get("/version")
async def version(engine: EngineDep) -> dict[str, Any]:
    from wharf.daemon.adapters.api.server import API_VERSION, MIN_API_VERSION  # noqa: PLC0415

    details = {"ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION,
               "Os": "linux", "Arch": _go_arch(engine.host.architecture),
               "KernelVersion": engine.host.kernel, "GitCommit": "", "GoVersion": ""}
    return {
        "Platform": {"Name": "wharf"},
        "Components": [{"Name": "Engine", "Version": __version__, "Details": details}],
        "Version": __version__,
        **details,
        "BuildTime": "",
    }


@router.get("/info")
async def info(engine: EngineDep) -> dict[str, Any]:
    host = engine.host
    images = engine.images.list_images()
    runtimes = runtime_paths()
    return {
        "ID": engine.daemon_id,
        "Containers": 0, "ContainersRunning": 0, "ContainersPaused": 0, "ContainersStopped": 0,
        "Images": len(images),
        "Driver": "overlay2",
        "DriverStatus": [["Backing Filesystem", "extfs"], ["Supports d_type", "true"]],
        "DockerRootDir": engine.data_root,
        "Plugins": {"Volume": ["local"], "Network": ["bridge", "host", "null"],
                    "Log": ["k8s-file"]},
        "MemoryLimit": True, "SwapLimit": False, "CpuCfsPeriod": True, "CpuCfsQuota": True,
        "PidsLimit": True, "IPv4Forwarding": True,
        "NCPU": host.ncpu, "MemTotal": host.mem_total,
        "Name": host.hostname, "KernelVersion": host.kernel,
        "OperatingSystem": host.operating_system, "OSType": "linux",
        "Architecture": host.architecture,
        "CgroupDriver": "cgroupfs", "CgroupVersion": host.cgroup_version,
        "IndexServerAddress": "https://index.docker.io/v1/",
        "RegistryConfig": {
            "InsecureRegistryCIDRs": [c for c in engine.insecure_registries if "/" in c],
            "IndexConfigs": {"docker.io": {"Name": "docker.io", "Mirrors": engine.registry_mirrors,
                                           "Secure": True, "Official": True}},
            "Mirrors": engine.registry_mirrors,
        },
        "ServerVersion": __version__,
        "Runtimes": {name: {"path": path} for name, path in runtimes.items()},
        "DefaultRuntime": "crun",
        "Swarm": {"LocalNodeState": "inactive", "NodeID": "", "NodeAddr": "",
                  "ControlAvailable": False, "Error": "", "RemoteManagers": None},
        "LiveRestoreEnabled": True,
        "SecurityOptions": ["name=seccomp,profile=default"],
        "Labels": [], "ExperimentalBuild": False, "Warnings": None,
        "SystemTime": engine.started_at.isoformat(),
    }


@router.get("/system/df")
async def disk_usage(engine: EngineDep, kinds: Annotated[list[str] | None, Query(alias="type")]
                     = None) -> dict[str, Any]:
    """``docker system df``; ``type=`` (API 1.42: container, image, volume, build-cache) limits
    the report, the other parts are null."""
    usage = await run_in_threadpool(diskusage.disk_usage, engine, diskusage.parse_kinds(kinds))
    volumes = None if usage.volumes is None else [
        volume_shape(v.volume, (v.size, v.ref_count)) for v in usage.volumes]
    return usage_shapes.disk_usage(usage, volumes)


@router.post("/auth")
async def auth(engine: EngineDep, body: Annotated[AuthConfig, Body()]) -> dict[str, str]:
    await engine.images.login(body)
    return {"Status": "Login Succeeded", "IdentityToken": ""}


def _go_arch(machine: str) -> str:
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


@router.get("/system/phases")
async def phases(engine: EngineDep) -> dict[str, Any]:
    """wharf's own route: how long each phase of the run path took lately (milliseconds:
    median, p90 and max over the last samples of each)."""
    return {"Phases": engine.containers.phases.summary()}


@router.delete("/system/phases", status_code=204)
async def clear_phases(engine: EngineDep) -> Response:
    """Forget the samples (a bench starts each case from none)."""
    engine.containers.phases.clear()
    return Response(status_code=204)


@router.post("/system/check")
async def system_check(engine: EngineDep, repair: str | None = None) -> dict[str, Any]:
    """wharf's own route (``wharf system check``): the image store's problems, each repaired
    where it can be with ``repair=1``. ``Errors`` says whether any is left unrepaired."""
    problems = await engine.images.check(qbool(repair))
    return {
        "Problems": [{"Kind": p.kind, "ID": p.id, "Problem": p.problem,
                      "Repairable": p.fix is not None, "Repaired": p.repaired,
                      "Advice": p.advice} for p in problems],
        "Errors": any(not p.repaired for p in problems),
    }
