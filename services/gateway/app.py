"""wharf-gateway's composition root.

The cluster API (nodes, containers across nodes, commands over RabbitMQ) arrives with the
control-plane issue; today the gateway serves only its health check and OpenAPI document, so
deployments and health probes can already be wired.
"""

from __future__ import annotations

import click
from fastapi import FastAPI

from wharf import __version__


def create_app() -> FastAPI:
    app = FastAPI(title="wharf gateway", version=__version__)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    return app


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--listen", default="127.0.0.1:8080", show_default=True, help="host:port to serve on")
@click.version_option(__version__, prog_name="wharf-gateway")
def main(listen: str) -> None:
    """wharf-gateway: the cluster HTTP API (health check only until the control plane lands)."""
    import uvicorn  # noqa: PLC0415

    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit():
        raise click.BadParameter(f"{listen!r} is not host:port", param_hint="--listen")
    uvicorn.run(create_app(), host=host, port=int(port))
