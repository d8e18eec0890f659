"""wharfd's composition root: settings → stores → engine → Docker API on a unix socket."""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import signal
import socket
import sys
import uuid
from contextlib import ExitStack
from pathlib import Path
from typing import IO, Any

import click

from wharf import __version__
from wharf.daemon.settings import DaemonSettings
from wharf.errors import Conflict, WharfError

log = logging.getLogger("wharfd")


class DataRootLock:
    """An exclusive flock on ``<data_root>/wharfd.lock``: one daemon per data root."""

    def __init__(self, data_root: Path) -> None:
        self.path = data_root / "wharfd.lock"
        self._file: IO[str] | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.path.open("a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise Conflict(
                f"another wharfd (pid {holder}) is already running on data root "
                f"{self.path.parent}; stop it first (make down) or use another --data-root"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._file = handle

    def release(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def build_engine(settings: DaemonSettings) -> Any:
    """Create the stores and services for ``settings`` (imports kept here: start-up only)."""
    from wharf.daemon.core.containers.execs import ExecService  # noqa: PLC0415
    from wharf.daemon.core.containers.records import ContainerRecords  # noqa: PLC0415
    from wharf.daemon.core.containers.service import ContainerService  # noqa: PLC0415
    from wharf.daemon.core.engine import Engine  # noqa: PLC0415
    from wharf.daemon.core.events import EventLog  # noqa: PLC0415
    from wharf.daemon.core.images.content import ContentStore  # noqa: PLC0415
    from wharf.daemon.core.images.layers import LayerStore  # noqa: PLC0415
    from wharf.daemon.core.images.registry import RegistryClient  # noqa: PLC0415
    from wharf.daemon.core.images.service import ImageService  # noqa: PLC0415
    from wharf.daemon.core.images.store import ImageStore  # noqa: PLC0415
    from wharf.daemon.core.state import StateStore  # noqa: PLC0415

    root = settings.data_root
    state = StateStore(root / "state.db")
    state.open()
    content, layers = ContentStore(root / "content"), LayerStore(root / "layers")
    content.remove_partials()  # leftovers of writes a crash interrupted
    layers.remove_temp()
    store = ImageStore(state, content, layers)
    registry = RegistryClient(
        mirrors=settings.registry_mirrors,
        insecure=settings.insecure_registries,
        max_concurrent_downloads=settings.max_concurrent_downloads,
        max_concurrent_uploads=settings.max_concurrent_uploads,
    )
    images = ImageService(store, registry, root / "tmp")
    events = EventLog(state)
    runtime, bundles, others = _runtime(settings)
    containers = ContainerService(ContainerRecords(state), store, runtime, bundles, events, others)
    return Engine(
        daemon_id=_daemon_id(root),
        data_root=str(root),
        images=images,
        containers=containers,
        execs=ExecService(containers),
        events=events,
        default_runtime=settings.default_runtime,
        registry_mirrors=settings.registry_mirrors,
        insecure_registries=settings.insecure_registries,
    )


def _agent(settings: DaemonSettings, engine: Any) -> Any:
    """The control-plane agent, started when an AMQP URL is configured."""
    if not settings.amqp_url:
        return None
    from wharf.daemon.adapters.agent.handler import CommandHandler  # noqa: PLC0415
    from wharf.daemon.adapters.agent.journal import CommandJournal  # noqa: PLC0415
    from wharf.daemon.adapters.agent.runner import Agent, host_load  # noqa: PLC0415

    containers = engine.containers
    load = host_load(
        lambda: sum(r.state.status.value == "running" for r in containers.list_containers()),
        lambda: len(containers.list_containers()))
    agent = Agent(settings.amqp_url, settings.node_name, settings.node_labels,
                  CommandHandler(engine, CommandJournal(engine.images.store.state),
                                 settings.node_name),
                  asyncio.get_running_loop(), load, settings.heartbeat_interval,
                  settings.snapshot_interval)
    engine.events.add_listener(agent.on_event)
    agent.start()
    log.info("agent for node %s consuming %s", settings.node_name, "wharf.cmd." +
             settings.node_name)
    return agent


def _runtime(settings: DaemonSettings) -> tuple[Any, Any, Any]:
    """The conmon runtimes (default first) and the bundle builder for this host."""
    from wharf.daemon.core.containers.bundle import Bundles  # noqa: PLC0415
    from wharf.daemon.core.runtime import cgroups, oci, seccomp, seccomp_bpf  # noqa: PLC0415
    from wharf.daemon.core.runtime import spec as oci_spec  # noqa: PLC0415
    from wharf.daemon.core.runtime.monitor import ConmonRuntime  # noqa: PLC0415
    from wharf.errors import InvalidArgument  # noqa: PLC0415

    mode = cgroups.detect_mode()
    host = oci_spec.probe_host(mode, cgroups.choose_manager())
    runtime_dir = settings.run_dir / "runtime"
    containers_root = settings.data_root / "containers"
    runtimes = {}
    for kind in oci.RuntimeKind:
        try:
            runtimes[kind.value] = ConmonRuntime(oci.make_runtime(kind, runtime_dir, mode),
                                                 runtime_dir, containers_root)
        except InvalidArgument:
            continue  # not installed: containers may not ask for it
    default = runtimes.pop(settings.default_runtime, None)
    if default is None:
        raise InvalidArgument(f"the default runtime {settings.default_runtime} is not installed")
    bundles = Bundles(containers_root, host, seccomp.load_profile(),
                      seccomp_bpf.BpfCache(settings.data_root / "seccomp"))
    return default, bundles, runtimes


def _daemon_id(root: Path) -> str:
    """A stable identity for this data root, created once (atomically)."""
    path = root / "engine-id"
    if path.exists():
        return path.read_text().strip()
    tmp = path.with_suffix(".tmp")
    tmp.write_text(str(uuid.uuid4()))
    os.replace(tmp, path)
    return path.read_text().strip()


def bind_unix_socket(path: Path, mode: int) -> socket.socket:
    """Bind the API socket with ``mode`` set before anyone can connect to it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)  # stale: we hold the data-root lock, so nobody serves it
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o777 & ~mode)
    try:
        sock.bind(str(path))
    finally:
        os.umask(old_umask)
    os.chmod(path, mode)
    sock.listen(128)
    return sock


async def serve(settings: DaemonSettings) -> None:
    import uvicorn  # noqa: PLC0415

    from wharf.daemon.adapters.api.hijack import bind_protocol  # noqa: PLC0415
    from wharf.daemon.adapters.api.server import DOCKER_HEADERS, create_app  # noqa: PLC0415
    from wharf.daemon.adapters.api.streams import StreamDispatcher  # noqa: PLC0415

    engine = build_engine(settings)
    await engine.containers.restore()
    agent = _agent(settings, engine)
    sock = bind_unix_socket(settings.socket_path, settings.socket_mode)
    headers = [(k.decode(), v.decode()) for k, v in DOCKER_HEADERS]
    config = uvicorn.Config(create_app(engine), log_level=settings.log_level,
                            access_log=settings.log_level == "debug", timeout_graceful_shutdown=5,
                            http=bind_protocol(StreamDispatcher(engine.containers, engine.execs),
                                                       headers))
    server = uvicorn.Server(config)
    log.info("wharfd %s listening on unix://%s", __version__, settings.socket_path)
    try:
        await server.serve(sockets=[sock])
    finally:
        if agent is not None:
            await asyncio.to_thread(agent.stop)
        sock.close()
        settings.socket_path.unlink(missing_ok=True)
        await engine.containers.close()
        await engine.images.registry.aclose()
        engine.images.store.state.close()


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--data-root", type=click.Path(path_type=Path), help="Where state lives "
              "(default /var/lib/wharf, env WHARF_DATA_ROOT).")
@click.option("--run-dir", type=click.Path(path_type=Path), help="Sockets and pid files "
              "(default /run/wharf, env WHARF_RUN_DIR).")
@click.option("-H", "--host", "host", help="unix:///path/to/socket to listen on "
              "(default unix://<run-dir>/wharfd.sock).")
@click.option("--config-file", type=click.Path(path_type=Path),
              help="JSON settings file (default /etc/wharf/daemon.json).")
@click.option("--registry-mirror", "mirrors", multiple=True, help="Mirror for docker.io.")
@click.option("--insecure-registry", "insecure", multiple=True,
              help="Registry (host:port or CIDR) reached over plain HTTP.")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]))
@click.option("--default-runtime", type=click.Choice(["crun", "runc"]),
              help="OCI runtime for new containers (default crun).")
@click.version_option(__version__, prog_name="wharfd")
def main(**flags: Any) -> None:
    """wharfd: the wharf host daemon (Docker Engine API v1.41 on a unix socket)."""
    overrides = {k: v for k, v in flags.items() if v not in (None, ())}
    if "mirrors" in overrides:
        overrides["registry_mirrors"] = list(overrides.pop("mirrors"))
    if "insecure" in overrides:
        overrides["insecure_registries"] = list(overrides.pop("insecure"))
    host = overrides.pop("host", None)
    if host:
        if not host.startswith("unix://"):
            raise click.UsageError("only unix:// hosts are supported for now")
        overrides["socket"] = Path(host.removeprefix("unix://"))
    try:
        settings = DaemonSettings(**overrides)
    except (ValueError, WharfError) as exc:
        click.echo(f"wharfd: invalid settings: {exc}", err=True)
        sys.exit(1)
    logging.basicConfig(level=settings.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    with ExitStack() as stack:
        lock = DataRootLock(settings.data_root)
        try:
            lock.acquire()
        except WharfError as exc:
            click.echo(f"wharfd: {exc}", err=True)
            sys.exit(1)
        stack.callback(lock.release)
        pid_file = settings.run_dir / "wharfd.pid"
        settings.run_dir.mkdir(parents=True, exist_ok=True)
        pid_file.write_text(f"{os.getpid()}\n")
        stack.callback(lambda: pid_file.unlink(missing_ok=True))
        # uvicorn shuts down gracefully on SIGTERM/SIGINT and then re-raises the signal with
        # the handler that was in place before it started: make that one a no-op, so the
        # clean-up above runs and wharfd exits 0 after a requested stop.
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, _stop_requested)
        asyncio.run(serve(settings))


def _stop_requested(signum: int, _frame: object) -> None:
    log.info("stopped by %s", signal.Signals(signum).name)
