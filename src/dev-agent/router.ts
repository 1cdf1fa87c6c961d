import type { IncomingHttpHeaders } from "node:http";
import type { ChangeFeed } from "./change-feed.js";
import { HttpError } from "./http-error.js";

/** What a resolved ACL token may do (spec §11.4). `require*` throws a 403 with Consul's text. */
export interface AclAuthz {
  readonly accessorId: string;
  /** True for the management token (global-management policy). */
  readonly isManagement: boolean;
  allowed(resource: AclResource, level: AclLevel, name?: string): boolean;
  require(resource: AclResource, level: AclLevel, name?: string): void;
}
export type AclResource = "service" | "node" | "agent" | "intentions" | "acl" | "operator" | "query" | "key" | "session" | "mesh";
export type AclLevel = "read" | "write";

/** One HTTP request as the handlers see it. */
export interface AgentRequest {
  method: string;
  /** The URL path, decoded, without the query string. */
  path: string;
  /** What follows the matched route prefix (e.g. the `:id` of `/v1/agent/service/:id`). */
  rest: string;
  query: URLSearchParams;
  headers: IncomingHttpHeaders;
  /** The parsed JSON body (undefined when empty); a syntax error became a 400 before the handler. */
  body: unknown;
  rawBody: string;
  /** The request's token by Consul's precedence (spec §1.2); "" when none. */
  token: string;
  /** The token's permissions; resolving an unknown token throws 403 `ACL not found`. */
  acl(): AclAuthz;
  /** Aborts when the client goes away or the agent stops: blocked reads end. */
  signal: AbortSignal;
  feed: ChangeFeed;
}

export interface Reply {
  status?: number;
  /** Sent as JSON. `undefined` with no `text` means an empty 200 body (spec §1.8). */
  json?: unknown;
  text?: string;
  headers?: Record<string, string>;
  /** Sets X-Consul-Index (never 0). */
  index?: number;
  /** Adds X-Consul-KnownLeader / X-Consul-LastContact (RPC-backed reads, spec §1.3). */
  meta?: boolean;
}

export type Handler = (req: AgentRequest) => Reply | Promise<Reply>;

/** A Go-mux style route: `path` ending in "/" matches as a prefix; the longest pattern wins (spec §1.9). */
export interface Route {
  path: string;
  methods: readonly string[];
  handler: Handler;
}

export interface RouteMatch {
  route: Route;
  rest: string;
}

/** Builds the matcher for a route table. */
export function createRouter(routes: readonly Route[]): (path: string) => RouteMatch | undefined {
  const exact = new Map<string, Route>();
  const prefixes: Route[] = [];
  for (const r of routes) {
    if (r.path.endsWith("/")) prefixes.push(r);
    else exact.set(r.path, r);
  }
  prefixes.sort((a, b) => b.path.length - a.path.length);
  return (path) => {
    const e = exact.get(path);
    if (e) return { route: e, rest: "" };
    for (const r of prefixes) {
      if (path.startsWith(r.path)) return { route: r, rest: path.slice(r.path.length) };
    }
    return undefined;
  };
}

/** 405 as Consul sends it: `method X not allowed` with `Allow: OPTIONS,<methods>`. */
export function methodNotAllowed(method: string, methods: readonly string[]): HttpError {
  return new HttpError(405, `method ${method} not allowed`, { Allow: ["OPTIONS", ...methods].join(",") });
}
