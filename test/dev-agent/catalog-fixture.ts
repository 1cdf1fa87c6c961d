// Helpers for the catalog, health, intentions, authorize and query tests: a full in-process dev
// agent (startDevAgent), token creation, blocking waits and a TCP listener to point checks at.
import net from "node:net";
import type { TestContext } from "node:test";
import { startDevAgent, type DevAgent, type DevAgentOptions } from "../../src/dev-agent/index.js";
import { call, type Res } from "./server-fixture.js";

export { call, type Res };

export interface TestAgent extends DevAgent {
  /** One request against this agent (see server-fixture `call`). */
  req(path: string, init?: Parameters<typeof call>[2]): Promise<Res>;
}

/** Starts a dev agent on 127.0.0.1:0 that stops when the test ends. */
export async function startAgent(t: TestContext, opts: DevAgentOptions = {}): Promise<TestAgent> {
  const agent = await startDevAgent({ nodeName: "node1", ...opts });
  t.after(() => agent.stop());
  return Object.assign(agent, { req: (path: string, init?: Parameters<typeof call>[2]) => call(agent.httpUrl, path, init) });
}

/** Registers a service; asserts the 200 with an empty body. */
export async function register(agent: TestAgent, body: unknown, opts: { token?: string; query?: string } = {}): Promise<void> {
  const res = await agent.req(`/v1/agent/service/register${opts.query ?? ""}`, {
    method: "PUT", body, ...(opts.token !== undefined ? { token: opts.token } : {}),
  });
  if (res.status !== 200 || res.text !== "") throw new Error(`register failed: ${res.status} ${res.text}`);
}

/**
 * Repeats a blocking GET of `path` (following X-Consul-Index) until `done(res)` holds. No sleeps:
 * each round waits for the next change on the agent. Gives up after `rounds` changes.
 */
export async function waitFor(agent: TestAgent, path: string, done: (res: Res) => boolean, opts: { token?: string; rounds?: number } = {}): Promise<Res> {
  let index = 0;
  for (let round = 0; round < (opts.rounds ?? 200); round++) {
    const sep = path.includes("?") ? "&" : "?";
    const res = await agent.req(`${path}${sep}index=${index}&wait=10s`, opts.token !== undefined ? { token: opts.token } : {});
    if (done(res)) return res;
    const next = Number(res.headers.get("x-consul-index") ?? "0");
    index = next < index ? 0 : next;
  }
  throw new Error(`condition on ${path} never held`);
}

/** The status of `checkId` in a health entry list (or undefined). */
export function checkStatus(res: Res, checkId: string): string | undefined {
  for (const e of (res.json ?? []) as Array<{ Checks: Array<{ CheckID: string; Status: string }> }>) {
    const c = e.Checks.find((x) => x.CheckID === checkId);
    if (c) return c.Status;
  }
  return undefined;
}

/** Creates an ACL policy and a token holding it (plus any service identities); returns the SecretID. */
export async function createToken(agent: TestAgent, opts: { rules?: string; serviceIdentities?: string[] }): Promise<string> {
  const policies: Array<{ ID: string }> = [];
  if (opts.rules) {
    const p = await agent.req("/v1/acl/policy", {
      method: "PUT", token: agent.managementToken,
      body: { Name: `p-${Math.random().toString(36).slice(2)}`, Rules: opts.rules },
    });
    if (p.status !== 200) throw new Error(`policy: ${p.status} ${p.text}`);
    policies.push({ ID: p.json.ID });
  }
  const tok = await agent.req("/v1/acl/token", {
    method: "PUT", token: agent.managementToken,
    body: { Policies: policies, ServiceIdentities: (opts.serviceIdentities ?? []).map((n) => ({ ServiceName: n })) },
  });
  if (tok.status !== 200) throw new Error(`token: ${tok.status} ${tok.text}`);
  return tok.json.SecretID as string;
}

/** A TCP listener on 127.0.0.1:0 that accepts and closes; `close()` frees the port. */
export async function tcpListener(t: TestContext, port = 0): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
    s.on("error", () => undefined);
    s.end();
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () => resolve());
  });
  let closed: Promise<void> | undefined;
  const close = () =>
    (closed ??= new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    }));
  t.after(close);
  return { port: (server.address() as net.AddressInfo).port, close };
}

/** Writes a `service-defaults` entry with `Protocol` (L7 intentions need an HTTP-like protocol); asserts `true`. */
export async function setProtocol(agent: TestAgent, service: string, protocol: string, token?: string): Promise<void> {
  const res = await agent.req("/v1/config", {
    method: "PUT", body: { Kind: "service-defaults", Name: service, Protocol: protocol }, ...(token !== undefined ? { token } : {}),
  });
  if (res.status !== 200 || res.json !== true) throw new Error(`service-defaults ${service}: ${res.status} ${res.text}`);
}
