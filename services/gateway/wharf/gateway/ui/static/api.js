// The gateway's API as the page calls it: the bearer token (kept in sessionStorage, so it goes
// when the tab does), JSON requests with the gateway's {message, code} errors, and the two
// streams the page reads with fetch (EventSource cannot send an Authorization header).

import { EventStreamParser, FrameReader } from "./wire.js";

const TOKEN_KEY = "wharf.gateway.token";
// The API's root: the parent of /ui/ (so a proxy that mounts the gateway under a prefix works).
const ROOT = new URL("../", document.baseURI);

/** An answer of the API that is not a success: its status, message and code. */
export class ApiError extends Error {
  constructor(status, message, code) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(value) {
  if (value) sessionStorage.setItem(TOKEN_KEY, value); else sessionStorage.removeItem(TOKEN_KEY);
}

/** The URL of an API path ("v1/nodes") with its query (values: strings or lists of them). */
export function url(path, query = {}) {
  const target = new URL(path, ROOT);
  for (const [key, value] of Object.entries(query)) {
    for (const item of Array.isArray(value) ? value : [value]) {
      if (item !== null && item !== undefined && item !== "") {
        target.searchParams.append(key, String(item));
      }
    }
  }
  return target;
}

async function send(method, path, { query, body, accept, signal } = {}) {
  const headers = { Authorization: `Bearer ${token() ?? ""}` };
  if (accept) headers.Accept = accept;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const reply = await fetch(url(path, query), {
    method, headers, signal, cache: "no-store",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!reply.ok && reply.status !== 304) { // 304: start or stop of one already so, as Docker
    throw await failure(reply);
  }
  return reply;
}

async function failure(reply) {
  let message = `${reply.status} ${reply.statusText}`;
  let code = "";
  try {
    const document = await reply.json();
    message = String(document.message ?? message);
    code = String(document.code ?? "");
  } catch {
    // not the gateway's JSON (a proxy's page): the status line says it
  }
  return new ApiError(reply.status, message, code);
}

/** A JSON request: the answer's document (null for 204/304), status and headers. */
export async function call(method, path, options = {}) {
  const reply = await send(method, path, options);
  const text = reply.status === 204 || reply.status === 304 ? "" : await reply.text();
  return { document: text ? JSON.parse(text) : null, status: reply.status,
           headers: reply.headers };
}

/** GET /v1/events as Server-Sent Events (`query`: since, since_time…): onEvent(id, document)
 *  for each, until the stream ends (returns) or `signal` aborts it. */
export async function followEvents(query, onEvent, signal) {
  const reply = await send("GET", "v1/events", { query, accept: "text/event-stream", signal });
  const parser = new EventStreamParser();
  const decoder = new TextDecoder();
  const reader = reply.body.getReader();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    for (const event of parser.feed(decoder.decode(value, { stream: true }))) {
      onEvent(Number(event.id), JSON.parse(event.data));
    }
  }
}

/** A container's logs (`follow`: as they come), onText(stream, text) for each piece. A TTY
 *  container's log is its raw output, any other's is Docker's multiplexed stream: the docker
 *  CLI tells them apart by the container's Tty too, since the answer's media type does not
 *  (wharfd, as dockerd before API 1.42, sends none for logs). */
export async function readLogs(node, container, { follow, tty }, onText, signal) {
  const path = `v1/nodes/${encodeURIComponent(node)}/containers/` +
    `${encodeURIComponent(container)}/logs`;
  const reply = await send("GET", path, {
    query: { stdout: "1", stderr: "1", tail: "200", follow: follow ? "1" : "0" }, signal });
  const framed = !tty;
  const frames = new FrameReader();
  const decoders = { stdout: new TextDecoder(), stderr: new TextDecoder() };
  const reader = reply.body.getReader();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    const pieces = framed ? frames.feed(value) : [{ stream: "stdout", bytes: value }];
    for (const { stream, bytes } of pieces) {
      const decoder = decoders[stream] ?? decoders.stdout;
      onText(stream, decoder.decode(bytes, { stream: true }));
    }
  }
}
