// The dashboard's entry point: the token login, then the nodes, the containers (with filters),
// the run form, the event feed and a container's detail, all from the gateway's API.

import { ApiError, call, setToken, token } from "./api.js";
import { ContainerDetail } from "./detail.js";
import { byId, fill, say } from "./dom.js";
import { EventFeed } from "./feed.js";
import { fillNodeChoice, renderContainers, renderNodes } from "./tables.js";
import { filtersFrom, shortId, splitCommand } from "./wire.js";

const PAGE = 500; // containers a page of the list shows
const FIELDS = ["Id", "Names", "Image", "Command", "State", "Status", "Node"];
const NODES_EVERY_MS = 5000; // load and last-seen change without events
const SOON_MS = 300; // events and typing come in bursts: one refresh for a burst

const page = { rows: [], cursor: null, timer: null, soon: null, asked: 0 };
const feed = new EventFeed(byId("events"), byId("feed-state"), {
  onEvent: () => refreshSoon(), onOpen: (node, id) => detail.open(node, id), onRefused: refused,
});
const detail = new ContainerDetail({ onChanged: () => refreshSoon(), onRefused: refused });

function refused(error) {
  logOut(`The gateway refused the token: ${error.message}`);
}

function failed(where, error) {
  if (error instanceof ApiError && error.status === 401) {
    refused(error);
  } else {
    say(byId("message"), `${where}: ${error.message}`, "error");
  }
}

async function loadNodes() {
  const { document } = await call("GET", "v1/nodes");
  renderNodes(byId("nodes").tBodies[0], document);
  fillNodeChoice(byId("filter-node"), document);
  fillNodeChoice(byId("run-node"), document);
  const ready = document.filter((n) => n.Status === "ready").length;
  byId("nodes-summary").textContent = `${document.length} nodes, ${ready} ready`;
}

function containerQuery(cursor) {
  const form = byId("filters");
  const filters = filtersFrom({
    node: form.elements.node.value, name: form.elements.name.value,
    status: form.elements.status.value, label: form.elements.label.value,
    ancestor: form.elements.ancestor.value,
  });
  return { all: form.elements.all.checked ? "true" : "false", limit: String(PAGE), cursor,
           fields: FIELDS, filters: Object.keys(filters).length ? JSON.stringify(filters) : "" };
}

async function loadContainers(more = false) {
  const asked = ++page.asked; // an older answer that arrives late must not replace a newer one
  const { document, headers } = await call("GET", "v1/containers",
                                          { query: containerQuery(more ? page.cursor : null) });
  if (asked !== page.asked) return;
  page.rows = more ? [...page.rows, ...document] : document;
  page.cursor = headers.get("X-Wharf-Next-Cursor");
  renderContainers(byId("containers").tBodies[0], page.rows, (node, id) => detail.open(node, id));
  byId("containers-more").hidden = page.cursor === null;
  byId("containers-summary").textContent =
    `${page.rows.length}${page.cursor === null ? "" : "+"} shown`;
}

function refreshSoon() {
  clearTimeout(page.soon);
  page.soon = setTimeout(() => {
    loadContainers().catch((e) => failed("containers", e));
    loadNodes().catch((e) => failed("nodes", e));
  }, SOON_MS);
}

async function showGateway() {
  const { document } = await call("GET", "v1/info");
  byId("gateway").textContent =
    `${document.GatewayID} · wharf ${document.Version} · broker ${document.Broker}`;
}

async function run(event) {
  event.preventDefault();
  const form = byId("run-form");
  const result = byId("run-result");
  let body;
  try {
    body = { Image: form.elements.image.value.trim() };
    const words = splitCommand(form.elements.command.value);
    if (words.length > 0) body.Cmd = words;
  } catch (error) {
    say(result, error.message, "error");
    return;
  }
  const node = form.elements.node.value;
  const query = { wait: "true", name: form.elements.name.value.trim() };
  const where = node ? `v1/nodes/${encodeURIComponent(node)}/containers/run` : "v1/containers";
  say(result, `Running ${body.Image}…`);
  try {
    const { document } = await call("POST", where, { query, body });
    say(result, `Started ${query.name || shortId(document.Id)} on ${document.Node ?? node}`, "ok");
    refreshSoon();
  } catch (error) {
    if (error.status === 401) refused(error);
    else say(result, `${error.status ?? ""} ${error.message}`.trim(), "error");
  }
}

async function logIn(value) {
  setToken(value);
  try {
    await loadNodes();
  } catch (error) {
    logOut(error instanceof ApiError && error.status === 401
      ? `The gateway refused the token: ${error.message}` : error.message);
    return;
  }
  byId("token").value = "";
  byId("login").hidden = true;
  byId("main").hidden = false;
  byId("logout").hidden = false;
  say(byId("message"), "");
  feed.start();
  page.timer = setInterval(() => loadNodes().catch((e) => failed("nodes", e)), NODES_EVERY_MS);
  loadContainers().catch((e) => failed("containers", e));
  showGateway().catch((e) => failed("gateway", e));
}

function logOut(message = "") {
  feed.stop();
  detail.close();
  clearInterval(page.timer);
  clearTimeout(page.soon);
  setToken(null);
  byId("main").hidden = true;
  byId("logout").hidden = true;
  byId("login").hidden = false;
  fill(byId("gateway"));
  say(byId("login-error"), message, message ? "error" : "");
  byId("token").value = "";
  byId("token").focus();
}

byId("login-form").addEventListener("submit", (event) => {
  event.preventDefault();
  logIn(byId("token").value.trim());
});
byId("logout").addEventListener("click", () => logOut());
byId("run-form").addEventListener("submit", run);
byId("filters").addEventListener("input", refreshSoon);
byId("filters").addEventListener("submit", (event) => event.preventDefault());
byId("containers-more").addEventListener("click",
  () => loadContainers(true).catch((e) => failed("containers", e)));

if (token()) {
  logIn(token());
} else {
  logOut();
}
