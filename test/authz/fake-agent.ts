// A small real HTTP server standing in for the Consul agent, with just what the authorizer
// uses: `POST /v1/agent/connect/authorize` (spec §4) and a blocking
// `GET /v1/connect/intentions/match?by=destination` (spec §1.4, §5.3). It counts requests and
// emits an event for each, so tests wait for what happened instead of sleeping.
import { EventEmitter, once } from "node:events";
import http from "node:http";
import type { AddressInfo } from "node:net";
import type { AgentConfig } from "../../src/agent/index.js";

export type Action = "allow" | "deny";

export interface FakeAgentOptions {
  /** The authorize answer when no intention matches (spec §4 step 3). Default "deny". */
  defaultAction?: Action;
  /** Intentions `source → target` present from the start. */
  intentions?: Record<string, Action>;
}

export interface FakeAgent {
  port: number;
  /** A client configuration pointing at this server. */
  config: AgentConfig;
  /** authorize calls received so far. */
  readonly authorizeCalls: number;
  /** Every request received so far (authorize + match). */
  readonly totalRequests: number;
  /** How authorize answers: normally, 403 as for a token without service:write, or 500. */
  authorizeMode: "ok" | "403" | "500";
  /** How intentions/check answers: with the default action (no intention names its probe source), or 500. */
  checkMode: "ok" | "500";
  /** intentions/check calls received so far. */
  readonly checkCalls: number;
  /** Upserts the intention `source → <target>` (with L7 permissions, as the match answer carries them) and wakes blocked match requests. */
  setIntention(source: string, action: Action, permissions?: unknown[]): void;
  /** Match requests held open now. */
  readonly parkedCount: number;
  /** Raises the index without changing any intention (as a change to another service does). */
  bumpIndex(): void;
  /** Resolves once a match request is parked at the current index (the watch is caught up). */
  watchCaughtUp(): Promise<void>;
  /** Resolves once `pred()` holds; re-evaluated on every request event. */
  until(pred: () => boolean): Promise<void>;
  /** Takes the agent down: closes the listener and every connection (blocked watches included). */
  stop(): Promise<void>;
}

interface Parked {
  res: http.ServerResponse;
  name: string;
  timer: NodeJS.Timeout;
}

/** Starts the server on 127.0.0.1:0; it stops when the test ends. */
export async function startFakeAgent(t: { after(fn: () => Promise<void> | void): void }, opts: FakeAgentOptions = {}): Promise<FakeAgent> {
  const events = new EventEmitter();
  const intentions = new Map<string, { action: Action; modifyIndex: number; permissions?: unknown[] }>();
  let index = 5;
  for (const [source, action] of Object.entries(opts.intentions ?? {})) intentions.set(source, { action, modifyIndex: index });
  let authorizeCalls = 0;
  let checkCalls = 0;
  let totalRequests = 0;
  const parked = new Set<Parked>();

  function matchBody(name: string): unknown {
    const list = [...intentions].map(([source, i]) => ({
      SourceNS: "default",
      SourceName: source,
      DestinationNS: "default",
      DestinationName: name,
      SourceType: "consul",
      Action: i.action,
      ...(i.permissions !== undefined ? { Permissions: i.permissions } : {}),
      Precedence: source === "*" ? 8 : 9,
      CreateIndex: i.modifyIndex,
      ModifyIndex: i.modifyIndex,
    }));
    list.sort((a, b) => b.Precedence - a.Precedence || a.SourceName.localeCompare(b.SourceName));
    return { [name]: list };
  }

  function answerMatch(res: http.ServerResponse, name: string): void {
    res.writeHead(200, { "content-type": "application/json", "x-consul-index": String(index) });
    res.end(JSON.stringify(matchBody(name)));
  }

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      totalRequests += 1;
      const url = new URL(req.url ?? "/", "http://agent");
      if (req.method === "POST" && url.pathname === "/v1/agent/connect/authorize") {
        authorizeCalls += 1;
        handleAuthorize(res, Buffer.concat(chunks).toString("utf8"));
      } else if (req.method === "GET" && url.pathname === "/v1/connect/intentions/check") {
        checkCalls += 1;
        if (fake.checkMode === "500") res.writeHead(500).end("rpc error: No cluster leader");
        else res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ Allowed: (opts.defaultAction ?? "deny") === "allow" }));
      } else if (req.method === "GET" && url.pathname === "/v1/connect/intentions/match") {
        handleMatch(res, url);
      } else {
        res.writeHead(404).end("Invalid URL path: not a recognized HTTP API endpoint\n");
      }
      events.emit("request");
    });
  });

  function handleAuthorize(res: http.ServerResponse, text: string): void {
    if (fake.authorizeMode === "403") {
      res.writeHead(403).end(`Permission denied: token with AccessorID 'a1b2' lacks permission 'service:write' on "api"`);
      return;
    }
    if (fake.authorizeMode === "500") {
      res.writeHead(500).end("rpc error: No cluster leader");
      return;
    }
    const body = JSON.parse(text) as { Target: string; ClientCertURI: string; ClientCertSerial: string };
    const source = /\/svc\/([^/]+)$/.exec(body.ClientCertURI)?.[1] ?? "";
    const hit = intentions.get(source) ?? intentions.get("*");
    const action = hit?.action ?? opts.defaultAction ?? "deny";
    res.writeHead(200, { "content-type": "application/json" });
    res.end(
      JSON.stringify({
        Authorized: action === "allow",
        Reason: hit ? `Matched L4 intention: default/${source} => default/${body.Target}` : "Default behavior configured by ACLs",
      }),
    );
  }

  function handleMatch(res: http.ServerResponse, url: URL): void {
    const name = url.searchParams.get("name") ?? "";
    const after = Number(url.searchParams.get("index") ?? "0");
    if (after < index) return answerMatch(res, name);
    const waitMs = Number(/^(\d+)ms$/.exec(url.searchParams.get("wait") ?? "")?.[1] ?? 300_000);
    const p: Parked = { res, name, timer: setTimeout(() => release(p), waitMs) };
    parked.add(p);
    res.on("close", () => {
      clearTimeout(p.timer);
      parked.delete(p);
      events.emit("parked");
    });
    events.emit("parked");
  }

  function release(p: Parked): void {
    clearTimeout(p.timer);
    parked.delete(p);
    answerMatch(p.res, p.name);
  }

  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const port = (server.address() as AddressInfo).port;
  let stopped: Promise<void> | undefined;

  function until(pred: () => boolean): Promise<void> {
    if (pred()) return Promise.resolve();
    return new Promise((resolve) => {
      const check = () => {
        if (!pred()) return;
        events.off("request", check);
        events.off("parked", check);
        resolve();
      };
      events.on("request", check);
      events.on("parked", check);
    });
  }

  const fake: FakeAgent = {
    port,
    config: { address: { scheme: "http", host: "127.0.0.1", port, pathPrefix: "" }, tls: { verify: true }, token: "test-token" },
    get authorizeCalls() {
      return authorizeCalls;
    },
    get checkCalls() {
      return checkCalls;
    },
    get totalRequests() {
      return totalRequests;
    },
    get parkedCount() {
      return parked.size;
    },
    authorizeMode: "ok",
    checkMode: "ok",
    setIntention(source, action, permissions) {
      index += 1;
      intentions.set(source, { action, modifyIndex: index, permissions });
      for (const p of [...parked]) release(p);
    },
    bumpIndex() {
      index += 1;
      for (const p of [...parked]) release(p);
    },
    watchCaughtUp() {
      // A parked request is one the server holds at the current index: nothing newer to deliver.
      return until(() => parked.size > 0);
    },
    until,
    stop() {
      stopped ??= (async () => {
        for (const p of [...parked]) clearTimeout(p.timer);
        server.close();
        server.closeAllConnections();
        await once(server, "close");
      })();
      return stopped;
    },
  };
  t.after(() => fake.stop());
  return fake;
}

