"""The dashboard's files as the gateway serves them (wharf.gateway.ui.pages): without a token,
only the files listed, each under the strict Content-Security-Policy; and what the CSP relies
on in the files themselves: no inline script or style, no markup built from data, no outside
origin (tests/integration/test_dashboard.py drives the page in Chromium)."""

from __future__ import annotations

import asyncio
import re
from html.parser import HTMLParser
from importlib import resources
from pathlib import Path

import httpx
import pytest

from wharf.gateway import auth
from wharf.gateway.app import create_app
from wharf.gateway.policy import Scope
from wharf.gateway.settings import GatewaySettings
from wharf.gateway.ui.pages import CSP, FILES

STATIC = Path(str(resources.files("wharf.gateway.ui").joinpath("static")))


def _get(tmp_path: Path, *paths: str, token: bool = False) -> list[httpx.Response]:
    settings = GatewaySettings(amqp_url="amqp://unused/", state_dir=tmp_path,
                               tokens_file=tmp_path / "tokens")
    secret = auth.create_token(settings.tokens_file, "reader", Scope.READ)
    app = create_app(settings)  # no lifespan: the files need no broker, no store
    headers = {"Authorization": f"Bearer {secret}"} if token else {}

    async def send() -> list[httpx.Response]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://gw", headers=headers) as client:
            return [await client.get(path) for path in paths]
    return asyncio.run(send())


def test_the_files_served_are_the_static_folders() -> None:
    assert sorted(FILES) == sorted(p.name for p in STATIC.iterdir())


def test_every_file_is_served_without_a_token_under_the_csp(tmp_path: Path) -> None:
    names = sorted(FILES)
    replies = _get(tmp_path, "/ui", "/ui/", *(f"/ui/{name}" for name in names))
    assert replies[0].status_code == 308 and replies[0].headers["location"] == "ui/"
    assert replies[1].text == (STATIC / "index.html").read_text()
    for name, reply in zip(["index.html", *names], replies[1:], strict=True):
        assert reply.status_code == 200, (name, reply.text)
        assert reply.headers["content-type"] == FILES[name]
        assert reply.content == (STATIC / name).read_bytes()
        assert reply.headers["content-security-policy"] == CSP
        assert reply.headers["x-content-type-options"] == "nosniff"
        assert reply.headers["x-frame-options"] == "DENY"
    assert "default-src 'self'" in CSP and "unsafe" not in CSP


def test_nothing_else_is_open(tmp_path: Path) -> None:
    anonymous = _get(tmp_path, "/ui/secret.js", "/ui/static/app.js", "/v1/nodes", "/ui/%2e%2e")
    assert [r.status_code for r in anonymous] == [401, 401, 401, 401]
    with_token = _get(tmp_path, "/ui/secret.js", "/ui/..%2fpages.py", token=True)
    assert [r.status_code for r in with_token] == [404, 404]
    assert with_token[0].json() == {"message": "no such dashboard file: secret.js",
                                    "code": "not_found"}


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.script_text: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.script_text.append(data)


def test_the_page_has_no_inline_script_or_style_and_links_only_its_files() -> None:
    parser = _Tags()
    parser.feed((STATIC / "index.html").read_text())
    assert parser.script_text == []
    for tag, attrs in parser.tags:
        assert tag != "style"
        assert not [a for a in attrs if a.startswith("on") or a == "style"], (tag, attrs)
        if tag == "script":
            assert attrs.get("type") == "module" and attrs.get("src") in FILES
        for key in ("src", "href"):
            if key in attrs:
                assert attrs[key] in FILES or attrs[key] == "data:,", (tag, attrs)


_MARKUP = re.compile(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|"
                     r"new Function|setAttribute\(\s*[\"']on|https?://")
_IMPORT = re.compile(r"^import .* from \"([^\"]+)\";$", re.MULTILINE)


@pytest.mark.parametrize("name", sorted(n for n in FILES if n.endswith(".js")))
def test_scripts_build_no_markup_and_import_only_the_dashboards_modules(name: str) -> None:
    text = (STATIC / name).read_text()
    assert _MARKUP.search(text) is None, _MARKUP.search(text)
    for module in _IMPORT.findall(text):
        assert module.startswith("./") and module[2:] in FILES, module
