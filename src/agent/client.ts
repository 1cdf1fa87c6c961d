// The HTTP client for the local Consul agent: one undici Pool (keep-alive), the token header on
// every request, blocking-aware timeouts, a body-size cap, and errors mapped to AgentError.
import { readdirSync, readFileSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import type { Dispatcher } from "undici";
import type { Logger } from "pino";
import { ConfigError } from "../net/index.js";
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

// undici is loaded by the first createAgentClient(), not at import: cli.ts parses flags (and
// re-execs a proxy with its heap flags) before anything heavy is loaded.
const require = createRequire(import.meta.url);

const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;
const DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024;
/** spec §1.4: with no `wait`, agent-cached endpoints block up to 10 min. */
const SERVER_MAX_WAIT_MS = 10 * 60_000;
/** Slack on top of wait + wait/16 (the server's jitter) before a blocking request times out. */
const BLOCKING_MARGIN_MS = 15_000;

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
  const { Pool } = require("undici") as typeof import("undici");
  const pool = new Pool(
    addr.scheme === "unix" ? "http://localhost" : `${addr.scheme}://${formatHost(addr.host)}:${addr.port}`,
    {
      // spec §1.1: over a unix socket the Host header is `localhost`.
      connect: addr.scheme === "unix" ? { socketPath: addr.socketPath } : addr.scheme === "https" ? tlsOptions(cfg) : {},
      allowH2: false,
      headersTimeout: requestTimeoutMs,
      bodyTimeout: requestTimeoutMs,
    },
  );
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

  async function request(req: AgentRequest): Promise<AgentResponse> {
    const label = `${req.method} ${req.path}`; // messages never carry the query string
    const endpoint = req.endpoint ?? endpointOf(req.path);
    if (closed) throw new AgentError("aborted", `${label}: agent client closed`);
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
    }
    const start = performance.now();
    let res: Dispatcher.ResponseData;
    try {
      res = await pool.request({
        method: req.method,
        path: prefix + req.path + queryString(req.query, cfg.datacenter),
        headers,
        body,
        signal,
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
      });
    } catch (err) {
      if (!signal.aborted) report(endpoint, 0, start); // an abort says nothing about the agent
      throw transportError(label, err, signal, req.signal);
    }
    lastContact = now();
    let text: string;
    try {
      text = await readCapped(res, maxBodyBytes, label);
    } catch (err) {
      report(endpoint, res.statusCode, start);
      throw err instanceof AgentError ? err : transportError(label, err, signal, req.signal);
    }
    report(endpoint, res.statusCode, start);
    if (res.statusCode < 200 || res.statusCode > 299) throw errorFromStatus(label, res.statusCode, redact(text, token));
    let parsed: unknown;
    if (text !== "") {
      try {
        parsed = JSON.parse(text);
      } catch (err) {
        throw new AgentError("bad_body", `${label}: response is not JSON`, { status: res.statusCode, cause: err });
      }
    }
    const flat = flattenHeaders(res.headers);
    const indexText = flat["x-consul-index"];
    return {
      status: res.statusCode,
      headers: flat,
      body: parsed,
      // The Go client ignores an unparseable index (spec §1.3); so do we.
      index: indexText !== undefined && /^\d+$/.test(indexText) ? Number(indexText) : undefined,
      contentHash: flat["x-consul-contenthash"] || undefined,
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
      closing = pool.close().catch(() => undefined);
      return closing;
    },
    async destroy(reason?: Error) {
      closed = true;
      closeCtl.abort(reason ?? new Error("agent client destroyed"));
      destroyCtl.abort(reason ?? new Error("agent client destroyed"));
      await pool.destroy(reason ?? null).catch(() => undefined);
    },
  };
}

function tlsOptions(cfg: AgentConfig): Record<string, unknown> {
  const t = cfg.tls;
  const out: Record<string, unknown> = { rejectUnauthorized: t.verify };
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

function formatHost(host: string): string {
  return host.includes(":") ? `[${host}]` : host;
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

async function readCapped(res: Dispatcher.ResponseData, maxBytes: number, label: string): Promise<string> {
  const declared = Number(res.headers["content-length"]);
  if (declared > maxBytes) {
    discard(res);
    throw new AgentError("bad_body", `${label}: body of ${declared} bytes exceeds the ${maxBytes}-byte limit`, {
      status: res.statusCode,
    });
  }
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of res.body as AsyncIterable<Buffer>) {
    total += chunk.length;
    if (total > maxBytes) {
      discard(res);
      throw new AgentError("bad_body", `${label}: body exceeds the ${maxBytes}-byte limit`, { status: res.statusCode });
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, total).toString("utf8");
}

/** Drops a body we will not read; the connection is closed rather than drained. */
function discard(res: Dispatcher.ResponseData): void {
  res.body.on("error", () => undefined); // destroy() emits an AbortError nobody else listens for
  res.body.destroy();
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

function flattenHeaders(h: Dispatcher.ResponseData["headers"]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(h)) {
    if (v === undefined) continue;
    out[k.toLowerCase()] = Array.isArray(v) ? v.join(", ") : v;
  }
  return out;
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
