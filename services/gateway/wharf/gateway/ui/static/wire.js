// What the dashboard reads off the wire, as pure functions over text and bytes (no DOM, no
// fetch): Server-Sent Events, Docker's multiplexed log frames, a command line, and wording.

/** An incremental text/event-stream parser (the WHATWG rules: fields per line, an event at a
 *  blank line, `data` lines joined by "\n", comments start with ":"). */
export class EventStreamParser {
  constructor() {
    this.buffer = "";
    this.data = [];
    this.type = "";
    this.lastId = null;
  }

  /** Feed decoded text; returns the events it completed, each {type, data, id}. */
  feed(text) {
    this.buffer += text;
    const events = [];
    let newline;
    while ((newline = this.buffer.search(/\r\n|\r|\n/)) >= 0) {
      if (this.buffer[newline] === "\r" && newline === this.buffer.length - 1) {
        break; // a lone "\r" at the end may be the first half of "\r\n"
      }
      const line = this.buffer.slice(0, newline);
      const width = this.buffer.startsWith("\r\n", newline) ? 2 : 1;
      this.buffer = this.buffer.slice(newline + width);
      const event = this.line(line);
      if (event !== null) {
        events.push(event);
      }
    }
    return events;
  }

  line(line) {
    if (line === "") {
      if (this.data.length === 0) {
        this.type = "";
        return null;
      }
      const event = { type: this.type || "message", data: this.data.join("\n"), id: this.lastId };
      this.data = [];
      this.type = "";
      return event;
    }
    if (line.startsWith(":")) {
      return null;
    }
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) {
      value = value.slice(1);
    }
    if (field === "data") {
      this.data.push(value);
    } else if (field === "event") {
      this.type = value;
    } else if (field === "id" && !value.includes("\0")) {
      this.lastId = value;
    }
    return null;
  }
}

/** Docker's multiplexed stream (8-byte headers: stream, 0, 0, 0, big-endian size) split into
 *  {stream: "stdout"|"stderr"|"stdin", bytes}; bytes of an unfinished frame are kept. */
export class FrameReader {
  constructor() {
    this.pending = new Uint8Array(0);
  }

  feed(chunk) {
    const data = new Uint8Array(this.pending.length + chunk.length);
    data.set(this.pending);
    data.set(chunk, this.pending.length);
    const frames = [];
    let at = 0;
    while (data.length - at >= 8) {
      const size = new DataView(data.buffer, data.byteOffset + at + 4, 4).getUint32(0);
      if (data.length - at - 8 < size) {
        break;
      }
      const stream = ["stdin", "stdout", "stderr"][data[at]] || "stdout";
      frames.push({ stream, bytes: data.slice(at + 8, at + 8 + size) });
      at += 8 + size;
    }
    this.pending = data.slice(at);
    return frames;
  }
}

/** A command line split into words as a POSIX shell would (quotes and backslashes, no
 *  expansion); an Error naming an unclosed quote. */
export function splitCommand(text) {
  const words = [];
  let word = null;
  let quote = null;
  for (let i = 0; i < text.length; i += 1) {
    const c = text[i];
    if (quote === "'") {
      if (c === "'") quote = null; else word += c;
    } else if (quote === '"') {
      if (c === '"') {
        quote = null;
      } else if (c === "\\" && i + 1 < text.length && '"\\$`'.includes(text[i + 1])) {
        i += 1;
        word += text[i];
      } else {
        word += c;
      }
    } else if (/\s/.test(c)) {
      if (word !== null) words.push(word);
      word = null;
    } else {
      word = word ?? "";
      if (c === "'" || c === '"') {
        quote = c;
      } else if (c === "\\" && i + 1 < text.length) {
        i += 1;
        word += text[i];
      } else {
        word += c;
      }
    }
  }
  if (quote !== null) {
    throw new Error(`unclosed ${quote} in the command`);
  }
  if (word !== null) words.push(word);
  return words;
}

/** Docker's filters object from the filter form's values (empty ones left out). */
export function filtersFrom(values) {
  const filters = {};
  for (const [key, value] of Object.entries(values)) {
    const text = String(value ?? "").trim();
    if (text !== "") {
      filters[key] = [text];
    }
  }
  return filters;
}

/** Bytes in binary units, as `docker system df` words them. */
export function bytes(count) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = Number(count) || 0;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(unit === 0 ? 0 : 1)} ${units[unit]}`;
}

/** Seconds as "4s", "3m", "2h", "5d" ago. */
export function ago(seconds) {
  const s = Math.max(0, Number(seconds) || 0);
  if (s < 60) return `${Math.round(s)}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  if (s < 86400) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86400)}d`;
}

/** A container's short id (12 hex digits, as docker ps shows it). */
export function shortId(id) {
  return String(id ?? "").slice(0, 12);
}

/** A container's first name, without Docker's leading "/". */
export function nameOf(names) {
  const first = Array.isArray(names) && names.length > 0 ? String(names[0]) : "";
  return first.startsWith("/") ? first.slice(1) : first;
}
