// The nodes and containers tables, rendered from the API's documents (GET /v1/nodes, GET
// /v1/containers) with text nodes only.

import { fill, h } from "./dom.js";
import { ago, bytes, nameOf, shortId } from "./wire.js";

function labels(map) {
  const entries = Object.entries(map ?? {});
  if (entries.length === 0) return h("span", { class: "muted" }, "—");
  return entries.map(([key, value]) => h("span", { class: "chip" }, `${key}=${value}`));
}

function load(document) {
  const l = document.Load ?? {};
  const used = (l.memory_total ?? 0) - (l.memory_available ?? 0);
  const memory = l.memory_total ? `${bytes(used)} / ${bytes(l.memory_total)}` : "—";
  return [h("span", { title: "1-minute load average / CPUs" },
            `${Number(l.load1 ?? 0).toFixed(2)} / ${l.cpus ?? "?"} cpu`),
          h("br"), h("span", { class: "muted", title: "memory in use / total" }, memory)];
}

/** One row per node: name, status, availability, load, containers, labels, last seen. */
export function renderNodes(tbody, nodes) {
  fill(tbody, nodes.map((n) => h("tr", { "data-node": n.Name },
    h("td", {}, h("strong", {}, n.Name), h("br"), h("span", { class: "muted" }, n.Address ?? "")),
    h("td", {}, h("span", { class: `badge ${n.Status === "ready" ? "ok" : "bad"}` }, n.Status)),
    h("td", {}, h("span", { class: `badge ${n.Availability === "active" ? "" : "warn"}` },
                  n.Availability)),
    h("td", {}, load(n)),
    h("td", { class: "number" }, `${n.Running} / ${n.Containers}`),
    h("td", {}, labels(n.Labels)),
    h("td", { title: new Date(n.LastSeen * 1000).toISOString() }, `${ago(n.LastSeenAgo)} ago`),
    h("td", { class: "muted" }, n.Version ?? ""))));
  if (nodes.length === 0) {
    fill(tbody, h("tr", {}, h("td", { colspan: 8, class: "muted" }, "No node has reported yet.")));
  }
}

/** Keep a <select> of nodes up to date (its first option, "any", kept), the choice kept. */
export function fillNodeChoice(select, nodes) {
  const chosen = select.value;
  const first = select.options[0];
  fill(select, first, nodes.map((n) => h("option", { value: n.Name }, n.Name)));
  select.value = nodes.some((n) => n.Name === chosen) ? chosen : first.value;
}

function state(row) {
  const kind = { running: "ok", exited: "", created: "", paused: "warn", restarting: "warn",
                 dead: "bad", removing: "warn" }[row.State] ?? "";
  return h("span", { class: `badge ${kind}` }, row.State ?? "");
}

/** One row per container; a click (or Enter) on a row calls onOpen(node, id). */
export function renderContainers(tbody, rows, onOpen) {
  fill(tbody, rows.map((row) => {
    const open = () => onOpen(row.Node, row.Id);
    return h("tr", { class: "clickable", tabindex: 0, "data-id": row.Id, onclick: open,
                     onkeydown: (e) => { if (e.key === "Enter") open(); } },
      h("td", { class: "mono" }, shortId(row.Id)),
      h("td", {}, nameOf(row.Names)),
      h("td", {}, row.Image ?? ""),
      h("td", { class: "mono ellipsis", title: row.Command ?? "" }, row.Command ?? ""),
      h("td", {}, state(row)),
      h("td", {}, row.Status ?? ""),
      h("td", {}, row.Node ?? ""));
  }));
  if (rows.length === 0) {
    fill(tbody, h("tr", {}, h("td", { colspan: 7, class: "muted" }, "No container matches.")));
  }
}
