// The HTTP client for the local Consul agent: one node:http(s) keep-alive Agent, the token header
// on every request, blocking-aware timeouts, a body-size cap, and errors mapped to AgentError.
import { readdirSync, readFileSync, statSync } from "node:fs";
import type { Agent, ClientRequest, IncomingMessage, RequestOptions } from "node:http";
import type { Socket } from "node:net";
import { join } from "node:path";
import type { ConnectionOptions } from "node:tls";
import type { Logger } from "pino";
import { ConfigError, formatHost } from "../net/index.js";
import type { AgentConfig } from "./config.js";
import { AgentError, errorFromStatus, redact } from "./errors.js";

export interface AgentRequest {
  method: "GET" | "PUT" | "POST" | "DELETE";
  /** Path below the address's prefix, starting with /v1/…; already escaped. */
  path: string;
  /** Undefined values are skipped; arrays repeat the key. */
  query?: Record<string, string | string[] | undefined>;
  /** Sent as JSON with Content-Type application/json. */
  body?: unknown;
  signal?: AbortSignal;
  /** Bounded label for onRequest (e.g. "/v1/agent/service/:id"); derived from `path` if absent. */
  endpoint?: string;
}

export interface AgentResponse {
  status: number;
  /** Header names lowercased; repeated headers joined with ", ". */
  headers: Record<string, string>;
  /** Parsed JSON; undefined for an empty body (spec §1.8). */
  body: unknown;
  /** X-Consul-Index, if sent and numeric. */
  index: number | undefined;
  /** X-Consul-ContentHash, if sent. */
  contentHash: string | undefined;
}

export interface AgentClient {
  /** Sends one request. A non-2xx answer, a transport failure or a bad body throws AgentError. */
  request(req: AgentRequest): Promise<AgentResponse>;
  /** Replaces the token sent as X-Consul-Token from the next request on (SIGHUP re-read). */
  setToken(token: string): void;
  /** Epoch ms (deps.now) of the last HTTP answer of any status: "the agent was reachable". */
  lastContactMs(): number | undefined;
  /** Where the agent is, for logs: `http://h:p/prefix` or `unix:///path`. Never holds the token. */
  readonly origin: string;
  /** Ends blocking requests, lets other in-flight requests finish, refuses new ones. Idempotent. */
  close(): Promise<void>;
  /** Ends every request and connection now. */
  destroy(reason?: Error): Promise<void>;
  /** Observer of every watch's errors on this client (metrics), set from deps.onWatchError. */
  readonly onWatchError?: ((watch: string, err: AgentError, failures: number) => void) | undefined;
}

export interface AgentClientDeps {
  log: Logger;
  /** Called once per answered or failed request; `status` is 0 when the agent gave no HTTP answer. Not called for aborted requests. */
  onRequest?: (endpoint: string, status: number, seconds: number) => void;
  /** Called for each failed attempt of any watch on this client, whoever started the watch. */
  onWatchError?: (watch: string, err: AgentError, failures: number) => void;
  now?: () => number;
}

export interface AgentClientOptions {
  /** Timeout of a non-blocking request (headers, then between body chunks). Default 30 s. */
  requestTimeoutMs?: number;
  /** Larger bodies fail with bad_body. Default 8 MiB. */
  maxBodyBytes?: number;
}

const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;
const DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024;
/** spec §1.4: with no `wait`, agent-cached endpoints block up to 10 min. */
const SERVER_MAX_WAIT_MS = 10 * 60_000;
/** Slack on top of wait + wait/16 (the server's jitter) before a blocking request times out. */
const BLOCKING_MARGIN_MS = 15_000;
// undici's defaults, kept when the client moved to node:http to save memory per sidecar.
/** A new connection must be up (TCP, and TLS for https) within this, whatever the request's timeout. */
const CONNECT_TIMEOUT_MS = 10_000;
/** An idle pooled connection is closed after this, or 1 s before the server's Keep-Alive timeout if sooner. */
const IDLE_SOCKET_MS = 4_000;
/** TCP keep-alive probes start after this much silence (a blocking query is silent for minutes). */
const TCP_KEEPALIVE_MS = 60_000;

/**
 * Creates the agent client. Reads CA / client certificate files now; throws ConfigError when
 * one cannot be read. Never throws for an unreachable agent (requests do).
 */
export function createAgentClient(cfg: AgentConfig, deps: AgentClientDeps, opts: AgentClientOptions = {}): AgentClient {
  const now = deps.now ?? Date.now;
  const requestTimeoutMs = opts.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
  const maxBodyBytes = opts.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  const addr = cfg.address;
  const prefix = addr.scheme === "unix" ? "" : addr.pathPrefix;
  const origin =
    addr.scheme === "unix" ? `unix://${addr.socketPath}` : `${addr.scheme}://${formatHost(addr.host)}:${addr.port}${prefix}`;
  // node:http(s) are loaded by the first createAgentClient(), not at import: cli.ts parses flags
  // (and re-execs a proxy with its heap flags) before anything it does not need is loaded.
  const secure = addr.scheme === "https";
  const transport = secure ? process.getBuiltinModule("node:https") : process.getBuiltinModule("node:http");
  // One pool with no socket cap (each blocking query holds a connection for minutes); HTTP/1.1 only.
  const pool: Agent = new transport.Agent({
    keepAlive: true,
    keepAliveMsecs: TCP_KEEPALIVE_MS,
    timeout: IDLE_SOCKET_MS, // node applies it to idle pooled sockets; requests run their own timers
    ...(secure ? tlsOptions(cfg) : {}),
  });
  // spec §1.1: over a unix socket the Host header is `localhost`.
  const target =
    addr.scheme === "unix" ? { socketPath: addr.socketPath, host: "localhost" } : { host: addr.host, port: addr.port };
  const connected = new WeakSet<Socket>(); // sockets past connect (and the TLS handshake)
  const inFlight = new Set<Promise<unknown>>(); // what close() lets finish
  const closeCtl = new AbortController(); // ends blocking requests
  const destroyCtl = new AbortController(); // ends everything
  let token = cfg.token;
  let closed = false;
  let closing: Promise<void> | undefined;
  let lastContact: number | undefined;

  function report(endpoint: string, status: number, startMs: number): void {
    const seconds = (performance.now() - startMs) / 1000;
    deps.onRequest?.(endpoint, status, seconds);
    if (deps.log.isLevelEnabled("debug")) deps.log.debug({ endpoint, status, ms: Math.round(seconds * 1000) }, "agent request");
  }

  function request(req: AgentRequest): Promise<AgentResponse> {
    if (closed) return Promise.reject(new AgentError("aborted", `${req.method} ${req.path}: agent client closed`));
    const job = exchange(req);
    inFlight.add(job);
    return job.finally(() => inFlight.delete(job));
  }

  async function exchange(req: AgentRequest): Promise<AgentResponse> {
    const label = `${req.method} ${req.path}`; // messages never carry the query string
    const endpoint = req.endpoint ?? endpointOf(req.path);
    const waitMs = blockingWaitMs(req.query);
    const timeoutMs = waitMs === undefined ? requestTimeoutMs : waitMs + waitMs / 16 + BLOCKING_MARGIN_MS;
    const lifetime = waitMs === undefined ? destroyCtl.signal : closeCtl.signal;
    const signal = req.signal ? AbortSignal.any([req.signal, lifetime]) : lifetime;
    const headers: Record<string, string> = {};
    if (token !== "") headers["x-consul-token"] = token;
    let body: string | undefined;
    if (req.body !== undefined) {
      body = JSON.stringify(req.body);
      headers["content-type"] = "application/json";
      headers["content-length"] = String(Buffer.byteLength(body));
    }
    if (signal.aborted) throw transportError(label, signal.reason, signal, req.signal);
    const start = performance.now();
    using call = send(
      { ...target, method: req.method, path: prefix + req.path + queryString(req.query, cfg.datacenter), headers },
      body,
      timeoutMs,
      signal,
    );
    let res: IncomingMessage;
    try {
      res = await call.response;
    } catch (err) {
      if (!signal.aborted) report(endpoint, 0, start); // an abort says nothing about the agent
      throw transportError(label, err, signal, req.signal);
    }
    lastContact = now();
    const status = res.statusCode ?? 0;
    const flat = flattenHeaders(res.rawHeaders);
    let text: string;
    try {
      text = await readCapped(res, flat, { maxBytes: maxBodyBytes, label, onChunk: call.onChunk });
    } catch (err) {
      report(endpoint, status, start);
      throw err instanceof AgentError ? err : transportError(label, call.cause(err), signal, req.signal);
    }
    report(endpoint, status, start);
    if (status < 200 || status > 299) throw errorFromStatus(label, status, redact(text, token));
    let parsed: unknown;
    if (text !== "") {
      try {
        parsed = JSON.parse(text);
      } catch (err) {
        throw new AgentError("bad_body", `${label}: response is not JSON`, { status, cause: err });
      }
    }
    const indexText = flat["x-consul-index"];
    return {
      status,
      headers: flat,
      body: parsed,
      // The Go client ignores an unparseable index (spec §1.3); so do we.
      index: indexText !== undefined && /^\d+$/.test(indexText) ? Number(indexText) : undefined,
      contentHash: flat["x-consul-contenthash"] || undefined,
    };
  }

  /**
   * Sends one request on the pool with undici's timeouts: CONNECT_TIMEOUT_MS for a new connection,
   * then `timeoutMs` for the response head and again for each gap between body chunks. A timeout or
   * an abort destroys the request and its connection. Disposing of the call stops its timer and
   * removes its abort listener.
   */
  function send(options: RequestOptions, body: string | undefined, timeoutMs: number, signal: AbortSignal): Call {
    let req: ClientRequest | undefined;
    let res: IncomingMessage | undefined;
    let failure: Error | undefined;
    let timer: NodeJS.Timeout | undefined;
    let disposed = false;
    const fail = (err: Error) => {
      failure ??= err;
      (res ?? req)?.destroy(err); // an unfinished response takes its socket down with it
    };
    const arm = (ms: number, phase: string) => {
      clearTimeout(timer);
      if (disposed) return;
      timer = setTimeout(() => fail(timeoutError(phase, ms)), ms).unref();
    };
    const onAbort = () => fail(signal.reason instanceof Error ? signal.reason : new Error("aborted", { cause: signal.reason }));
    signal.addEventListener("abort", onAbort, { once: true });
    const response = new Promise<IncomingMessage>((resolve, reject) => {
      const r = transport.request({ ...options, agent: pool }); // a header node refuses throws: a rejection
      req = r;
      // Kept for the request's life: a socket error after the head (a body timeout, an abort) is
      // re-emitted on the request, and an 'error' without a listener would end the process.
      r.on("error", (err) => reject(failure ?? err));
      r.on("socket", (sock: Socket) => {
        if (connected.has(sock)) return arm(timeoutMs, "response headers"); // a pooled connection
        arm(CONNECT_TIMEOUT_MS, "connect");
        sock.once(secure ? "secureConnect" : "connect", () => {
          connected.add(sock);
          if (!res) arm(timeoutMs, "response headers");
        });
      });
      r.on("response", (head: IncomingMessage) => {
        res = head;
        head.on("error", () => undefined); // the reader sees body errors through its iterator
        arm(timeoutMs, "body data");
        resolve(head);
      });
      r.end(body);
    });
    return {
      response,
      onChunk: () => void timer?.refresh(),
      cause: (err) => failure ?? err,
      [Symbol.dispose]() {
        disposed = true;
        clearTimeout(timer);
        signal.removeEventListener("abort", onAbort);
      },
    };
  }

  return {
    request,
    origin,
    onWatchError: deps.onWatchError,
    setToken(t: string) {
      token = t;
    },
    lastContactMs: () => lastContact,
    close() {
      if (closing) return closing;
      closed = true;
      closeCtl.abort(new Error("agent client closed"));
      closing = Promise.allSettled(inFlight).then(() => destroyPool(pool));
      return closing;
    },
    async destroy(reason?: Error) {
      closed = true;
      closeCtl.abort(reason ?? new Error("agent client destroyed"));
      destroyCtl.abort(reason ?? new Error("agent client destroyed"));
      await destroyPool(pool);
    },
  };
}

/** One request in flight on the pool (see send()). */
interface Call extends Disposable {
  /** The response head; rejects with the transport error (refused, reset, TLS, a timeout, the abort reason). */
  response: Promise<IncomingMessage>;
  /** Restarts the body timer; called for each body chunk. */
  onChunk(): void;
  /** The error this side ended the call with (a timeout, an abort), else `err`. */
  cause(err: unknown): unknown;
}

function timeoutError(phase: string, ms: number): Error {
  return Object.assign(new Error(`${phase} timed out after ${ms} ms`), { code: "ETIMEDOUT" });
}

/** Destroys every socket of the pool, in use or idle, and resolves once all of them have emitted 'close'. */
async function destroyPool(pool: Agent): Promise<void> {
  // The pool drops a socket on its 'close' event, so none of these has emitted it yet (`closed`
  // turns true at destroy(), before the event).
  const sockets = [...Object.values(pool.sockets), ...Object.values(pool.freeSockets)].flatMap((list) => list ?? []);
  const allClosed = Promise.all(sockets.map((s) => new Promise((resolve) => s.once("close", resolve))));
  pool.destroy();
  await allClosed;
}

function tlsOptions(cfg: AgentConfig): ConnectionOptions {
  const t = cfg.tls;
  const out: ConnectionOptions = { rejectUnauthorized: t.verify };
  const ca: string[] = [];
  if (t.caFile) ca.push(readConfigFile(t.caFile, "ca-file"));
  if (t.caPath) ca.push(...readCaPath(t.caPath));
  if (ca.length > 0) out.ca = ca; // like Go: a configured CA replaces the system roots
  if (t.certFile && t.keyFile) {
    out.cert = readConfigFile(t.certFile, "client-cert");
    out.key = readConfigFile(t.keyFile, "client-key");
  }
  if (t.serverName) out.servername = t.serverName;
  return out;
}

function readConfigFile(path: string, field: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch (err) {
    throw new ConfigError(field, `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? "error"}`);
  }
}

/** Every PEM file in the directory, as Go's rootcerts.LoadCAPath does. */
function readCaPath(dir: string): string[] {
  let names: string[];
  try {
    names = readdirSync(dir).sort();
  } catch (err) {
    throw new ConfigError("ca-path", `cannot read directory ${dir}: ${(err as NodeJS.ErrnoException).code ?? "error"}`);
  }
  const pems: string[] = [];
  for (const name of names) {
    const file = join(dir, name);
    if (!statSync(file, { throwIfNoEntry: false })?.isFile()) continue;
    const text = readConfigFile(file, "ca-path");
    if (text.includes("-----BEGIN CERTIFICATE-----")) pems.push(text);
  }
  if (pems.length === 0) throw new ConfigError("ca-path", `no PEM certificates in ${dir}`);
  return pems;
}

function queryString(query: AgentRequest["query"], datacenter: string | undefined): string {
  const params = new URLSearchParams();
  if (query) {
    for (const [k, v] of Object.entries(query)) {
      if (v === undefined) continue;
      if (Array.isArray(v)) for (const item of v) params.append(k, item);
      else params.append(k, v);
    }
  }
  // Like the Go client: the configured datacenter goes on every request unless one is given.
  if (datacenter && !params.has("dc")) params.set("dc", datacenter);
  const qs = params.toString();
  return qs === "" ? "" : `?${qs}`;
}

/** The wait of a blocking request (one carrying `index` > 0 or a `hash`), else undefined. */
function blockingWaitMs(query: AgentRequest["query"]): number | undefined {
  if (!query) return undefined;
  const index = query.index;
  const hash = query.hash;
  const blocking = (typeof index === "string" && index !== "" && index !== "0") || (typeof hash === "string" && hash !== "");
  if (!blocking) return undefined;
  const wait = typeof query.wait === "string" ? parseGoDurationMs(query.wait) : undefined;
  return wait === undefined ? SERVER_MAX_WAIT_MS : Math.min(wait, SERVER_MAX_WAIT_MS);
}

function parseGoDurationMs(text: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(text);
  if (!m) return undefined;
  const unit = m[2] === "ms" ? 1 : m[2] === "s" ? 1000 : m[2] === "m" ? 60_000 : 3_600_000;
  return Number(m[1]) * unit;
}

async function readCapped(
  res: IncomingMessage,
  headers: Record<string, string>,
  opts: { maxBytes: number; label: string; onChunk: () => void },
): Promise<string> {
  const { maxBytes, label } = opts;
  const declared = Number(headers["content-length"]);
  if (declared > maxBytes) {
    discard(res);
    throw new AgentError("bad_body", `${label}: body of ${declared} bytes exceeds the ${maxBytes}-byte limit`, {
      status: res.statusCode,
    });
  }
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of res as AsyncIterable<Buffer>) {
    opts.onChunk();
    total += chunk.length;
    if (total > maxBytes) {
      discard(res);
      throw new AgentError("bad_body", `${label}: body exceeds the ${maxBytes}-byte limit`, { status: res.statusCode });
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, total).toString("utf8");
}

/** Drops a body we will not read: destroying an unfinished response closes its connection rather than draining it. */
function discard(res: IncomingMessage): void {
  res.destroy();
}

function transportError(label: string, err: unknown, signal: AbortSignal, callerSignal: AbortSignal | undefined): AgentError {
  if (signal.aborted) {
    const why = callerSignal?.aborted ? "aborted" : "agent client closed";
    return new AgentError("aborted", `${label}: ${why}`, { cause: err });
  }
  const e = err as { code?: string; message?: string };
  const detail = [e.code, e.message].filter(Boolean).join(" ");
  return new AgentError("unreachable", `${label}: agent unreachable: ${detail || String(err)}`, { cause: err });
}

/** Header names lowercased, repeated headers joined with ", " (node's `headers` would drop some repeats). */
function flattenHeaders(raw: string[]): Record<string, string> {
  const out = new Map<string, string>();
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    const prev = out.get(name);
    out.set(name, prev === undefined ? raw[i + 1]! : `${prev}, ${raw[i + 1]!}`);
  }
  return Object.fromEntries(out);
}

/** Templates for onRequest labels, longest prefix first, so metrics stay bounded. */
const ENDPOINT_TEMPLATES: ReadonlyArray<readonly [prefix: string, label: string]> = [
  ["/v1/agent/connect/ca/leaf/", "/v1/agent/connect/ca/leaf/:service"],
  ["/v1/agent/service/deregister/", "/v1/agent/service/deregister/:id"],
  ["/v1/agent/service/register", "/v1/agent/service/register"],
  ["/v1/agent/service/", "/v1/agent/service/:id"],
  ["/v1/agent/check/update/", "/v1/agent/check/update/:id"],
  ["/v1/agent/check/pass/", "/v1/agent/check/pass/:id"],
  ["/v1/health/connect/", "/v1/health/connect/:service"],
  ["/v1/health/service/", "/v1/health/service/:service"],
  ["/v1/catalog/service/", "/v1/catalog/service/:service"],
  ["/v1/query/", "/v1/query/:name/execute"],
];
const ENDPOINT_EXACT = new Set([
  "/v1/agent/connect/ca/roots",
  "/v1/agent/connect/authorize",
  "/v1/agent/services",
  "/v1/agent/checks",
  "/v1/agent/self",
  "/v1/connect/intentions/match",
  "/v1/connect/intentions/exact",
  "/v1/connect/intentions",
  "/v1/acl/token/self",
  "/v1/status/leader",
]);

function endpointOf(path: string): string {
  if (ENDPOINT_EXACT.has(path)) return path;
  for (const [prefix, label] of ENDPOINT_TEMPLATES) if (path.startsWith(prefix)) return label;
  return "other";
}
