import http from "node:http";
import https from "node:https";
import type { AddressInfo } from "node:net";
import { unlink } from "node:fs/promises";
import type { Logger } from "pino";
import type { ChangeFeed } from "./change-feed.js";
import { parseJsonBody } from "./decode.js";
import { HttpError } from "./http-error.js";
import { createRouter, methodNotAllowed, type AclAuthz, type AgentRequest, type Reply, type Route } from "./router.js";

const MAX_BODY_BYTES = 8 << 20;

export interface HttpFrontOptions {
  routes: readonly Route[];
  feed: ChangeFeed;
  log: Logger;
  /** Resolves a request token to its permissions (throws 403 for unknown tokens). */
  resolveAcl(token: string): AclAuthz;
  /** Value of X-Consul-Default-ACL-Policy, sent on every response (spec §11.5). */
  defaultAclPolicy(): string;
}

/** The request handler shared by the HTTP, unix-socket and HTTPS listeners. */
export function createRequestHandler(opts: HttpFrontOptions, stopSignal: AbortSignal): http.RequestListener {
  const match = createRouter(opts.routes);
  return (req, res) => {
    const ac = new AbortController();
    const onStop = () => ac.abort();
    stopSignal.addEventListener("abort", onStop, { once: true });
    res.on("close", () => {
      stopSignal.removeEventListener("abort", onStop);
      ac.abort();
    });
    void serve(req, res, ac.signal).catch((err: unknown) => {
      opts.log.error({ err }, "dev agent handler failed");
      if (!res.headersSent) writeText(res, 500, String((err as Error)?.message ?? err));
      else res.destroy();
    });
  };

  async function serve(req: http.IncomingMessage, res: http.ServerResponse, signal: AbortSignal): Promise<void> {
    res.setHeader("X-Consul-Default-ACL-Policy", opts.defaultAclPolicy());
    const url = new URL(req.url ?? "/", "http://agent");
    const method = req.method ?? "GET";
    let reply: Reply;
    try {
      const raw = await readBody(req);
      reply = await dispatch(method, url, req, raw, signal);
    } catch (err) {
      if (err instanceof HttpError) {
        for (const [k, v] of Object.entries(err.headers)) res.setHeader(k, v);
        return writeText(res, err.status, err.message);
      }
      opts.log.warn({ err, path: url.pathname }, "dev agent returned 500");
      return writeText(res, 500, (err as Error).message);
    }
    if (res.destroyed) return;
    for (const [k, v] of Object.entries(reply.headers ?? {})) res.setHeader(k, v);
    if (reply.index !== undefined) res.setHeader("X-Consul-Index", String(Math.max(1, reply.index)));
    if (reply.meta) {
      res.setHeader("X-Consul-KnownLeader", "true");
      res.setHeader("X-Consul-LastContact", "0");
    }
    const status = reply.status ?? 200;
    if (reply.text !== undefined) return writeText(res, status, reply.text);
    if (reply.json === undefined) {
      res.writeHead(status);
      return void res.end();
    }
    const pretty = url.searchParams.has("pretty");
    const body = pretty ? `${JSON.stringify(reply.json, null, 4)}\n` : JSON.stringify(reply.json);
    res.writeHead(status, { "Content-Type": "application/json" });
    res.end(body);
  }

  async function dispatch(
    method: string,
    url: URL,
    req: http.IncomingMessage,
    raw: string,
    signal: AbortSignal,
  ): Promise<Reply> {
    const path = decodeURIComponent(url.pathname);
    const m = match(path);
    if (!m) {
      throw new HttpError(
        404,
        path.startsWith("/v1/")
          ? "Invalid URL path: not a recognized HTTP API endpoint\n"
          : "Invalid URL path: if attempting to use the HTTP API, ensure the path starts with '/v1/'\n",
      );
    }
    if (method === "OPTIONS") return { headers: { Allow: ["OPTIONS", ...m.route.methods].join(",") } };
    if (!m.route.methods.includes(method)) throw methodNotAllowed(method, m.route.methods);
    checkCommonParams(url.searchParams, req);
    const token = requestToken(url.searchParams, req);
    let acl: AclAuthz | undefined;
    const request: AgentRequest = {
      method,
      path,
      rest: m.rest,
      query: url.searchParams,
      headers: req.headers,
      body: undefined,
      rawBody: raw,
      token,
      acl: () => (acl ??= opts.resolveAcl(token)),
      signal,
      feed: opts.feed,
    };
    if (method === "PUT" || method === "POST") request.body = parseJsonBody(raw, bodyPrefix(path));
    return m.route.handler(request);
  }
}

/** Decode-error prefix by endpoint family (spec §1.6, §11). */
function bodyPrefix(path: string): string {
  if (path.startsWith("/v1/acl/token")) return "Token decoding failed";
  if (path.startsWith("/v1/acl/policy")) return "Policy decoding failed";
  return "Request decode failed";
}

/** Spec §1.2: `?token=` beats `X-Consul-Token`, which beats `Authorization: Bearer`. */
function requestToken(q: URLSearchParams, req: http.IncomingMessage): string {
  const fromQuery = q.get("token");
  if (fromQuery) return fromQuery;
  const header = req.headers["x-consul-token"];
  if (typeof header === "string" && header !== "") return header;
  const auth = req.headers.authorization;
  if (typeof auth === "string") {
    const [scheme, value] = auth.trim().split(/\s+/);
    if (scheme?.toLowerCase() === "bearer" && value) return value;
  }
  return "";
}

/** Spec §1.5: CE refuses namespaces; stale and consistent conflict. */
function checkCommonParams(q: URLSearchParams, req: http.IncomingMessage): void {
  const ns = q.get("ns");
  if (ns) throw new HttpError(400, 'Invalid query parameter: "ns" - Namespaces are a Consul Enterprise feature');
  const nsHeader = req.headers["x-consul-namespace"];
  if (typeof nsHeader === "string" && nsHeader !== "") {
    throw new HttpError(400, 'Invalid header: "X-Consul-Namespace" - Namespaces are a Consul Enterprise feature');
  }
  const partition = q.get("partition") ?? q.get("ap");
  if (partition && partition !== "default") {
    throw new HttpError(400, 'Invalid query parameter: "partition" - Partitions are a Consul Enterprise feature');
  }
  if (q.has("stale") && q.has("consistent")) {
    throw new HttpError(400, "Cannot specify ?stale with ?consistent, conflicting semantics.");
  }
}

function readBody(req: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY_BYTES) {
        reject(new HttpError(413, "Request body too large"));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });
}

function writeText(res: http.ServerResponse, status: number, text: string): void {
  if (res.destroyed) return;
  res.writeHead(status, { "Content-Type": "text/plain; charset=utf-8" });
  res.end(text);
}

export interface ListenSpec {
  /** "host:port" or "unix:///path". */
  addr: string;
  tls?: https.ServerOptions;
}

export interface BoundListener {
  /** "127.0.0.1:8500" or "unix:///path/sock". */
  address: string;
  close(): Promise<void>;
}

/** Binds one listener (TCP, unix socket, or HTTPS) to the shared handler. */
export async function listen(spec: ListenSpec, handler: http.RequestListener): Promise<BoundListener> {
  const server = spec.tls ? https.createServer(spec.tls, handler) : http.createServer(handler);
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 0;
  server.requestTimeout = 0;
  let address: string;
  if (spec.addr.startsWith("unix://")) {
    const socketPath = spec.addr.slice("unix://".length);
    await unlink(socketPath).catch(() => undefined);
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(socketPath, () => resolve());
    });
    address = spec.addr;
  } else {
    const i = spec.addr.lastIndexOf(":");
    const host = spec.addr.slice(0, i).replace(/^\[|\]$/g, "") || "127.0.0.1";
    const port = Number(spec.addr.slice(i + 1));
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, host, () => resolve());
    });
    const a = server.address() as AddressInfo;
    address = a.family === "IPv6" ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`;
  }
  return {
    address,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
