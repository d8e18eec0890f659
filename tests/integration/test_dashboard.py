"""The dashboard (``/ui/``, docs/dashboard.md) in a real browser: Debian's headless Chromium
against a real gateway serving HTTPS with three real wharfd nodes over RabbitMQ (a vhost of the
test's own), each listening on mutual TLS as ``make cluster-up``'s do, so that ``logs -f`` is
relayed from the node.

A wrong token is refused on the page; an operate token sees the three nodes, runs a container
from the run form (placed by the gateway), sees its create and start events arrive on the feed
and the container in the list, reads its logs and stops and removes it with the detail's
buttons (a second Stop is the API's 304, said as such); a read token sees the same container
but its Stop gets the API's 403, shown on the page. The page's CSP keeps an injected inline
script from running. Two screenshots are taken; with ``WHARF_SCREENSHOTS=DIR`` they are also
copied to DIR (``docs/images`` holds the ones docs/dashboard.md shows).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.daemon_fixture import Daemon, running_daemon
from tests.integration.chromium_fixture import Browser, available, running_browser
from tests.integration.conftest import NodeAccount, SeededRegistry
from tests.integration.gateway_fixture import (
    Gateway,
    free_port,
    nodes,
    running_gateway,
    wait_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]
NODES = {"dash1": "a", "dash2": "b", "dash3": "c"}  # name → zone label; not another test's
NAME = "dash-web"
GREETING = "hello from the dashboard"
MARKUP = "<img src=x onerror=window.pwned=1>"  # a log line that is markup: shown as text


@dataclass
class Site:
    gateway: Gateway
    daemons: dict[str, Daemon]
    browser_flags: list[str]  # what lets Chromium trust the gateway's certificate


def _spki_pin(certificate: Path) -> str:
    """base64(SHA-256(SubjectPublicKeyInfo)) of a certificate: Chromium's
    --ignore-certificate-errors-spki-list trusts that one key, and no other."""
    key = subprocess.run(["openssl", "x509", "-in", str(certificate), "-noout", "-pubkey"],
                         check=True, capture_output=True).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "DER"], input=key,
                         check=True, capture_output=True).stdout
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


def _remove_containers(daemon: Daemon) -> None:
    if daemon.process.poll() is None:
        for container in json.loads(daemon.request("GET", "/containers/json?all=1")[1]):
            daemon.request("DELETE", f"/containers/{container['Id']}?force=1")


@pytest.fixture
def site(amqp_url: str, node_account: NodeAccount, seeded_registry: SeededRegistry,
         certs: Path, tmp_path: Path) -> Iterator[Site]:
    with running_gateway(tmp_path / "gateway", amqp_url, tls=certs) as gateway, \
            ExitStack() as stack:
        daemons: dict[str, Daemon] = {}
        try:
            for name, zone in NODES.items():
                tls = ["-H", f"tcp://127.0.0.1:{free_port()}", "--tlsverify",
                       "--tlscacert", str(certs / "ca.pem"),
                       "--tlscert", str(certs / "server-cert.pem"),
                       "--tlskey", str(certs / "server-key.pem")]
                env = {"WHARF_AMQP_URL": node_account(name), "WHARF_NODE_NAME": name,
                       "WHARF_NODE_LABELS": json.dumps({"zone": zone}),
                       "WHARF_HEARTBEAT_INTERVAL": "0.5", "WHARF_SNAPSHOT_INTERVAL": "2"}
                daemons[name] = stack.enter_context(running_daemon(
                    tmp_path / name, mirrors=[seeded_registry.registry.url], extra_args=tls,
                    env=env))
            with gateway.client() as client:
                wait_for(lambda: len(nodes(client)) == 3 and all(
                    n["Status"] == "ready" and n["Address"] for n in nodes(client).values()),
                    timeout=30)
            pin = _spki_pin(certs / "server-cert.pem")
            yield Site(gateway, daemons, [f"--ignore-certificate-errors-spki-list={pin}"])
        finally:
            for daemon in daemons.values():  # what a failed test left behind
                _remove_containers(daemon)


@pytest.fixture
def chromium(tmp_path: Path) -> Iterator[Path]:
    """Where the browser's profile and log go (removed afterwards); skips without chromium."""
    if not available():
        pytest.skip("chromium is not installed (infra/setup.sh installs it)")
    base = tmp_path / "browser"
    yield base
    shutil.rmtree(base, ignore_errors=True)


def _js(value: str) -> str:
    return json.dumps(value)


def _log_in(page: Browser, token: str) -> None:
    page.wait("!document.getElementById('login').hidden", what="the login form")
    page.type("#token", token)
    page.click("#login-form button[type=submit]")


def _row_of(name: str) -> str:
    """An expression: the containers table's row of ``name`` (or undefined)."""
    return ("[...document.querySelectorAll('#containers tbody tr')].find(r => "
            f"r.cells[1]?.textContent === {_js(name)})")


def _sees_the_three_nodes(page: Browser) -> None:
    listed = page.wait(
        "(() => { const rows = [...document.querySelectorAll('#nodes tbody tr[data-node]')];"
        " return rows.length === 3 && rows.every(r => r.cells[1].textContent === 'ready') &&"
        " rows.map(r => [r.dataset.node, r.cells[5].textContent]); })()",
        what="three ready nodes")
    assert listed == [[name, f"zone={zone}"] for name, zone in NODES.items()]
    assert page.text("#nodes-summary") == "3 nodes, 3 ready"
    assert "gw-test" in page.wait("document.getElementById('gateway').textContent")


def _runs_a_container_and_sees_its_events(page: Browser) -> str:
    """The run form (image, command, name; any node); the answer, the events, the list."""
    page.type("#run-form [name=image]", "busybox")
    page.type("#run-form [name=command]",  # PID 1 ignores SIGTERM unless it traps it
              f"sh -c 'trap \"exit 0\" TERM; echo {GREETING}; echo \"{MARKUP}\"; "
              "sleep 300 & wait'")
    page.type("#run-form [name=name]", NAME)
    assert page.evaluate("document.getElementById('run-node').value") == ""  # any node
    page.click("#run-form button[type=submit]")
    result = page.wait("(t => t.startsWith('Started') && t)"
                       "(document.getElementById('run-result').textContent)", timeout=90,
                       what="the run form's answer")
    node = result.rsplit(" ", 1)[1]
    assert result == f"Started {NAME} on {node}" and node in NODES
    for action in ("create", "start"):  # the feed shows both, named
        page.wait(f"[...document.querySelectorAll('#events li[data-type=container]"
                  f"[data-action={action}]')].some(li => li.textContent.includes("
                  f"{_js(NAME)}) && li.textContent.includes({_js(node)}))",
                  what=f"the {action} event on the feed")
    row = page.wait(f"(r => r && [...r.cells].map(c => c.textContent))({_row_of(NAME)})",
                    what="the container in the list")
    assert row[2] == "busybox" and row[4] == "running" and row[6] == node
    assert row[5].startswith("Up ")
    return node


def _choose(page: Browser, selector: str, value: str) -> None:
    """Pick an option of a <select>, as a user's choice fires ``input``."""
    page.evaluate(f"(e => {{ e.value = {_js(value)}; e.dispatchEvent(new Event('input', "
                  f"{{bubbles: true}})); }})(document.querySelector({_js(selector)}))")


def _filters_narrow_the_list(page: Browser, node: str) -> None:
    """Each filter of the form reaches GET /v1/containers: what matches stays, what does not
    empties the list, and clearing it brings the container back."""
    other = next(name for name in NODES if name != node)
    empty = "document.querySelector('#containers tbody td.muted')?.textContent === " \
            "'No container matches.'"
    for selector, miss, hit in [("#filters [name=name]", "nothing-like-it", NAME),
                                ("#filters [name=ancestor]", "hello-world", "busybox"),
                                ("#filters [name=label]", "zone", "")]:
        page.type(selector, miss)
        page.wait(empty, what=f"{selector}={miss} matching nothing")
        page.type(selector, hit)
        page.wait(f"!!{_row_of(NAME)}", what=f"{selector}={hit} matching it")
    for value, matches in [(other, False), (node, True), ("", True)]:
        _choose(page, "#filter-node", value)
        page.wait(f"!!{_row_of(NAME)}" if matches else empty, what=f"node filter {value}")
    _choose(page, "#filters [name=status]", "exited")
    page.wait(empty, what="no exited container")
    _choose(page, "#filters [name=status]", "")
    page.wait(f"!!{_row_of(NAME)} && document.getElementById('containers-summary')"
              ".textContent === '1 shown'")


def _opens_it_and_reads_its_logs(page: Browser, node: str) -> None:
    page.click("#containers tbody tr[data-id]")  # the only container
    page.wait("!document.getElementById('detail').hidden", what="the detail panel")
    page.wait(f"document.getElementById('detail-title').textContent.startsWith({_js(NAME)})")
    facts = page.wait("(d => d.length > 0 && Object.fromEntries(d))([...document.querySelectorAll"
                      "('#inspect dt')].map(dt => [dt.textContent, "
                      "dt.nextElementSibling.textContent]))", what="what inspect says")
    assert facts["State"] == "running" and facts["Node"] == node and facts["Image"] == "busybox"
    page.wait(f"document.getElementById('logs').textContent.includes({_js(MARKUP)})",
              what="the container's output in the logs")
    assert page.text("#logs").startswith(f"{GREETING}\n{MARKUP}\n")
    assert page.evaluate("document.querySelector('#logs img') === null && "
                         "window.pwned === undefined")


def _stop_is_refused_to_a_read_token(page: Browser, reader: str) -> None:
    page.click("#logout")
    _log_in(page, reader)
    page.wait(f"!!{_row_of(NAME)}", what="the container, seen with the read token")
    page.click("#containers tbody tr[data-id]")
    page.wait("document.getElementById('inspect').textContent.includes('running')")
    page.click("#action-stop")
    message = page.wait("(e => e.classList.contains('error') && e.textContent)"
                        "(document.getElementById('detail-message'))", what="the refusal")
    assert message.startswith("403: scope: POST /v1/nodes/dash") and \
        "needs a token with scope 'operate'; token 'viewer' has scope 'read'" in message


def _stops_and_removes_it(page: Browser, operator: str) -> None:
    page.click("#logout")
    _log_in(page, operator)
    page.wait(f"!!{_row_of(NAME)}")
    page.click("#containers tbody tr[data-id]")
    page.wait("document.getElementById('inspect').textContent.includes('running')")
    page.click("#action-stop")
    page.wait("document.getElementById('detail-message').textContent === 'stop: done'",
              timeout=60, what="stop")
    page.wait("document.getElementById('inspect').textContent.includes('exited')")
    page.wait(f"(r => r?.cells[4].textContent === 'exited')({_row_of(NAME)})")
    page.click("#action-stop")  # stopped already: the API's 304, not an error
    page.wait("document.getElementById('detail-message').textContent === "
              "'stop: it already was'", what="stop again")
    page.click("#action-rm")
    page.wait("document.getElementById('detail').hidden", timeout=60, what="rm")
    page.wait(f"!{_row_of(NAME)} && !!document.querySelector("
              "'#events li[data-type=container][data-action=destroy]')",
              what="the container gone, its destroy event on the feed")


def _csp_stops_an_inline_script(page: Browser) -> None:
    blocked = page.evaluate(
        "new Promise(resolve => { document.addEventListener('securitypolicyviolation', "
        "e => resolve(e.violatedDirective), {once: true}); const s = "
        "document.createElement('script'); s.textContent = 'window.injected = 1'; "
        "document.body.append(s); })")
    assert blocked.startswith("script-src") and page.evaluate("window.injected") is None


def _keep(shots: list[Path]) -> None:
    target = os.environ.get("WHARF_SCREENSHOTS")
    if target:
        for shot in shots:
            shutil.copyfile(shot, Path(target) / shot.name)


def test_log_in_see_the_nodes_run_from_the_page_and_follow_the_feed(
        site: Site, chromium: Path, tmp_path: Path) -> None:
    operator = site.gateway.add_token("ops", "operate")
    reader = site.gateway.add_token("viewer", "read")
    with running_browser(chromium, site.browser_flags) as browser:
        browser.goto(site.gateway.url + "/ui")
        _log_in(browser, "wgt_not-a-token")
        browser.wait("document.getElementById('login-error').textContent === "
                     "'The gateway refused the token: invalid token'", what="the refusal")
        _csp_stops_an_inline_script(browser)
        _log_in(browser, operator)
        browser.wait("!document.getElementById('main').hidden", what="the dashboard")
        assert browser.evaluate("sessionStorage.getItem('wharf.gateway.token')") == operator
        _sees_the_three_nodes(browser)
        node = _runs_a_container_and_sees_its_events(browser)
        overview = browser.screenshot(tmp_path / "dashboard-overview.png")
        _filters_narrow_the_list(browser, node)
        _opens_it_and_reads_its_logs(browser, node)
        browser.evaluate("document.getElementById('detail').scrollIntoView()")
        container = browser.screenshot(tmp_path / "dashboard-container.png", "#detail")
        for shot in (overview, container):
            assert shot.startswith(b"\x89PNG\r\n\x1a\n") and len(shot) > 20_000
        _stop_is_refused_to_a_read_token(browser, reader)
        _stops_and_removes_it(browser, operator)
        assert browser.exceptions() == []
    _keep([tmp_path / "dashboard-overview.png", tmp_path / "dashboard-container.png"])
    with site.gateway.client() as client:  # the page removed it: no node has it
        assert client.get("/v1/containers", params={"all": "true"}).json() == []


# What the page reads off the wire (wire.js), fed in awkward pieces: an event split mid-field
# and mid-CRLF, a comment, two data lines; two log frames split mid-header; a quoted command.
_WIRE = """(async () => {
  const w = await import("./wire.js");
  const sse = new w.EventStreamParser();
  const events = ['id: 1\\r\\ndata: {"a":', '1}\\r\\n\\r', '\\n: hi\\ndata: x\\ndata: y\\n\\n']
    .map((piece) => sse.feed(piece));
  const frame = (n, text) => [n, 0, 0, 0, 0, 0, 0, text.length,
                              ...new TextEncoder().encode(text)];
  const bytes = new Uint8Array([...frame(1, "ab"), ...frame(2, "c")]);
  const reader = new w.FrameReader();
  const frames = [bytes.slice(0, 5), bytes.slice(5)].map((part) => reader.feed(part)
    .map((f) => [f.stream, new TextDecoder().decode(f.bytes)]));
  let unclosed = null;
  try { w.splitCommand("echo 'a"); } catch (error) { unclosed = error.message; }
  return { events, frames, unclosed,
           words: w.splitCommand(String.raw`sh -c 'echo "a b"; x' "q\\"x" a\\ b  ''`) };
})()"""


def test_the_pages_wire_parsers_in_the_browser(amqp_url: str, chromium: Path,
                                               tmp_path: Path) -> None:
    with running_gateway(tmp_path / "gateway", amqp_url) as gateway, \
            running_browser(chromium) as browser:
        browser.goto(gateway.url + "/ui/")
        result = browser.evaluate(_WIRE)
    assert result["events"] == [[], [], [{"type": "message", "data": '{"a":1}', "id": "1"},
                                         {"type": "message", "data": "x\ny", "id": "1"}]]
    assert result["frames"] == [[], [["stdout", "ab"], ["stderr", "c"]]]
    assert result["words"] == ["sh", "-c", 'echo "a b"; x', 'q"x', "a b", ""]
    assert result["unclosed"] == "unclosed ' in the command"
