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
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import IO, Any

import click

from wharf.daemon.core import dataroot
from wharf.daemon.settings import DaemonSettings
from wharf.errors import Conflict, InvalidArgument, WharfError
from wharf.version import __version__

BLOCKING_THREADS = 64  # threads for the daemon's blocking calls (asyncio.to_thread)

log = logging.getLogger("wharfd")


class DataRootLock:
    """An exclusive flock on ``<data_root>/wharfd.lock``: one daemon per data root."""

    def __init__(self, data_root: Path) -> None:
        self.path = data_root / "wharfd.lock"
        self._file: IO[str] | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(mode=0o711, parents=True, exist_ok=True)  # see core.dataroot
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
    from wharf.daemon.core.network import service as netsvc  # noqa: PLC0415
    from wharf.daemon.core.network.manager import Networks  # noqa: PLC0415
    from wharf.daemon.core.state import StateStore  # noqa: PLC0415
    from wharf.daemon.core.volumes.service import VolumeService  # noqa: PLC0415
    from wharf.daemon.core.volumes.store import VolumeStore  # noqa: PLC0415

    root = settings.data_root
    state = StateStore(root / "state.db")
    state.open()
    layers = LayerStore(root / "layers", settings.inflate_limit)
    store = ImageStore(state, ContentStore(root / "content"), layers)
    registry = RegistryClient(
        mirrors=settings.registry_mirrors,
        insecure=settings.insecure_registries,
        max_concurrent_downloads=settings.max_concurrent_downloads,
        max_concurrent_uploads=settings.max_concurrent_uploads,
    )
    images = ImageService(store, registry, root / "tmp")
    check_image_store(images)
    events = EventLog(state)
    runtime, bundles, others = _runtime(settings)
    volumes = VolumeService(VolumeStore(state, root / "volumes"), events)
    default = settings.bridge == "wharf0"
    network = netsvc.NetworkService(state, settings.run_dir, netsvc.Settings(
        default_bridge=settings.bridge, default_subnet=settings.bridge_subnet,
        # a second daemon on the host (tests) gets its own chains, bridges and veths
        bridge_prefix="br-" if default else settings.bridge[:6] + "-",
        veth_prefix="veth" if default else "v" + settings.bridge[:4],
        chain_prefix="WHARF" if default else "WHARF-" + settings.bridge.upper()[:9]))
    containers = ContainerService(ContainerRecords(state), store, runtime, bundles, events, others,
                                  volumes=volumes, network=network)
    execs = ExecService(containers)
    containers.use_prober(execs)  # HEALTHCHECKs run as execs
    return Engine(
        daemon_id=_daemon_id(root),
        data_root=str(root),
        images=images,
        containers=containers,
        execs=execs,
        volumes=volumes,
        networks=Networks(network, events),
        builds=_builds(settings, images, containers),
        events=events,
        default_runtime=settings.default_runtime,
        registry_mirrors=settings.registry_mirrors,
        insecure_registries=settings.insecure_registries,
    )


def _builds(settings: DaemonSettings, images: Any, containers: Any) -> Any:
    """The build service, what a build of an earlier daemon left removed."""
    from wharf.daemon.core.build.context import ContextLimits  # noqa: PLC0415
    from wharf.daemon.core.build.service import BuildService  # noqa: PLC0415

    limits = ContextLimits(settings.build_context_max_bytes, inflate=settings.inflate_limit)
    builds = BuildService(images, containers, settings.data_root / "builds", limits)
    builds.clean_leftovers()
    return builds


def check_image_store(images: Any) -> None:
    """Start-up check of the image store: repair what needs no registry, log the rest.

    Nothing is in flight yet (we hold the data-root lock), so every temporary file is a
    leftover of a crash, and whatever no image references can be collected.
    """
    from wharf.daemon.core.images import check  # noqa: PLC0415

    problems = check.inspect(images.store, images.temp_dirs(), temp_age=0)
    with images.store.lease() as lease:
        check.repair_locally(images.store, lease, problems)
    for problem in problems:
        if problem.fix in ("temp", "collect"):
            log.debug("image store: %s: %s (removed)", problem.id, problem.problem)
        elif problem.repaired:
            log.warning("image store: %s: %s (repaired)", problem.id, problem.problem)
        else:
            log.warning("image store: %s: %s; run `wharf system check --repair` or %s",
                        problem.id, problem.problem, problem.advice)


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
                  settings.snapshot_interval,
                  journal_keep=(settings.journal_keep_seconds, settings.journal_keep),
                  address=settings.advertised_address)
    engine.events.add_listener(agent.on_event)
    agent.start()
    log.info("agent for node %s consuming %s", settings.node_name, "wharf.cmd." +
             settings.node_name)
    return agent


def _runtime(settings: DaemonSettings) -> tuple[Any, Any, Any]:
    """The conmon runtimes (default first) and the bundle builder for this host."""
    from wharf.daemon.core.containers.bundle import Bundles  # noqa: PLC0415
    from wharf.daemon.core.runtime import cgroups, logfiles, oci, seccomp, seccomp_bpf  # noqa: PLC0415
    from wharf.daemon.core.runtime import spec as oci_spec  # noqa: PLC0415
    from wharf.daemon.core.runtime.monitor import ConmonRuntime  # noqa: PLC0415
    from wharf.errors import InvalidArgument  # noqa: PLC0415

    cgroups.use_parent(settings.cgroup_parent)
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
                      seccomp_bpf.BpfCache(settings.data_root / "seccomp"), settings.log_opts)
    logfiles.LogKeeper(containers_root).start()  # the older log files of --log-opt max-file
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


def bind_listeners(settings: DaemonSettings, stack: ExitStack
                   ) -> tuple[list[socket.socket], list[tuple[socket.socket, Any]]]:
    """Bind every ``-H`` address: plain sockets, and TCP sockets with their TLS context.

    Everything is bound (and every TLS file loaded) before anything is served, so a bad
    address or certificate stops wharfd at start-up with a clear message.
    """
    from wharf.daemon.listen import bind_tcp, bind_unix_socket  # noqa: PLC0415

    plain: list[socket.socket] = []
    secure: list[tuple[socket.socket, Any]] = []
    context = None
    for address in settings.listen_addresses:
        if address.path is not None:
            sock = bind_unix_socket(address.path, settings.socket_mode)
            stack.callback(address.path.unlink, missing_ok=True)
        else:
            if settings.tls_enabled and context is None:
                from wharf.daemon.adapters.api.tls import server_context  # noqa: PLC0415

                ca, cert, key = settings.tls_files()
                context = server_context(ca, cert, key, verify=settings.tlsverify)
            try:
                sock = bind_tcp(address)
            except OSError as exc:
                raise InvalidArgument(f"cannot listen on {address.url}: {exc}") from exc
        stack.callback(sock.close)
        if address.scheme == "tcp" and context is not None:
            secure.append((sock, context))
            mode = "mutual TLS" if settings.tlsverify else "TLS without client verification"
            log.info("wharfd %s listening on %s (%s)", __version__, address.url, mode)
        else:
            plain.append(sock)
            if address.scheme == "tcp":
                log.warning("wharfd listening on %s WITHOUT TLS (--insecure-tcp): anyone who "
                            "can reach this port has root on this host", address.url)
            else:
                log.info("wharfd %s listening on %s", __version__, address.url)
    return plain, secure


async def serve(settings: DaemonSettings) -> None:
    import uvicorn  # noqa: PLC0415

    from wharf.daemon.adapters.api.metrics import DaemonMetrics, listen  # noqa: PLC0415
    from wharf.daemon.adapters.api.server import DOCKER_HEADERS, create_app  # noqa: PLC0415
    from wharf.daemon.adapters.api.streams import StreamDispatcher  # noqa: PLC0415
    from wharf.hijack import ListeningServer, bind_protocol  # noqa: PLC0415

    # asyncio.to_thread's pool: its default (cpus + 4) let six blocking calls run at once, and
    # most of them wait on a child (crun, conmon's sync pipe, unshare), not on a CPU
    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(
        max_workers=BLOCKING_THREADS, thread_name_prefix="wharf-blocking"))
    engine = build_engine(settings)
    dataroot.secure(settings.data_root)  # its modes, after start-up's clean-ups (of builds/)
    agent = metrics_server = None
    measured = DaemonMetrics.for_engine(engine)
    with ExitStack() as listeners:
        try:
            plain, secure = bind_listeners(settings, listeners)
            metrics_server = await listen(settings.metrics_address, measured, listeners)
            running = [r.id for r in engine.containers.list_containers()
                       if r.state.status.value in ("running", "paused")]
            # networks first: containers.restore() may restart (or tear down) containers
            if engine.networks is not None:
                await engine.networks.restore(running)
            await engine.containers.restore()
            agent = _agent(settings, engine)
            headers = [(k.decode(), v.decode()) for k, v in DOCKER_HEADERS]
            config = uvicorn.Config(create_app(engine, measured), log_level=settings.log_level,
                                    access_log=settings.log_level == "debug",
                                    timeout_graceful_shutdown=5,
                                    http=bind_protocol(StreamDispatcher(engine.containers,
                                                                        engine.execs), headers))
            await ListeningServer(config, secure).serve(sockets=plain)
        finally:
            if metrics_server is not None:
                metrics_server.close()
            if agent is not None:
                await agent.stop()
            await engine.containers.close()
            if engine.networks is not None:
                await engine.networks.close()
            await engine.images.registry.aclose()
            engine.images.store.state.close()


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--data-root", type=click.Path(path_type=Path), help="Where state lives "
              "(default /var/lib/wharf, env WHARF_DATA_ROOT).")
@click.option("--run-dir", type=click.Path(path_type=Path), help="Sockets and pid files "
              "(default /run/wharf, env WHARF_RUN_DIR).")
@click.option("-H", "--host", "hosts", multiple=True, metavar="URL",
              help="Listen on unix:///path or tcp://HOST[:PORT] (repeatable; default "
              "unix://<run-dir>/wharfd.sock). TCP needs --tlsverify (or --insecure-tcp); "
              "its port defaults to 2376 with TLS, 2375 without.")
@click.option("--tlsverify", is_flag=True, default=None,
              help="Serve TCP with TLS and require client certificates signed by --tlscacert.")
@click.option("--tls", is_flag=True, default=None,
              help="Serve TCP with TLS (implied by --tlsverify; alone it is refused on TCP).")
@click.option("--tlscacert", type=click.Path(path_type=Path),
              help="CA that signs client certificates (default /etc/wharf/tls/ca.pem).")
@click.option("--tlscert", type=click.Path(path_type=Path),
              help="Server certificate (default /etc/wharf/tls/server-cert.pem, else cert.pem).")
@click.option("--tlskey", type=click.Path(path_type=Path),
              help="Server key (default /etc/wharf/tls/server-key.pem, else key.pem).")
@click.option("--insecure-tcp", is_flag=True, default=None,
              help="Allow plain TCP without TLS (unauthenticated root access: tests only).")
@click.option("--metrics-addr", metavar="HOST:PORT",
              help="Also serve GET /metrics (Prometheus; only it, plain HTTP, no "
              "authentication) on this TCP address; /metrics is on the API anyway.")
@click.option("--advertise-addr", metavar="HOST:PORT",
              help="Where the cluster's gateway reaches this daemon's mutual-TLS listener "
              "for interactive streams (default: the first tcp:// -H on a specific address).")
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
    """wharfd: the wharf host daemon (Docker Engine API v1.41 on unix sockets and TCP+TLS)."""
    overrides = {k: v for k, v in flags.items() if v not in (None, ())}
    if "mirrors" in overrides:
        overrides["registry_mirrors"] = list(overrides.pop("mirrors"))
    if "insecure" in overrides:
        overrides["insecure_registries"] = list(overrides.pop("insecure"))
    if "hosts" in overrides:
        overrides["hosts"] = list(overrides["hosts"])
    try:
        settings = DaemonSettings(**overrides)
    except (ValueError, WharfError) as exc:
        click.echo(f"wharfd: invalid settings: {_settings_error(exc)}", err=True)
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
        try:
            asyncio.run(serve(settings))
        except WharfError as exc:
            click.echo(f"wharfd: {exc}", err=True)
            sys.exit(1)


def _settings_error(exc: Exception) -> str:
    """pydantic's report without its boilerplate: ``field: message`` per error."""
    errors = getattr(exc, "errors", None)
    if not callable(errors):
        return str(exc)
    parts = []
    for error in errors():
        where = ".".join(str(part) for part in error.get("loc", ()))
        message = str(error.get("msg", "")).removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)


def _stop_requested(signum: int, _frame: object) -> None:
    log.info("stopped by %s", signal.Signals(signum).name)
