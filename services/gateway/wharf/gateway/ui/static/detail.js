// One container: what inspect says, its logs (followed), and its lifecycle buttons, each a
// command through the gateway with ?wait=true (a read token gets the API's 403, shown as is).

import { call, readLogs } from "./api.js";
import { byId, fill, h, say } from "./dom.js";

const ACTIONS = {
  start: ["POST", "start"],
  stop: ["POST", "stop"],
  restart: ["POST", "restart"],
  rm: ["DELETE", ""],
};

function path(node, id, action = "") {
  const base = `v1/nodes/${encodeURIComponent(node)}/containers/${encodeURIComponent(id)}`;
  return action ? `${base}/${action}` : base;
}

// A word of a command as a shell would need it quoted to read it back.
function quoted(word) {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, "'\\''")}'`;
}

// Docker's zero time (never started, never finished) as a dash.
function time(text) {
  return !text || text.startsWith("0001-01-01") ? "—" : text;
}

function facts(node, d) {
  const state = d.State ?? {};
  const config = d.Config ?? {};
  const networks = Object.entries(d.NetworkSettings?.Networks ?? {})
    .map(([name, n]) => `${name} ${n.IPAddress || "—"}`).join(", ");
  const labels = Object.entries(config.Labels ?? {}).map(([k, v]) => `${k}=${v}`).join(", ");
  return [
    ["Id", d.Id], ["Node", node], ["Image", config.Image ?? d.Image],
    ["Command", [d.Path, ...(d.Args ?? [])].filter((w) => w).map(quoted).join(" ")],
    ["State", state.Status], ["Exit code", state.ExitCode], ["Created", time(d.Created)],
    ["Started", time(state.StartedAt)], ["Finished", time(state.FinishedAt)],
    ["Restart policy", d.HostConfig?.RestartPolicy?.Name || "no"],
    ["Networks", networks || "—"], ["Labels", labels || "—"],
  ];
}

export class ContainerDetail {
  /** onChanged() after an action changed the container; onRefused(error) on a 401. */
  constructor({ onChanged, onRefused }) {
    Object.assign(this, { onChanged, onRefused });
    this.panel = byId("detail");
    this.message = byId("detail-message");
    this.logs = byId("logs");
    this.follow = byId("logs-follow");
    this.current = null;
    this.logController = null;
    for (const name of Object.keys(ACTIONS)) {
      byId(`action-${name}`).addEventListener("click", () => this.act(name));
    }
    byId("detail-close").addEventListener("click", () => this.close());
    byId("logs-reload").addEventListener("click", () => this.streamLogs());
    this.follow.addEventListener("change", () => this.streamLogs());
  }

  async open(node, id) {
    this.current = { node, id, tty: false };
    this.panel.hidden = false;
    say(this.message, "");
    fill(byId("detail-title"), id.slice(0, 12), h("span", { class: "chip" }, node));
    await this.inspect();
    this.streamLogs();
    this.panel.scrollIntoView({ block: "nearest" });
  }

  close() {
    this.logController?.abort();
    this.current = null;
    this.panel.hidden = true;
  }

  async inspect() {
    const { node, id } = this.current;
    try {
      const { document } = await call("GET", path(node, id, "json"));
      if (this.current?.id !== id) return;
      this.current.tty = Boolean(document.Config?.Tty); // how its logs are framed
      fill(byId("detail-title"), (document.Name ?? "").replace(/^\//, "") || id.slice(0, 12),
           h("span", { class: "chip" }, node));
      fill(byId("inspect"), facts(node, document).map(([key, value]) =>
        [h("dt", {}, key), h("dd", {}, value === undefined || value === null ? "" : String(value))]));
    } catch (error) {
      this.failed(error);
    }
  }

  streamLogs() {
    if (this.current === null) return;
    const { node, id, tty } = this.current;
    this.logController?.abort();
    const controller = new AbortController();
    this.logController = controller;
    fill(this.logs);
    const follow = this.follow.checked;
    readLogs(node, id, { follow, tty }, (stream, text) => {
      this.logs.append(stream === "stderr" ? h("span", { class: "stderr" }, text) : text);
      this.logs.scrollTop = this.logs.scrollHeight;
    }, controller.signal).then(() => {
      if (follow && !controller.signal.aborted) {
        this.logs.append(h("span", { class: "muted" }, "\n(the log ended: the container stopped)\n"));
      }
    }, (error) => {
      if (!controller.signal.aborted) this.failed(error);
    });
  }

  async act(name) {
    if (this.current === null) return;
    const { node, id } = this.current;
    const [method, action] = ACTIONS[name];
    const query = { wait: "true" };
    if (name === "rm" && byId("rm-force").checked) query.force = "1";
    say(this.message, `${name}…`);
    try {
      const { status } = await call(method, path(node, id, action), { query });
      say(this.message, status === 304 ? `${name}: it already was` : `${name}: done`, "ok");
      this.onChanged();
      if (name === "rm") {
        this.close();
        return;
      }
      await this.inspect();
      if (name !== "stop") this.streamLogs();
    } catch (error) {
      this.failed(error);
    }
  }

  failed(error) {
    if (error.status === 401) {
      this.onRefused(error);
      return;
    }
    say(this.message, error.status ? `${error.status}: ${error.message}` : error.message, "error");
  }
}
