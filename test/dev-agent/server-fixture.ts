// A dev agent serving only the ACL, CA and self routes, on the real HTTP front (router, decoding,
// token precedence, 404/405/OPTIONS), so these tests do not depend on the catalog modules.
import { execFile } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { pino } from "pino";
import { aclRoutes, createAclStore, type AclStore } from "../../src/dev-agent/acl.js";
import { caRoutes, createCa, type DevCa } from "../../src/dev-agent/ca.js";
import { ChangeFeed } from "../../src/dev-agent/change-feed.js";
import type { DevAgentConfig, DevAgentContext } from "../../src/dev-agent/context.js";
import { createRequestHandler, listen } from "../../src/dev-agent/http-server.js";
import { selfRoutes } from "../../src/dev-agent/self.js";

export interface MiniAgentOptions {
  aclsEnabled?: boolean;
  aclDefaultPolicy?: "allow" | "deny";
  leafCertTtlMs?: number;
  leafReissueWindowMs?: number;
  nodeName?: string;
}

export interface MiniAgent {
  url: string;
  managementToken: string;
  ca: DevCa;
  acl: AclStore;
  ctx: DevAgentContext;
  [Symbol.asyncDispose](): Promise<void>;
}

/** Starts the ACL + CA + self routes on 127.0.0.1:0. Dispose with `await using`. */
export async function startMiniAgent(opts: MiniAgentOptions = {}): Promise<MiniAgent> {
  const stop = new AbortController();
  const cfg: DevAgentConfig = {
    datacenter: "dc1",
    nodeName: opts.nodeName ?? "node1",
    nodeId: randomUUID(),
    nodeAddress: "127.0.0.1",
    aclsEnabled: opts.aclsEnabled ?? false,
    aclDefaultPolicy: opts.aclDefaultPolicy ?? "allow",
    initialManagementToken: randomUUID(),
    leafCertTtlMs: opts.leafCertTtlMs ?? 72 * 3_600_000,
    sidecarMinPort: 21000,
    sidecarMaxPort: 21255,
    httpAddrs: [],
    httpsAddrs: [],
    httpsVerifyIncoming: false,
  };
  const log = pino({ level: "silent" });
  const ctx: DevAgentContext = { cfg, feed: new ChangeFeed(), log, stopSignal: stop.signal };
  const acl = createAclStore(ctx);
  const ca = await createCa(ctx, opts.leafReissueWindowMs !== undefined ? { leafReissueWindowMs: opts.leafReissueWindowMs } : {});
  const handler = createRequestHandler(
    {
      routes: [...aclRoutes(acl, ctx), ...caRoutes(ca, ctx), ...selfRoutes(ctx)],
      feed: ctx.feed,
      log,
      resolveAcl: (t) => acl.resolve(t),
      defaultAclPolicy: () => cfg.aclDefaultPolicy,
    },
    stop.signal,
  );
  const bound = await listen({ addr: "127.0.0.1:0" }, handler);
  cfg.httpAddrs.push(`tcp://${bound.address}`);
  return {
    url: `http://${bound.address}`,
    managementToken: acl.managementToken,
    ca,
    acl,
    ctx,
    async [Symbol.asyncDispose]() {
      stop.abort();
      ca.close();
      await bound.close();
    },
  };
}

export interface Res {
  status: number;
  headers: Headers;
  text: string;
  json: any; // eslint-disable-line @typescript-eslint/no-explicit-any
}

/** One HTTP request; the body is sent as JSON when it is not a string. */
export async function call(
  url: string,
  path: string,
  init: { method?: string; token?: string; headers?: Record<string, string>; body?: unknown; signal?: AbortSignal } = {},
): Promise<Res> {
  const headers: Record<string, string> = { ...init.headers };
  if (init.token !== undefined) headers["X-Consul-Token"] = init.token;
  const res = await fetch(url + path, {
    method: init.method ?? "GET",
    headers,
    ...(init.body !== undefined ? { body: typeof init.body === "string" ? init.body : JSON.stringify(init.body) } : {}),
    ...(init.signal ? { signal: init.signal } : {}),
  });
  const text = await res.text();
  let json: unknown;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, text, json };
}

const execFileAsync = promisify(execFile);

/** Runs openssl with the given files (name → content) in a temp dir that is removed afterwards. */
export async function openssl(args: string[], files: Record<string, string>): Promise<{ stdout: string; code: number; stderr: string }> {
  const dir = await mkdtemp(join(tmpdir(), "dev-agent-ca-"));
  try {
    for (const [name, content] of Object.entries(files)) await writeFile(join(dir, name), content);
    try {
      const { stdout, stderr } = await execFileAsync("openssl", args, { cwd: dir });
      return { stdout, stderr, code: 0 };
    } catch (err) {
      const e = err as { stdout?: string; stderr?: string; code?: number };
      return { stdout: e.stdout ?? "", stderr: e.stderr ?? "", code: typeof e.code === "number" ? e.code : 1 };
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
