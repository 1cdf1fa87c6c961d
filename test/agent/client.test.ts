import assert from "node:assert/strict";
import diagnosticsChannel from "node:diagnostics_channel";
import type { Socket } from "node:net";
import { test, type TestContext } from "node:test";
import type { TLSSocket } from "node:tls";
import { AgentError, createAgentClient } from "../../src/agent/index.js";
import type { AgentConfig } from "../../src/agent/index.js";
import { ConfigError } from "../../src/net/index.js";
import { startBlackHole } from "../sockets.js";
import {
  httpConfig,
  makePki,
  sendJson,
  sendText,
  silentLog,
  startHttpServer,
  startHttpsServer,
  startUnixServer,
} from "./fixtures.js";

const TOKEN = "3f0c1d6e-2a4b-4c8d-9e0f-a1b2c3d4e5f6";

/** Every TCP or unix client socket this process opens from now until the test ends, and which have emitted 'close'. */
function watchClientSockets(t: TestContext): { opened: Socket[]; closed: Set<Socket> } {
  const seen = { opened: [] as Socket[], closed: new Set<Socket>() };
  const onSocket = (msg: unknown) => {
    const sock = (msg as { socket: Socket }).socket;
    seen.opened.push(sock);
    sock.once("close", () => seen.closed.add(sock));
  };
  diagnosticsChannel.subscribe("net.client.socket", onSocket);
  t.after(() => diagnosticsChannel.unsubscribe("net.client.socket", onSocket));
  return seen;
}

function isAgentError(code: AgentError["code"], also: (e: AgentError) => boolean = () => true) {
  return (err: unknown) => {
    assert.ok(err instanceof AgentError, `expected AgentError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    assert.ok(also(err), err.message);
    return true;
  };
}

test("sends the token as X-Consul-Token on every request, and setToken replaces it", async (t) => {
  const server = await startHttpServer(t, (_req, res) => sendJson(res, 200, {}));
  const agent = createAgentClient(httpConfig(server, { token: TOKEN }), { log: silentLog });
  t.after(() => agent.close());
  await agent.request({ method: "GET", path: "/v1/agent/services" });
  await agent.request({ method: "PUT", path: "/v1/agent/service/register", body: { Name: "web" } });
  agent.setToken("second-token");
  await agent.request({ method: "GET", path: "/v1/agent/services" });
  agent.setToken("");
  await agent.request({ method: "GET", path: "/v1/agent/services" });
  assert.deepEqual(
    server.requests.map((r) => r.headers["x-consul-token"]),
    [TOKEN, TOKEN, "second-token", undefined],
  );
  assert.ok(server.requests.every((r) => !r.url.includes("token")), "the token never goes in the query");
});

test("bodies are JSON with Content-Type application/json; reads carry no Content-Type", async (t) => {
  const server = await startHttpServer(t, (_req, res) => void res.end());
  const agent = createAgentClient(httpConfig(server), { log: silentLog });
  t.after(() => agent.close());
  const res = await agent.request({ method: "PUT", path: "/v1/agent/check/update/c1", body: { Status: "passing", Output: "" } });
  assert.equal(res.body, undefined, "an empty 200 body is undefined (spec §1.8)");
  await agent.request({ method: "GET", path: "/v1/agent/services" });
  const [put, get] = server.requests;
  assert.equal(put?.method, "PUT");
  assert.equal(put?.headers["content-type"], "application/json");
  assert.deepEqual(JSON.parse(put?.body ?? ""), { Status: "passing", Output: "" });
  assert.equal(get?.headers["content-type"], undefined);
});

test("builds the query string, adds the configured dc and the address's path prefix", async (t) => {
  const server = await startHttpServer(t, (_req, res) => sendJson(res, 200, []));
  const cfg: AgentConfig = {
    ...httpConfig(server),
    address: { scheme: "http", host: "127.0.0.1", port: server.port, pathPrefix: "/consul" },
    datacenter: "dc9",
  };
  const agent = createAgentClient(cfg, { log: silentLog });
  t.after(() => agent.close());
  await agent.request({ method: "GET", path: "/v1/health/connect/db", query: { passing: "1", tag: ["a", "b c"], near: undefined } });
  await agent.request({ method: "GET", path: "/v1/health/connect/db", query: { dc: "dc2" } });
  const [a, b] = server.requests.map((r) => new URL(r.url, "http://x"));
  assert.equal(a?.pathname, "/consul/v1/health/connect/db");
  assert.deepEqual(a?.searchParams.getAll("tag"), ["a", "b c"]);
  assert.equal(a?.searchParams.get("passing"), "1");
  assert.equal(a?.searchParams.has("near"), false);
  assert.equal(a?.searchParams.get("dc"), "dc9");
  assert.deepEqual(b?.searchParams.getAll("dc"), ["dc2"], "an explicit dc wins over the configured one");
});

test("reads X-Consul-Index and X-Consul-ContentHash whatever their case, and tolerates their absence", async (t) => {
  let n = 0;
  const server = await startHttpServer(t, (_req, res) => {
    n += 1;
    if (n === 1) sendJson(res, 200, { a: 1 }, { "x-consul-index": "42", "X-Consul-ContentHash": "4ecd29c7bc647ca8" });
    else if (n === 2) sendJson(res, 200, { a: 2 }, { "X-CONSUL-INDEX": "not-a-number" });
    else sendJson(res, 200, { a: 3 });
  });
  const agent = createAgentClient(httpConfig(server), { log: silentLog });
  t.after(() => agent.close());
  const first = await agent.request({ method: "GET", path: "/v1/agent/connect/ca/roots" });
  assert.equal(first.index, 42);
  assert.equal(first.contentHash, "4ecd29c7bc647ca8");
  assert.equal(first.headers["x-consul-index"], "42");
  assert.deepEqual(first.body, { a: 1 });
  const second = await agent.request({ method: "GET", path: "/v1/agent/connect/ca/roots" });
  assert.equal(second.index, undefined);
  const third = await agent.request({ method: "GET", path: "/v1/agent/connect/ca/roots" });
  assert.equal(third.index, undefined);
  assert.equal(third.contentHash, undefined);
});

test("keeps connections alive between requests", async (t) => {
  const server = await startHttpServer(t, (req, res) => sendJson(res, 200, { port: req.socket.remotePort }));
  const agent = createAgentClient(httpConfig(server), { log: silentLog });
  t.after(() => agent.close());
  const ports = new Set<unknown>();
  for (let i = 0; i < 6; i++) ports.add(((await agent.request({ method: "GET", path: "/v1/agent/services" })).body as { port: number }).port);
  // A second socket may open while the first finishes its response, but they are reused.
  assert.ok(ports.size < 6, `6 requests used ${ports.size} connections`);
});

test("talks HTTP over a unix socket with Host: localhost", async (t) => {
  const server = await startUnixServer(t, (req, res) => sendJson(res, 200, { host: req.headers.host }));
  const agent = createAgentClient(
    { address: { scheme: "unix", socketPath: server.address }, tls: { verify: true }, token: TOKEN },
    { log: silentLog },
  );
  t.after(() => agent.close());
  const res = await agent.request({ method: "GET", path: "/v1/agent/self" });
  assert.deepEqual(res.body, { host: "localhost" });
  assert.equal(server.requests[0]?.headers["x-consul-token"], TOKEN);
  assert.equal(agent.origin, `unix://${server.address}`);
});

test("talks HTTPS with a CA file, a client certificate and a server name", async (t) => {
  const pki = await makePki(t);
  const server = await startHttpsServer(t, pki, (req, res) => {
    const peer = (req.socket as TLSSocket).getPeerCertificate();
    sendJson(res, 200, { clientCn: peer.subject?.CN, sni: (req.socket as TLSSocket & { servername?: string }).servername });
  });
  const base = { address: { scheme: "https" as const, host: "127.0.0.1", port: server.port, pathPrefix: "" }, token: "" };
  const files = { caFile: pki.files.ca, certFile: pki.files.clientCert, keyFile: pki.files.clientKey };

  const good = createAgentClient({ ...base, tls: { ...files, verify: true } }, { log: silentLog });
  t.after(() => good.close());
  assert.deepEqual((await good.request({ method: "GET", path: "/v1/agent/self" })).body, { clientCn: "sidecar", sni: false });

  const named = createAgentClient({ ...base, tls: { ...files, serverName: "agent.consul.test", verify: true } }, { log: silentLog });
  t.after(() => named.close());
  assert.deepEqual((await named.request({ method: "GET", path: "/v1/agent/self" })).body, {
    clientCn: "sidecar",
    sni: "agent.consul.test",
  });

  const caPath = createAgentClient({ ...base, tls: { caPath: pki.files.dir, certFile: files.certFile, keyFile: files.keyFile, verify: true } }, { log: silentLog });
  t.after(() => caPath.close());
  await caPath.request({ method: "GET", path: "/v1/agent/self" });

  const wrongName = createAgentClient({ ...base, tls: { ...files, serverName: "other.example", verify: true } }, { log: silentLog });
  t.after(() => wrongName.close());
  await assert.rejects(wrongName.request({ method: "GET", path: "/v1/agent/self" }), isAgentError("unreachable"));

  const noCa = createAgentClient({ ...base, tls: { certFile: files.certFile, keyFile: files.keyFile, verify: true } }, { log: silentLog });
  t.after(() => noCa.close());
  await assert.rejects(noCa.request({ method: "GET", path: "/v1/agent/self" }), isAgentError("unreachable"));

  // CONSUL_HTTP_SSL_VERIFY=false: the unknown CA is accepted, the client cert is still sent.
  const noVerify = createAgentClient({ ...base, tls: { certFile: files.certFile, keyFile: files.keyFile, verify: false } }, { log: silentLog });
  t.after(() => noVerify.close());
  assert.equal(((await noVerify.request({ method: "GET", path: "/v1/agent/self" })).body as { clientCn: string }).clientCn, "sidecar");

  const noClientCert = createAgentClient({ ...base, tls: { caFile: files.caFile, verify: true } }, { log: silentLog });
  t.after(() => noClientCert.close());
  await assert.rejects(noClientCert.request({ method: "GET", path: "/v1/agent/self" }), isAgentError("unreachable"));
});

test("maps Consul's status codes and texts to error codes, naming the endpoint and never the token", async (t) => {
  const answers: Record<string, [number, string]> = {
    "/v1/a": [403, `Permission denied: token with AccessorID 'abc' lacks permission 'service:write' on "web"`],
    "/v1/b": [403, "token does not exist: ACL not found"],
    "/v1/c": [403, "ACL not found"],
    "/v1/d": [404, "unknown service ID: web"],
    "/v1/e": [500, `CheckID "x" does not have associated TTL`],
    "/v1/f": [403, "Access is restricted"],
    "/v1/g": [400, `Request decode failed: token ${TOKEN} is bad`],
  };
  const server = await startHttpServer(t, (req, res) => {
    const [status, text] = answers[new URL(req.url ?? "", "http://x").pathname] ?? [599, "?"];
    sendText(res, status, text);
  });
  const agent = createAgentClient(httpConfig(server, { token: TOKEN }), { log: silentLog });
  t.after(() => agent.close());
  const get = (path: string) => agent.request({ method: "GET", path, query: { index: "5", wait: "1s" } });
  const noToken = (e: AgentError) => !e.message.includes(TOKEN) && !e.message.includes("index=");
  await assert.rejects(get("/v1/a"), isAgentError("acl_denied", (e) => e.status === 403 && e.message.startsWith("GET /v1/a: 403 Permission denied") && noToken(e)));
  await assert.rejects(get("/v1/b"), isAgentError("acl_not_found", (e) => e.message.includes("ACL not found")));
  await assert.rejects(get("/v1/c"), isAgentError("acl_not_found"));
  await assert.rejects(get("/v1/d"), isAgentError("not_found", (e) => e.status === 404 && e.message.includes("unknown service ID: web")));
  await assert.rejects(get("/v1/e"), isAgentError("http_status", (e) => e.status === 500 && e.message.includes("does not have associated TTL")));
  await assert.rejects(get("/v1/f"), isAgentError("http_status", (e) => e.status === 403));
  await assert.rejects(get("/v1/g"), isAgentError("http_status", (e) => e.status === 400 && noToken(e) && e.message.includes("<redacted>")));
});

test("a body that is not JSON is bad_body; a refused connection is unreachable", async (t) => {
  const server = await startHttpServer(t, (_req, res) => {
    res.writeHead(200, { "Content-Type": "application/json" });
    res.end("{not json");
  });
  const agent = createAgentClient(httpConfig(server), { log: silentLog });
  t.after(() => agent.close());
  await assert.rejects(agent.request({ method: "GET", path: "/v1/agent/self" }), isAgentError("bad_body", (e) => e.message.startsWith("GET /v1/agent/self")));

  const gone = await startHttpServer(t, (_req, res) => void res.end());
  const port = gone.port;
  await gone.close();
  const dead = createAgentClient({ ...httpConfig(gone), address: { scheme: "http", host: "127.0.0.1", port, pathPrefix: "" } }, { log: silentLog });
  t.after(() => dead.close());
  await assert.rejects(dead.request({ method: "GET", path: "/v1/agent/self" }), isAgentError("unreachable", (e) => e.status === undefined));
  assert.equal(dead.lastContactMs(), undefined);
});

test("bodies over the size cap are bad_body, with or without Content-Length", async (t) => {
  const big = "x".repeat(4096);
  const server = await startHttpServer(t, (req, res) => {
    if (req.url?.startsWith("/v1/declared")) {
      res.writeHead(200, { "Content-Type": "application/json", "Content-Length": String(big.length + 2) });
      res.end(JSON.stringify(big));
    } else {
      res.writeHead(200, { "Content-Type": "application/json" }); // chunked
      res.write('"');
      res.write(big);
      res.end('"');
    }
  });
  const agent = createAgentClient(httpConfig(server), { log: silentLog }, { maxBodyBytes: 1024 });
  t.after(() => agent.close());
  await assert.rejects(agent.request({ method: "GET", path: "/v1/declared" }), isAgentError("bad_body", (e) => e.message.includes("1024")));
  await assert.rejects(agent.request({ method: "GET", path: "/v1/chunked" }), isAgentError("bad_body", (e) => e.message.includes("1024")));
  const roomy = createAgentClient(httpConfig(server), { log: silentLog }, { maxBodyBytes: 8192 });
  t.after(() => roomy.close());
  assert.equal((await roomy.request({ method: "GET", path: "/v1/chunked" })).body, big);
});

test("onRequest sees a bounded endpoint label and the status; lastContactMs records the last answer", async (t) => {
  const server = await startHttpServer(t, (req, res) => (req.url?.includes("missing") ? sendText(res, 404, "nope") : sendJson(res, 200, {})));
  const seen: Array<[string, number]> = [];
  let clock = 1000;
  const agent = createAgentClient(httpConfig(server), {
    log: silentLog,
    now: () => clock,
    onRequest: (endpoint, status, seconds) => {
      assert.ok(seconds >= 0);
      seen.push([endpoint, status]);
    },
  });
  t.after(() => agent.close());
  assert.equal(agent.lastContactMs(), undefined);
  await agent.request({ method: "GET", path: "/v1/agent/service/web-sidecar-proxy" });
  assert.equal(agent.lastContactMs(), 1000);
  clock = 2000;
  await assert.rejects(agent.request({ method: "GET", path: "/v1/agent/connect/ca/leaf/missing" }));
  assert.equal(agent.lastContactMs(), 2000, "an error status is still contact with the agent");
  await agent.request({ method: "GET", path: "/v1/some/thing", endpoint: "custom" });
  assert.deepEqual(seen, [
    ["/v1/agent/service/:id", 200],
    ["/v1/agent/connect/ca/leaf/:service", 404],
    ["custom", 200],
  ]);
});

test("a blocking request outlives the plain request timeout; a silent agent times out as unreachable", async (t) => {
  let release: (() => void) | undefined;
  const server = await startHttpServer(t, (req, res) => {
    if (req.url?.includes("index=")) {
      release = () => sendJson(res, 200, { blocked: true }, { "X-Consul-Index": "9" });
      // answer only once the plain request below has timed out
    }
    // requests without index never get an answer
  });
  const agent = createAgentClient(httpConfig(server), { log: silentLog }, { requestTimeoutMs: 300 });
  t.after(() => agent.close());
  const blocking = agent.request({ method: "GET", path: "/v1/agent/connect/ca/roots", query: { index: "8", wait: "60000ms" } });
  await assert.rejects(agent.request({ method: "GET", path: "/v1/agent/self" }), isAgentError("unreachable"));
  assert.ok(release, "the blocking request reached the server");
  release();
  const res = await blocking;
  assert.deepEqual(res.body, { blocked: true });
  assert.equal(res.index, 9);
});

test("an aborted signal ends a request with code aborted; close() ends blocking requests and refuses new ones", async (t) => {
  const server = await startHttpServer(t, () => {
    /* never answers */
  });
  const reported: number[] = [];
  const agent = createAgentClient(httpConfig(server), { log: silentLog, onRequest: (_e, status) => reported.push(status) });
  t.after(() => agent.destroy());
  const ctl = new AbortController();
  const pending = agent.request({ method: "GET", path: "/v1/agent/self", signal: ctl.signal });
  await server.waitForRequests(1);
  ctl.abort();
  await assert.rejects(pending, isAgentError("aborted"));

  const blocking = agent.request({ method: "GET", path: "/v1/agent/connect/ca/roots", query: { index: "3", wait: "300000ms" } });
  await server.waitForRequests(2);
  const closed = agent.close();
  await assert.rejects(blocking, isAgentError("aborted", (e) => e.message.includes("closed")));
  await closed;
  await assert.rejects(agent.request({ method: "GET", path: "/v1/agent/self" }), isAgentError("aborted"));
  await agent.close(); // idempotent
  assert.deepEqual(reported, [], "aborted requests are not reported as agent failures");
});

test("an unreadable CA or client certificate file is a ConfigError at creation", async (t) => {
  const pki = await makePki(t);
  const address = { scheme: "https" as const, host: "127.0.0.1", port: 1, pathPrefix: "" };
  assert.throws(
    () => createAgentClient({ address, token: "", tls: { caFile: `${pki.files.dir}/missing.pem`, verify: true } }, { log: silentLog }),
    (e: unknown) => e instanceof ConfigError && e.field === "ca-file",
  );
  assert.throws(
    () =>
      createAgentClient(
        { address, token: "", tls: { certFile: pki.files.clientCert, keyFile: `${pki.files.dir}/nope`, verify: true } },
        { log: silentLog },
      ),
    (e: unknown) => e instanceof ConfigError && e.field === "client-key",
  );
});

test("joins repeated response headers with \", \", including those node's own parser keeps once", async (t) => {
  const server = await startHttpServer(t, (_req, res) => {
    res.setHeader("Retry-After", ["1", "2"]);
    res.setHeader("X-Cache", ["HIT", "MISS"]);
    sendJson(res, 200, {});
  });
  const agent = createAgentClient(httpConfig(server), { log: silentLog });
  t.after(() => agent.close());
  const res = await agent.request({ method: "GET", path: "/v1/agent/self" });
  assert.equal(res.headers["retry-after"], "1, 2");
  assert.equal(res.headers["x-cache"], "HIT, MISS");
});

test("a token HTTP cannot carry fails the request as unreachable, without the token in the message", async (t) => {
  const server = await startHttpServer(t, (_req, res) => sendJson(res, 200, {}));
  const reported: number[] = [];
  const agent = createAgentClient(httpConfig(server, { token: "line1\nsecret-part" }), {
    log: silentLog,
    onRequest: (_e, status) => reported.push(status),
  });
  t.after(() => agent.close());
  await assert.rejects(
    agent.request({ method: "GET", path: "/v1/agent/self" }),
    isAgentError("unreachable", (e) => !e.message.includes("secret-part")),
  );
  assert.deepEqual(reported, [0]);
  assert.equal(server.requests.length, 0);
});

test("a body over the cap closes its connection rather than returning it to the pool", async (t) => {
  const sockets = watchClientSockets(t);
  const big = JSON.stringify("x".repeat(4096));
  const server = await startHttpServer(t, (req, res) => {
    if (req.url?.startsWith("/v1/declared")) res.writeHead(200, { "Content-Length": String(big.length) });
    else res.writeHead(200); // chunked
    res.end(big);
  });
  const agent = createAgentClient(httpConfig(server), { log: silentLog }, { maxBodyBytes: 1024 });
  t.after(() => agent.close());
  for (const path of ["/v1/declared", "/v1/chunked"]) {
    await assert.rejects(agent.request({ method: "GET", path }), isAgentError("bad_body"));
    assert.equal(sockets.opened.length, 1, `${path}: one connection`);
    // Destroyed by the time the request fails, not drained into the pool.
    assert.ok(sockets.opened.pop()?.destroyed, `${path}: its connection is destroyed`);
  }
});

test("a request on a pooled connection still times out waiting for the response head", { timeout: 30_000 }, async (t) => {
  const seen = new Set<Socket>();
  const server = await startHttpServer(t, (req, res) => {
    seen.add(req.socket);
    if (req.url?.startsWith("/v1/agent/self")) sendJson(res, 200, {}); // later requests get no answer
  });
  const agent = createAgentClient(httpConfig(server), { log: silentLog }, { requestTimeoutMs: 300 });
  t.after(() => agent.close());
  await agent.request({ method: "GET", path: "/v1/agent/self" });
  await assert.rejects(agent.request({ method: "GET", path: "/v1/agent/services" }), isAgentError("unreachable"));
  assert.equal(seen.size, 1, "the second request went out on the first one's connection");
});

test("a non-blocking request's timeout restarts with each body chunk; a body that stops is unreachable", { timeout: 30_000 }, async (t) => {
  const server = await startHttpServer(t, (req, res) => {
    res.writeHead(200, { "Content-Type": "application/json" });
    res.write("[0");
    if (req.url?.startsWith("/v1/stalls")) return; // the rest never comes
    // 15 chunks 200 ms apart: 3 s in all, longer than the 2 s timeout, with no gap near it.
    let n = 0;
    const tick = setInterval(() => {
      n += 1;
      if (n < 15) res.write(`,${n}`);
      else {
        clearInterval(tick);
        res.end("]");
      }
    }, 200);
    t.after(() => clearInterval(tick));
  });
  const reported: number[] = [];
  const agent = createAgentClient(
    httpConfig(server),
    { log: silentLog, onRequest: (_e, status) => reported.push(status) },
    { requestTimeoutMs: 2000 },
  );
  t.after(() => agent.close());
  const slow = await agent.request({ method: "GET", path: "/v1/agent/services" });
  assert.equal((slow.body as number[]).length, 15);
  await assert.rejects(agent.request({ method: "GET", path: "/v1/stalls" }), isAgentError("unreachable", (e) => e.status === undefined));
  assert.deepEqual(reported, [200, 200], "the stalled request had an answer head: it is reported with its status");
});

test("a connection that never finishes its TLS handshake fails within the connect timeout, even for a blocking request", { timeout: 60_000 }, async (t) => {
  const { port } = await startBlackHole(t); // accepts TCP, never answers the ClientHello
  const agent = createAgentClient(
    { address: { scheme: "https", host: "127.0.0.1", port, pathPrefix: "" }, tls: { verify: true }, token: "" },
    { log: silentLog },
  );
  t.after(() => agent.destroy());
  await assert.rejects(
    agent.request({ method: "GET", path: "/v1/agent/connect/ca/roots", query: { index: "7", wait: "5m" } }),
    isAgentError("unreachable", (e) => e.message.includes("connect")),
  );
});

test("close() lets a non-blocking request finish, ends blocking ones, then closes every connection", async (t) => {
  const sockets = watchClientSockets(t);
  let answer: (() => void) | undefined;
  const server = await startHttpServer(t, (req, res) => {
    if (req.url?.startsWith("/v1/agent/self")) answer = () => sendJson(res, 200, { late: true });
    // the blocking request is never answered
  });
  const agent = createAgentClient(httpConfig(server), { log: silentLog });
  const blocking = agent.request({ method: "GET", path: "/v1/agent/connect/ca/roots", query: { index: "3", wait: "5m" } });
  const plain = agent.request({ method: "GET", path: "/v1/agent/self" });
  await server.waitForRequests(2);
  const closing = agent.close();
  await assert.rejects(blocking, isAgentError("aborted"));
  assert.ok(answer, "the plain request reached the server");
  answer();
  assert.deepEqual((await plain).body, { late: true });
  await closing;
  assert.equal(sockets.opened.length, 2);
  assert.ok(
    sockets.opened.every((s) => sockets.closed.has(s)),
    "no connection is left once close() resolves",
  );
});

test("destroy() ends requests in flight and closes every connection, idle or in use, before it resolves", async (t) => {
  const sockets = watchClientSockets(t);
  const server = await startHttpServer(t, (req, res) => {
    if (!req.url?.includes("index=")) sendJson(res, 200, {}); // the blocking request is never answered
  });
  const agent = createAgentClient(httpConfig(server), { log: silentLog });
  const blocking = agent.request({ method: "GET", path: "/v1/agent/connect/ca/roots", query: { index: "3", wait: "5m" } });
  await server.waitForRequests(1);
  await agent.request({ method: "GET", path: "/v1/agent/self" }); // its connection stays idle in the pool
  assert.equal(sockets.opened.length, 2);
  const ended = assert.rejects(blocking, isAgentError("aborted"));
  const destroying = agent.destroy();
  // At once: the pool's own idle timer would close the idle connection a few seconds later.
  assert.ok(
    sockets.opened.every((s) => s.destroyed),
    "destroy() destroys every connection when called",
  );
  await destroying;
  assert.ok(
    sockets.opened.every((s) => sockets.closed.has(s)),
    "no connection is left once destroy() resolves",
  );
  await ended;
});
