"""The Docker API application: version prefixes, Docker's reply headers, one error mapping."""

from __future__ import annotations

import logging
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from wharf.daemon.adapters.api import (
    archive,
    build,
    commit,
    containers,
    events,
    execs,
    images,
    metrics,
    networks,
    system,
    volumes,
)
from wharf.daemon.core.engine import Engine
from wharf.errors import WharfError
from wharf.version import __version__

API_VERSION = "1.41"
MIN_API_VERSION = "1.24"
_VERSION_PREFIX = re.compile(r"^/v[0-9][0-9.]*(?=/)")
log = logging.getLogger("wharf.api")

DOCKER_HEADERS = [
    (b"api-version", API_VERSION.encode()),
    (b"docker-experimental", b"false"),
    (b"ostype", b"linux"),
    (b"server", f"wharf/{__version__} (linux)".encode()),
]


class DockerConventions:
    """ASGI middleware: strip ``/v1.NN`` and add Docker's headers to every reply."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = _VERSION_PREFIX.sub("", scope["path"], count=1)
        scope = dict(scope, path=path, raw_path=path.encode())

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = dict(message, headers=[*message.get("headers", []), *DOCKER_HEADERS])
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_app(engine: Engine, measured: metrics.DaemonMetrics | None = None) -> FastAPI:
    """The FastAPI app serving ``engine``; nothing global, everything from ``app.state``.
    With ``measured``, ``GET /metrics`` serves it and every request is counted in it."""
    app = FastAPI(title="wharfd (Docker Engine API subset)", version=API_VERSION,
                  docs_url=None, redoc_url=None)
    app.state.engine = engine
    app.include_router(system.router)
    app.include_router(images.router)
    app.include_router(containers.router)
    app.include_router(events.router)
    app.include_router(execs.router)
    app.include_router(volumes.router)
    app.include_router(archive.router)
    app.include_router(commit.router)
    app.include_router(build.router)
    app.include_router(networks.router)
    app.add_exception_handler(WharfError, _wharf_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    if measured is not None:
        app.state.metrics = measured
        app.get("/metrics")(metrics.metrics)
        app.add_middleware(metrics.RequestMetrics, metrics=lambda: app.state.metrics)
    app.add_middleware(DockerConventions)  # last: outermost, so the others see the path bare
    return app


async def _wharf_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, WharfError)
    if exc.http_status == 304:
        return Response(status_code=304)
    if exc.http_status >= 500:
        log.warning("request failed: %s", exc.message)
    return JSONResponse({"message": exc.message}, status_code=exc.http_status)


async def _validation_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    parts: list[str] = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error.get("loc", ()) if p != "body")
        parts.append(f"{where}: {error.get('msg')}" if where else str(error.get("msg")))
    body: dict[str, Any] = {"message": "invalid request: " + "; ".join(parts)}
    return JSONResponse(body, status_code=400)
