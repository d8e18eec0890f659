// The live event feed: GET /v1/events as Server-Sent Events, read with fetch, newest first,
// resumed from the last event seen when the stream breaks.

import { followEvents, ApiError } from "./api.js";
import { fill, h, say } from "./dom.js";
import { shortId } from "./wire.js";

const KEEP = 200; // rows shown
const RETRY_MS = 2000;
const HISTORY_SECONDS = 3600; // what the feed starts with: the last hour's events, not all kept

function row(id, event, onOpen) {
  const actor = event.Actor ?? {};
  const attributes = actor.Attributes ?? {};
  const when = event.time ? new Date(event.time * 1000) : new Date();
  const what = attributes.name || shortId(actor.ID);
  const container = event.Type === "container" && event.node && actor.ID;
  return h("li", { "data-id": id, "data-type": event.Type ?? "", "data-action": event.Action ?? "",
                   class: container ? "clickable" : null,
                   onclick: container ? () => onOpen(event.node, actor.ID) : null },
    h("time", { datetime: when.toISOString() }, when.toLocaleTimeString()),
    h("span", { class: "badge" }, event.Type ?? "?"),
    h("strong", {}, event.Action ?? ""),
    h("span", {}, what),
    attributes.image ? h("span", { class: "muted" }, attributes.image) : null,
    event.node ? h("span", { class: "chip" }, event.node) : null);
}

export class EventFeed {
  /** `list`: the <ol> of events; `state`: where the stream's state is said; onEvent(event)
   *  after each event shown; onOpen(node, id) when a container's event is clicked;
   *  onRefused(error) when the token is refused (401). */
  constructor(list, state, { onEvent, onOpen, onRefused }) {
    Object.assign(this, { list, state, onEvent, onOpen, onRefused });
    this.lastId = 0;
    this.controller = null;
  }

  start() {
    this.stop();
    fill(this.list);
    this.lastId = 0;
    this.controller = new AbortController();
    this.run(this.controller.signal);
  }

  stop() {
    this.controller?.abort();
    this.controller = null;
  }

  async run(signal) {
    while (!signal.aborted) {
      say(this.state, "live", "ok");
      try {
        const query = this.lastId > 0 ? { since: this.lastId }
          : { since_time: Math.floor(Date.now() / 1000) - HISTORY_SECONDS };
        await followEvents(query, (id, event) => this.show(id, event), signal);
        say(this.state, "the stream ended; reconnecting", "");
      } catch (error) {
        if (signal.aborted) return;
        if (error instanceof ApiError && error.status === 401) {
          this.onRefused(error);
          return;
        }
        say(this.state, `disconnected (${error.message}); reconnecting`, "error");
      }
      await new Promise((resolve) => { setTimeout(resolve, RETRY_MS); });
    }
  }

  show(id, event) {
    this.lastId = Math.max(this.lastId, id);
    this.list.prepend(row(id, event, this.onOpen));
    while (this.list.childElementCount > KEEP) {
      this.list.lastElementChild.remove();
    }
    this.onEvent(event);
  }
}
