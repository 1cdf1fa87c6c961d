// Issue 16 end to end: web → (upstream listener) → mTLS → api's public listener in HTTP mode → an
// HTTP app. Real clients (Node's http, fetch (undici), curl, a raw socket), real TLS, certificates
// from the dev agent's CA, protocol and L7 intentions from configuration entries.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { once } from "node:events";
import { Agent, createServer, request, type IncomingMessage, type Server } from "node:http";
import { connect, type Socket } from "node:net";
import type { TestContext } from "node:test";
import { test } from "node:test";
import { promisify } from "node:util";
import { connect as tlsConnect } from "node:tls";
import { parseCaRoots, parseLeafCert } from "../../src/agent/index.js";
import { captureLog } from "../support/log-capture.js";
import { until } from "../support/wait.js";
import { freePort, registerApp, scrape, setIntention, startMesh, startSidecar, sumMetric, type Mesh } from "./mesh.js";

const run = promisify(execFile);
const sha = (b: Buffer): string => createHash("sha256").update(b).digest("hex");

/** An HTTP app: echoes what it saw, streams uploads into a hash, streams downloads, echoes an upgraded stream. */
async function startHttpApp(t: TestContext): Promise<{ port: number; server: Server; upgrades: number }> {
  const state = { port: 0, server: undefined as unknown as Server, upgrades: 0 };
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://app");
    if (url.pathname === "/upload") {
      const h = createHash("sha256");
      let n = 0;
      req.on("data", (b: Buffer) => {
        h.update(b);
        n += b.length;
      });
      req.on("end", () => res.end(JSON.stringify({ n, sha: h.digest("hex"), te: req.headers["transfer-encoding"] ?? null })));
      return;
    }
    if (url.pathname === "/download") {
      const seed = Buffer.from(url.searchParams.get("seed") ?? "x");
      const chunks = Number(url.searchParams.get("chunks") ?? "1");
      let i = 0;
      const write = (): void => {
        while (i < chunks) {
          i++;
          if (!res.write(createHash("sha512").update(seed).update(String(i)).digest().toString("hex").repeat(64))) return void res.once("drain", write);
        }
        res.end();
      };
      return write();
    }
    const status = /^\/status\/(\d{3})$/.exec(url.pathname);
    if (status !== null) res.statusCode = Number(status[1]);
    req.resume();
    res.setHeader("x-app-saw-connection", String(req.headers.connection ?? ""));
    res.setHeader("x-app-saw-foo", String(req.headers["x-foo"] ?? ""));
    res.end(`app ${req.method} ${req.url}`);
  });
  server.on("upgrade", (req: IncomingMessage, sock: Socket, head: Buffer) => {
    state.upgrades++;
    sock.write("HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n");
    if (head.length) sock.write(head);
    sock.pipe(sock);
  });
  server.keepAliveTimeout = 60_000;
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  state.port = (server.address() as { port: number }).port;
  state.server = server;
  t.after(() => {
    server.closeAllConnections();
    server.close();
  });
  return state;
}

async function putEntry(mesh: Mesh, body: Record<string, unknown>): Promise<void> {
  await mesh.mgmt.request({ method: "PUT", path: "/v1/config", body });
}

/** One request on `agent`; resolves with status, body and whether the socket was reused. */
function get(port: number, agent: Agent, path: string, opts: { method?: string; headers?: Record<string, string>; body?: Buffer } = {}) {
  return new Promise<{ status: number; body: string; reused: boolean; headers: IncomingMessage["headers"] }>((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, path, agent, method: opts.method ?? "GET", headers: opts.headers }, (res) => {
      const parts: Buffer[] = [];
      res.on("data", (b: Buffer) => parts.push(b));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(parts).toString(), reused: req.reusedSocket, headers: res.headers }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(opts.body);
  });
}

/** api (HTTP app, protocol http from service-defaults) behind its sidecar; web's sidecar with an upstream to it. */
async function httpMesh(t: TestContext, opts: { protocol?: "http" | "tcp"; aclsEnabled?: boolean } = {}) {
  const mesh = await startMesh(t, { aclsEnabled: opts.aclsEnabled ?? false });
  const app = await startHttpApp(t);
  const upstreamPort = await freePort();
  if ((opts.protocol ?? "http") === "http") await putEntry(mesh, { Kind: "service-defaults", Name: "api", Protocol: "http" });
  const apiPort = await registerApp(mesh, { name: "api", appPort: app.port });
  await registerApp(mesh, { name: "web", appPort: 1, upstreams: [{ DestinationName: "api", LocalBindPort: upstreamPort }] });
  const apiLog = captureLog();
  const api = await startSidecar(t, mesh, { t: "sidecar-for", serviceId: "api" }, { log: apiLog.log });
  const webLog = captureLog();
  const web = await startSidecar(t, mesh, { t: "sidecar-for", serviceId: "web" }, { log: webLog.log });
  return { mesh, app, upstreamPort, apiPort, api, apiLog, web, webLog };
}

const L7_RULES = {
  Kind: "service-intentions",
  Name: "api",
  Sources: [
    {
      Name: "web",
      Permissions: [
        { Action: "allow", HTTP: { PathExact: "/public", Methods: ["GET"] } },
        { Action: "allow", HTTP: { PathRegex: "/items/[0-9]+" } },
        { Action: "allow", HTTP: { PathPrefix: "/admin/", Header: [{ Name: "X-Role", Exact: "admin" }] } },
        { Action: "allow", HTTP: { PathPrefix: "/upload" } },
        { Action: "allow", HTTP: { PathPrefix: "/download" } },
        { Action: "allow", HTTP: { PathPrefix: "/ws" } },
        { Action: "deny", HTTP: { PathPrefix: "/" } },
      ],
    },
  ],
};

test("HTTP mode: an L7 intention allows GET /public and denies the rest with 403 on one keep-alive connection; header and regex rules decide", async (t) => {
  const { mesh, upstreamPort, api, apiLog } = await httpMesh(t);
  await putEntry(mesh, L7_RULES);
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  t.after(() => agent.destroy());

  // The first request may race the sidecar's first intention answer: wait for an allow.
  await until(async () => (await get(upstreamPort, new Agent(), "/public").catch(() => undefined))?.status === 200, "GET /public allowed");
  const pub = await get(upstreamPort, agent, "/public");
  assert.deepEqual([pub.status, pub.body], [200, "app GET /public"]);
  const denied = await get(upstreamPort, agent, "/private");
  assert.deepEqual([denied.status, denied.body, denied.reused], [403, "RBAC: access denied", true], "a 403 on the same connection");
  const post = await get(upstreamPort, agent, "/public", { method: "POST", body: Buffer.from("x") });
  assert.deepEqual([post.status, post.reused], [403, true], "the method rule: POST /public is not allowed");
  const again = await get(upstreamPort, agent, "/public?q=1");
  assert.deepEqual([again.status, again.body, again.reused], [200, "app GET /public?q=1", true], "the connection stays usable; the query is not part of the path");

  // Regex path rule (a whole-path match), header rule (exact value; name case-insensitive).
  assert.equal((await get(upstreamPort, agent, "/items/42")).status, 200);
  assert.equal((await get(upstreamPort, agent, "/items/42x")).status, 403);
  assert.equal((await get(upstreamPort, agent, "/admin/x", { headers: { "x-role": "admin" } })).status, 200);
  assert.equal((await get(upstreamPort, agent, "/admin/x", { headers: { "x-role": "guest" } })).status, 403);
  assert.equal((await get(upstreamPort, agent, "/admin/x")).status, 403);

  // Hop-by-hop: a field named by Connection is not forwarded, nor the client's Connection (the app
  // sees the proxy's own hop: keep-alive).
  const hop = await get(upstreamPort, agent, "/public", { headers: { connection: "keep-alive, x-foo", "x-foo": "secret" } });
  assert.equal(hop.headers["x-app-saw-foo"], "");
  assert.equal(hop.headers["x-app-saw-connection"], "keep-alive");

  // undici (fetch) and curl see the same.
  assert.equal((await fetch(`http://127.0.0.1:${upstreamPort}/public`)).status, 200);
  const viaFetch = await fetch(`http://127.0.0.1:${upstreamPort}/secret`);
  assert.deepEqual([viaFetch.status, await viaFetch.text()], [403, "RBAC: access denied"]);
  const curl = await run("curl", ["-s", "-w", "%{http_code} %{num_connects};", "-o", "/dev/null", `http://127.0.0.1:${upstreamPort}/public`, "-o", "/dev/null", `http://127.0.0.1:${upstreamPort}/nope`]);
  assert.equal(curl.stdout, "200 1;403 0;", "curl: 200 then 403, the second on the reused connection");

  // Metrics and the access log match the requests (7 denials: 5 via Node's http, 1 fetch, 1 curl).
  await until(() => apiLog.count("http request") >= 1, "access log");
  const series = await scrape(api.sidecar.adminUrl());
  const denials = sumMetric(series, "connect_sidecar_http_requests_denied_total", 'listener="public"');
  const codes4 = sumMetric(series, "connect_sidecar_http_requests_total", 'listener="public"', 'code_class="4xx"');
  const codes2 = sumMetric(series, "connect_sidecar_http_requests_total", 'listener="public"', 'code_class="2xx"');
  assert.equal(denials, codes4, "every 4xx here is a denial");
  assert.equal(denials, 7);
  assert.equal(sumMetric(series, "connect_sidecar_http_request_duration_seconds_count", 'listener="public"'), codes2 + codes4);
  assert.equal(sumMetric(series, "connect_sidecar_http_requests_total", 'method_class="POST"', 'code_class="4xx"'), 1);
  const lines = apiLog.lines.filter((l) => l.msg === "http request");
  assert.equal(lines.length, codes2 + codes4, "one access-log line per request");
  const deniedLine = lines.find((l) => l.path === "/private");
  assert.equal(deniedLine?.status, 403);
  assert.equal(deniedLine?.method, "GET");
  assert.match(String(deniedLine?.source), /\/svc\/web$/);
});

test("HTTP mode: a large streamed upload and download round-trip unchanged; WebSocket-style upgrade works; a malformed request gets 400", async (t) => {
  const { mesh, upstreamPort, apiPort, app } = await httpMesh(t);
  await putEntry(mesh, L7_RULES);
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  t.after(() => agent.destroy());
  await until(async () => (await get(upstreamPort, new Agent(), "/public").catch(() => undefined))?.status === 200, "GET /public allowed");

  // 16 MiB upload, chunked (no Content-Length), streamed by the client.
  const body = randomBytes(16 * 1024 * 1024);
  const up = await new Promise<string>((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port: upstreamPort, path: "/upload", method: "POST", agent }, (res) => {
      let s = "";
      res.on("data", (b: Buffer) => (s += b));
      res.on("end", () => resolve(s));
    });
    req.on("error", reject);
    for (let i = 0; i < body.length; i += 64 * 1024) req.write(body.subarray(i, i + 64 * 1024));
    req.end();
  });
  assert.deepEqual(JSON.parse(up), { n: body.length, sha: sha(body), te: "chunked" });
  // With Content-Length: the app sees the length, not chunks.
  const fixed = await get(upstreamPort, agent, "/upload", { method: "PUT", body: body.subarray(0, 1_000_000), headers: { "content-length": "1000000" } });
  assert.deepEqual(JSON.parse(fixed.body), { n: 1_000_000, sha: sha(body.subarray(0, 1_000_000)), te: null });

  // ~16 MiB download, compared with the same stream read from the app directly.
  const direct = await fetch(`http://127.0.0.1:${app.port}/download?seed=s&chunks=128`).then(async (r) => Buffer.from(await r.arrayBuffer()));
  const proxied = await fetch(`http://127.0.0.1:${upstreamPort}/download?seed=s&chunks=128`).then(async (r) => Buffer.from(await r.arrayBuffer()));
  assert.equal(proxied.length, direct.length);
  assert.equal(sha(proxied), sha(direct));

  // Upgrade: after the 101 the stream is raw both ways.
  const upgraded = await new Promise<Socket>((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port: upstreamPort, path: "/ws", headers: { connection: "Upgrade", upgrade: "echo" } });
    req.on("upgrade", (res, sock: Socket) => (res.statusCode === 101 ? resolve(sock) : reject(new Error(String(res.statusCode)))));
    req.on("response", (res) => reject(new Error(`no upgrade: ${res.statusCode}`)));
    req.on("error", reject);
    req.end();
  });
  upgraded.write("ping over the upgraded stream");
  const [echoed] = (await once(upgraded, "data")) as [Buffer];
  assert.equal(echoed.toString(), "ping over the upgraded stream");
  upgraded.destroy();
  assert.equal(app.upgrades, 1);

  // A denied upgrade is a 403, and the app never sees it.
  const deniedUp = await new Promise<number>((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port: upstreamPort, path: "/nope", headers: { connection: "Upgrade", upgrade: "echo" } });
    req.on("upgrade", () => reject(new Error("upgraded")));
    req.on("response", (res) => resolve(res.statusCode ?? 0));
    req.on("error", reject);
    req.end();
  });
  assert.equal(deniedUp, 403);
  assert.equal(app.upgrades, 1);

  // Malformed: a 400, and the sidecar keeps serving.
  const raw = connect({ host: "127.0.0.1", port: upstreamPort });
  raw.write("GET /public HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n");
  let answer = "";
  raw.on("data", (b: Buffer) => (answer += b));
  await once(raw, "close");
  assert.match(answer, /^HTTP\/1\.1 400 /);
  // That 400 came from web's upstream listener (it parses too): api's public listener gets its own,
  // over mTLS as web, and keeps serving.
  const roots = parseCaRoots((await mesh.mgmt.request({ method: "GET", path: "/v1/agent/connect/ca/roots" })).body).roots.map((r) => r.rootCertPem);
  const webLeaf = parseLeafCert((await mesh.mgmt.request({ method: "GET", path: "/v1/agent/connect/ca/leaf/web" })).body);
  const toApi = tlsConnect({ host: "127.0.0.1", port: apiPort, cert: webLeaf.certPem, key: webLeaf.privateKeyPem, ca: roots, checkServerIdentity: () => undefined });
  toApi.on("error", () => {});
  await once(toApi, "secureConnect");
  toApi.write("GET /public HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n");
  let toApiAnswer = "";
  toApi.on("data", (b: Buffer) => (toApiAnswer += b));
  await once(toApi, "close");
  assert.match(toApiAnswer, /^HTTP\/1\.1 400 /);
  assert.equal((await get(upstreamPort, agent, "/public")).status, 200);
  assert.equal((await fetch(`http://127.0.0.1:${upstreamPort}/public`)).status, 200);
});

test("switching api between tcp and http with a service-defaults entry changes new connections' handling without a restart", async (t) => {
  const { mesh, upstreamPort, api, apiLog } = await httpMesh(t, { protocol: "tcp" });
  await setIntention(mesh, "web", "api", "allow");
  const httpRequests = async (): Promise<number> => sumMetric(await scrape(api.sidecar.adminUrl()), "connect_sidecar_http_requests_total");
  const fresh = () => get(upstreamPort, new Agent({ keepAlive: false }), "/hello"); // a new connection each time

  await until(async () => (await fresh().catch(() => undefined))?.status === 200, "tcp: GET through");
  assert.equal(await httpRequests(), 0, "layer 4: no request is parsed");

  await putEntry(mesh, { Kind: "service-defaults", Name: "api", Protocol: "http" });
  await apiLog.waitFor("public listener settings updated");
  assert.equal((await fresh()).status, 200);
  assert.equal(await httpRequests(), 1, "http: the new connection's request is counted");

  await putEntry(mesh, { Kind: "service-defaults", Name: "api", Protocol: "tcp" });
  await until(() => apiLog.count("public listener settings updated") >= 2, "back to tcp");
  assert.equal((await fresh()).status, 200);
  assert.equal(await httpRequests(), 1, "tcp again: not parsed");
});

for (const [acls, expected] of [[false, 200], [true, 403]] as const) {
  test(`a request no L7 permission matches gets the default intention policy (ACLs ${acls ? "on, default deny" : "off: allow"}: ${expected})`, async (t) => {
    const { mesh, upstreamPort } = await httpMesh(t, { aclsEnabled: acls });
    await putEntry(mesh, { Kind: "service-intentions", Name: "api", Sources: [{ Name: "web", Permissions: [{ Action: "deny", HTTP: { PathPrefix: "/admin" } }] }] });
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    t.after(() => agent.destroy());
    await until(async () => (await get(upstreamPort, new Agent(), "/admin").catch(() => undefined))?.status === 403, "the L7 intention is enforced");
    // The default is learned (intentions/check) after the list arrives: wait for it to settle where it must.
    await until(async () => (await get(upstreamPort, agent, "/other")).status === expected, `GET /other → ${expected}`);
    assert.equal((await get(upstreamPort, agent, "/admin")).status, 403, "the matching deny permission still decides");
    assert.equal((await get(upstreamPort, agent, "/other")).status, expected);
  });
}

// One idle keep-alive connection passes web's upstream listener and api's public listener: closing
// either sidecar must not wait for it (close() answers 1 when its drain timed out and cut).
for (const side of ["api", "web"] as const) {
  const where = side === "api" ? "its public listener" : "its upstream listener";
  test(`a closing sidecar closes idle HTTP keep-alive connections on ${where} instead of waiting for its drain timeout`, async (t) => {
    const h = await httpMesh(t);
    await setIntention(h.mesh, "web", "api", "allow");
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    t.after(() => agent.destroy());
    await until(async () => (await get(h.upstreamPort, new Agent(), "/hello").catch(() => undefined))?.status === 200, "GET through");
    assert.equal((await get(h.upstreamPort, agent, "/hello")).status, 200);
    assert.equal(await h[side].sidecar.close(10_000), 0, "closed without cutting (1 would mean the drain timed out)");
  });
}

test("the upstream listener of an http destination counts each request by method and status class, logs it, and follows a protocol change live", async (t) => {
  const { mesh, upstreamPort, web, webLog } = await httpMesh(t);
  await putEntry(mesh, L7_RULES);
  const upstream = 'listener="upstream:api"';
  const count = async (...match: string[]): Promise<number> => sumMetric(await scrape(web.sidecar.adminUrl()), "connect_sidecar_http_requests_total", upstream, ...match);
  // The destination's service-defaults made web's upstream http too (the agent resolves it into the upstream's Config).
  await until(async () => (await get(upstreamPort, new Agent(), "/public").catch(() => undefined))?.status === 200, "GET /public allowed");
  const before = await count();
  assert.ok(before >= 1, "requests through web's upstream are counted");
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  t.after(() => agent.destroy());

  const made: Array<[string, string, number]> = [
    ["GET", "/public", 200],
    ["GET", "/items/7", 200],
    ["POST", "/upload", 200],
    ["PUT", "/items/8", 200],
    ["GET", "/private", 403], // api's sidecar refuses it: web's upstream sees the 403 go by
    ["DELETE", "/admin/x", 403],
  ];
  for (const [method, path, status] of made) {
    const r = await get(upstreamPort, agent, path, { method, body: method === "GET" || method === "DELETE" ? undefined : Buffer.from("x") });
    assert.equal(r.status, status, `${method} ${path}`);
  }
  // curl, on its own connection: one more GET 2xx.
  const curl = await run("curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", `http://127.0.0.1:${upstreamPort}/public`]);
  assert.equal(curl.stdout, "200");
  await until(async () => (await count()) === before + made.length + 1, "every request counted");
  assert.equal(await count('method_class="GET"', 'code_class="2xx"'), before + 3, "GET 2xx: /public, /items/7 and curl's, beside the wait's");
  assert.equal(await count('method_class="POST"', 'code_class="2xx"'), 1);
  assert.equal(await count('method_class="PUT"', 'code_class="2xx"'), 1);
  assert.equal(await count('method_class="GET"', 'code_class="4xx"'), 1);
  assert.equal(await count('method_class="DELETE"', 'code_class="4xx"'), 1);
  const series = await scrape(web.sidecar.adminUrl());
  assert.equal(sumMetric(series, "connect_sidecar_http_request_duration_seconds_count", upstream), before + made.length + 1);
  assert.equal(sumMetric(series, "connect_sidecar_http_requests_denied_total", upstream), 0, "an upstream denies nothing itself");
  const lines = webLog.lines.filter((l) => l.msg === "http request" && l.listener === "upstream:api");
  assert.equal(lines.length, before + made.length + 1, "one access-log line per request");
  const del = lines.find((l) => l.method === "DELETE");
  assert.deepEqual([del?.path, del?.status], ["/admin/x", 403]);

  // api back to tcp (and a layer-4 allow, which its L7 intention is not): web's upstream proxies new
  // connections as bytes, uncounted.
  await setIntention(mesh, "web", "api", "allow");
  await putEntry(mesh, { Kind: "service-defaults", Name: "api", Protocol: "tcp" });
  await webLog.waitFor("new connections are proxied at layer 4");
  const counted = await count();
  // The allow reaches api's sidecar on its own watch: a fresh connection may be refused until then.
  await until(async () => (await get(upstreamPort, new Agent({ keepAlive: false }), "/public").catch(() => undefined))?.status === 200, "GET through at layer 4");
  assert.equal(await count(), counted, "new connections after the change are not parsed");
});
