"""wharf-gateway's composition root: settings → store, tokens, bus, dispatcher → FastAPI app.

``wharf-gateway serve`` runs the cluster HTTP API; ``wharf-gateway token create|ls|rm`` manage
the bearer tokens it accepts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import click
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException
from starlette.routing import BaseRoute, Match, Route

from wharf.errors import InvalidArgument, WharfError, from_http_status
from wharf.gateway import auth
from wharf.gateway.limits import RateLimiter, RequestLimits
from wharf.gateway.settings import GatewaySettings, from_flags
from wharf.gateway.status import NodeDocuments
from wharf.gateway.sweeper import sweep
from wharf.gateway.tokencli import token
from wharf.version import __version__

log = logging.getLogger("wharf.gateway")


def create_app(settings: GatewaySettings) -> FastAPI:
    from wharf.gateway import metrics, moves  # noqa: PLC0415
    from wharf.gateway.relay import NodeLinks  # noqa: PLC0415

    tokens = auth.Tokens(settings.tokens_file)
    limiter = RateLimiter(settings.rate, settings.burst)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            tokens.entries()  # now, so what the file says (tokens without a scope) is logged
        except WharfError as exc:
            log.error("tokens file: %s", exc)
        store, records, hub, bus, dispatcher = _components(settings)
        tokens.shared = records if records.shared else None  # the database's tokens
        app.state.settings, app.state.store, app.state.bus = settings, store, bus
        app.state.dispatcher, app.state.events = dispatcher, hub
        app.state.node_documents = NodeDocuments()  # GET /v1/nodes' rendered nodes
        metrics.install(app.state, store, dispatcher, bus)  # GET /metrics; the commands' hook
        app.state.mover = moves.build(store, dispatcher, app.state.links)
        bus.start()
        app.state.mover.resume()  # unfinished moves go on where they were
        sweeper = asyncio.create_task(sweep(dispatcher, hub, settings))
        log.info("wharf-gateway %s (%s) on %s", __version__, settings.gateway_id,
                 settings.listen)
        try:
            yield
        finally:
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper
            await app.state.mover.close()
            await bus.close()
            store.close()
            if records is not store:
                records.close()

    app = _api(lifespan)
    # what the hijacked routes (relay.StreamRelay) check themselves, outside the middleware
    app.state.tokens, app.state.limiter = tokens, limiter
    app.state.links = NodeLinks(settings.node_tls())

    app.get("/healthz", summary="Liveness (no token needed)")(healthz)
    app.get("/v1/info", summary="This gateway: id, version, broker, messages it dropped")(info)
    app.get("/metrics", summary="Prometheus metrics (docs/metrics.md)", response_class=Response,
            responses={200: {"content": {"text/plain": {}}}})(metrics.metrics)
    # Starlette runs the middleware added last first: BearerAuth names the principal, then
    # RequestLimits counts its requests and caps its body.
    app.add_middleware(RequestLimits, max_body_bytes=settings.max_body_bytes,
                       limiter=limiter)
    app.add_middleware(auth.BearerAuth, tokens=tokens)
    return app


def _components(settings: GatewaySettings) -> tuple[Any, Any, Any, Any, Any]:
    """The store, the records, the event hub, the bus and the dispatcher, wired together."""
    from wharf.gateway.bus import Bus  # noqa: PLC0415 - pika only when serving
    from wharf.gateway.dispatch import Dispatcher  # noqa: PLC0415
    from wharf.gateway.events import EventHub  # noqa: PLC0415
    from wharf.gateway.store import ClusterStore  # noqa: PLC0415

    store = ClusterStore(settings.state_dir / "gateway.db")
    records = _records(settings, store)
    hub = EventHub(store)
    assert settings.amqp_url, "checked by serve()"
    bus = Bus(settings.amqp_url, settings.gateway_id, store, on_event=hub.notify,
              records=records)
    dispatcher = Dispatcher(store, bus, gateway_id=settings.gateway_id,
                            down_after=settings.node_down_after, records=records)
    bus.on_result, bus.on_seen = dispatcher.on_result, dispatcher.seen
    bus.take_unstored = dispatcher.take_unstored  # reads: answers for waiters, not stored
    bus.watching, bus.busy = dispatcher.watching, dispatcher.waiting
    return store, records, hub, bus, dispatcher


def _records(settings: GatewaySettings, store: Any) -> Any:
    """Where commands and results are kept: PostgreSQL shared with other gateways when
    configured (availability read back from it at once), else the store's SQLite file."""
    if settings.database_url is None:
        return store
    from wharf.gateway.pgrecords import PgRecords  # noqa: PLC0415 - psycopg only then

    try:
        return PgRecords(settings.database_url)
    except WharfError as exc:
        log.error("%s", exc)
        store.close()
        raise


async def healthz(request: Request) -> dict[str, Any]:
    bus = getattr(request.app.state, "bus", None)
    return {"status": "ok", "version": __version__,
            "broker": "connected" if bus is not None and bus.connected else "disconnected"}


def _api(lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]]) -> FastAPI:
    """The app with its routes, its OpenAPI contract (wharf.gateway.models) and its one map
    from an error to an answer."""
    from wharf.gateway.models import with_contract  # noqa: PLC0415
    from wharf.gateway.moveapi import moves  # noqa: PLC0415
    from wharf.gateway.routes import cluster, node_api  # noqa: PLC0415
    from wharf.gateway.streams import node_streams  # noqa: PLC0415
    from wharf.gateway.ui.pages import ui  # noqa: PLC0415
    from wharf.gateway.viewapi import view  # noqa: PLC0415

    app = FastAPI(title="wharf gateway", version=__version__, lifespan=lifespan,
                  description="The cluster API: nodes, containers on any node, commands over "
                  "RabbitMQ. Every route but /healthz needs 'Authorization: Bearer <token>'; "
                  "every error is {message, code} (docs/cluster.md, the HTTP API's contract).")
    app.openapi = with_contract(app)  # type: ignore[method-assign]
    app.add_exception_handler(WharfError, wharf_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(HTTPException,
                              partial(http_error, [*node_api.routes, *view.routes,
                                                   *cluster.routes]))
    app.include_router(node_api)  # first: the commands' routes are matched most often
    app.include_router(view)
    app.include_router(cluster)
    app.include_router(node_streams)
    app.include_router(moves)
    app.include_router(ui)  # the dashboard's static files (docs/dashboard.md)
    return app


async def info(request: Request) -> dict[str, Any]:
    """``GET /v1/info``: which gateway answers, and what it dropped from the broker (messages
    from an account that is not the node they name, malformed ones)."""
    bus = request.app.state.bus
    return {"GatewayID": request.app.state.settings.gateway_id, "Version": __version__,
            "Broker": "connected" if bus.connected else "disconnected",
            "DroppedMessages": {"Forged": bus.dropped["forged"],
                                "Malformed": bus.dropped["malformed"]}}


async def wharf_error(_request: Request, exc: Exception) -> Response:
    from wharf.gateway.call import error_response  # noqa: PLC0415

    assert isinstance(exc, WharfError)
    if exc.http_status >= 500:
        log.warning("request failed: %s", exc.message)
    return error_response(exc)


async def validation_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {}
    where = ".".join(str(p) for p in first.get("loc", ()))
    return JSONResponse({"message": f"{where}: {first.get('msg', 'invalid request')}",
                         "code": "invalid_argument"}, status_code=400)


async def http_error(included: list[BaseRoute], request: Request, exc: Exception) -> Response:
    """Starlette's own refusals (no such route, a method the path has not) as every other
    error, ``{message, code}``; a 405's ``Allow`` names every method of the path the request
    reached (Starlette's, those of its first route only), among the app's own routes and the
    ``included`` routers'."""
    assert isinstance(exc, HTTPException)
    kind = from_http_status(exc.status_code, exc.detail)
    code = kind.code if kind.http_status == exc.status_code or exc.status_code >= 500 else \
        InvalidArgument.code
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        routes = [r for r in [*request.app.router.routes, *included] if isinstance(r, Route)
                  and r.methods and r.matches(request.scope)[0] is not Match.NONE]
        headers["Allow"] = ", ".join(sorted(  # the methods of the path the request reached
            {m for r in routes if r.path == routes[0].path for m in r.methods or ()}))
    return JSONResponse({"message": exc.detail, "code": code}, status_code=exc.status_code,
                        headers=headers)


# --- the command line ------------------------------------------------------------------------


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="wharf-gateway")
def main() -> None:
    """wharf-gateway: the cluster HTTP API (commands to nodes over RabbitMQ)."""


@main.command()
@click.option("--listen", help="host:port to serve on (default 127.0.0.1:8080, env "
              "WHARF_GATEWAY_LISTEN).")
@click.option("--amqp-url", help="RabbitMQ URL (env WHARF_GATEWAY_AMQP_URL; `make rabbitmq` "
              "writes the gateway's own account to /etc/wharf/amqp.env).")
@click.option("--state-dir", type=click.Path(path_type=Path),
              help="Where the cluster view lives (default /var/lib/wharf-gateway).")
@click.option("--tokens-file", type=click.Path(path_type=Path),
              help="Accepted bearer tokens (default /etc/wharf/gateway-tokens).")
@click.option("--database-url", metavar="URL",
              help="PostgreSQL shared by several gateways (postgresql://USER:PASSWORD@HOST/DB;"
              " env WHARF_GATEWAY_DATABASE_URL). Default: this gateway's own SQLite file.")
@click.option("--gateway-id", help="Stable name of this gateway (default gw-<hostname>).")
@click.option("--node-down-after", type=float,
              help="Seconds without a heartbeat before a node is down (default 2.5).")
@click.option("--default-deadline", type=float,
              help="Seconds a command may wait to be executed (default 60).")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]))
@click.option("--tls-cert", type=click.Path(path_type=Path), metavar="PEM",
              help="Serve HTTPS with this certificate (chain); env WHARF_GATEWAY_TLS_CERT.")
@click.option("--tls-key", type=click.Path(path_type=Path), metavar="PEM",
              help="The certificate's private key; env WHARF_GATEWAY_TLS_KEY.")
@click.option("--tls-client-ca", type=click.Path(path_type=Path), metavar="PEM",
              help="Mutual TLS: clients must present a certificate this CA signed.")
@click.option("--node-tls-ca", type=click.Path(path_type=Path), metavar="PEM",
              help="Interactive streams (attach, exec, logs -f) go to the nodes' wharfd over "
              "mutual TLS: the CA that signed their certificates.")
@click.option("--node-tls-cert", type=click.Path(path_type=Path), metavar="PEM",
              help="The gateway's client certificate for the nodes' wharfd.")
@click.option("--node-tls-key", type=click.Path(path_type=Path), metavar="PEM",
              help="Its key.")
@click.option("--insecure-http", is_flag=True, default=None,
              help="Serve plain HTTP on a non-loopback address anyway (tokens cross the "
              "network in the clear unless something in front terminates TLS).")
@click.option("--max-body-bytes", type=int,
              help="Largest request body accepted; larger is 413 (default 1 MiB).")
@click.option("--rate", type=float,
              help="Requests a second each token may send on average; more is 429 (default "
              "50; 0: no limit).")
@click.option("--burst", type=int, help="Requests a token may send at once (default 100).")
def serve(**flags: Any) -> None:
    """Serve the cluster API (OpenAPI document at /docs)."""
    import uvicorn  # noqa: PLC0415

    from wharf.gateway.relay import StreamRelay  # noqa: PLC0415
    from wharf.hijack import ListeningServer, bind_protocol  # noqa: PLC0415

    settings = from_flags(**flags)
    if not settings.amqp_url:
        raise click.UsageError("no RabbitMQ URL: pass --amqp-url or set WHARF_GATEWAY_AMQP_URL "
                               "(`make rabbitmq` writes one to /etc/wharf/amqp.env)")
    refusal = settings.plain_http_refusal()
    if refusal is not None:
        raise click.UsageError(refusal)
    try:
        tls = settings.server_tls()
        settings.node_tls()
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    logging.basicConfig(level=settings.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if settings.scheme == "http" and settings.insecure_http:
        log.warning("serving plain HTTP on %s (--insecure-http): tokens are sent in the clear "
                    "unless something in front of the gateway terminates TLS", settings.listen)
    try:
        sock = _listener(settings.host_port)
    except OSError as exc:
        raise click.UsageError(f"cannot listen on {settings.listen}: {exc}") from exc
    app = create_app(settings)
    # wharf.hijack's server: the relayed attach and exec hijack the connection, and a client's
    # half-close over TLS must leave the output flowing (HalfCloseTLSProtocol)
    config = uvicorn.Config(app, log_level=settings.log_level,
                            access_log=settings.log_level == "debug",
                            timeout_graceful_shutdown=5,
                            http=bind_protocol(StreamRelay(app.state), []))
    with sock:
        server = ListeningServer(config, [(sock, tls)] if tls is not None else [])
        asyncio.run(server.serve(sockets=[] if tls is not None else [sock]))


def _listener(address: tuple[str, int]) -> socket.socket:
    """The listening socket; proto IPPROTO_TCP so that asyncio sets TCP_NODELAY on what it
    accepts (a keystroke relayed must not wait for a delayed ACK)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except BaseException:
        sock.close()
        raise
    return sock


main.add_command(token)
