"""``/ui/``: the dashboard's static files, served without a token under a strict
Content-Security-Policy.

The files hold no cluster data: the page asks for a bearer token and sends it with every API
call it makes, so what a token may see and do is the API's scopes, unchanged. Only the files
of :data:`FILES` are served (no path from the request reaches the file system), each with the
headers of :data:`HEADERS`: scripts and styles from this origin only, no inline script or
style, no frames, no form posts, no referrer.
"""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter, Response

from wharf.errors import NotFound

# Every file served, name → media type; tests/unit/test_ui_pages.py checks it is static/'s list.
FILES: dict[str, str] = {
    "index.html": "text/html; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "api.js": "text/javascript; charset=utf-8",
    "dom.js": "text/javascript; charset=utf-8",
    "feed.js": "text/javascript; charset=utf-8",
    "detail.js": "text/javascript; charset=utf-8",
    "tables.js": "text/javascript; charset=utf-8",
    "wire.js": "text/javascript; charset=utf-8",
}
# The paths BearerAuth lets through without a token (wharf.gateway.auth.OPEN_PATHS).
PATHS = frozenset({"/ui", "/ui/", *(f"/ui/{name}" for name in FILES)})
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; "
       "frame-ancestors 'none'")
HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
           "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer",
           "Cache-Control": "no-cache"}

ui = APIRouter(prefix="/ui", include_in_schema=False)


@ui.get("")
async def to_index() -> Response:
    """``/ui`` → ``/ui/``, so that the page's relative links resolve under it (a relative
    Location: right behind a proxy that adds a path prefix too)."""
    return Response(status_code=308, headers={**HEADERS, "Location": "ui/"})


@ui.get("/")
async def index() -> Response:
    return _file("index.html")


@ui.get("/{name}")
async def static_file(name: str) -> Response:
    if name not in FILES:
        raise NotFound(f"no such dashboard file: {name}")
    return _file(name)


def _file(name: str) -> Response:
    data = resources.files("wharf.gateway.ui").joinpath("static", name).read_bytes()
    return Response(data, media_type=FILES[name], headers=HEADERS)
