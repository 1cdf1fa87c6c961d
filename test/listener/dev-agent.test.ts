// The public listener with everything real: the in-process dev agent's CA and intentions, the real
// cert store and authorizer, real TLS clients (node:tls, openssl s_client, curl).
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer as createHttpServer } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestContext } from "node:test";
import { test } from "../support/leaks.js";
import { createAgentClient, parseCaRoots, parseLeafCert, type AgentConfig, type LeafCert } from "../../src/agent/index.js";
import { createAuthorizer } from "../../src/authz/index.js";
import { createCertStore, type TlsMaterial } from "../../src/certs/index.js";
import { startDevAgent } from "../../src/dev-agent/index.js";
import { startPublicListener, type PublicListener } from "../../src/listener/index.js";
import type { Metrics } from "../../src/ops/index.js";
import { rotateRootBody } from "../dev-agent/ca-rotation.js";
import { captureLog, closed, closedWith, dial, echo, imbalance, metricValue, roundTrip, startApp, testMetrics, type TestApp } from "./harness.js";

interface DevMesh {
  listener: PublicListener;
  port: number;
  app: TestApp;
  metrics: Metrics;
  cap: ReturnType<typeof captureLog>;
  /** A leaf for `service` from the dev agent, and every root PEM it trusts now. */
  client(service: string): Promise<{ certPem: string; keyPem: string; uri: string; leaf: LeafCert }>;
  rootPems(): Promise<string[]>;
  setIntention(source: string, action: "allow" | "deny"): Promise<void>;
  /** Rotates the CA root to a new private key, as Consul users do; leaves are reissued at once. */
  rotateCa(): Promise<void>;
  subscribe(fn: (m: TlsMaterial) => void): () => void;
}

async function devMesh(t: TestContext, opts: { app?: TestApp } = {}): Promise<DevMesh> {
  const dev = await startDevAgent({ leafReissueWindowMs: 0 });
  const [host, port] = dev.address.split(":");
  const config: AgentConfig = { address: { scheme: "http", host: host!, port: Number(port), pathPrefix: "" }, tls: { verify: true }, token: dev.managementToken };
  const cap = captureLog();
  const agent = createAgentClient(config, { log: cap.log });
  const certs = createCertStore(agent, { service: "api" }, { log: cap.log, now: Date.now });
  const authz = createAuthorizer(agent, { log: cap.log, now: Date.now }, { target: "api", maxStaleMs: 60_000, revokeLive: true });
  const app = opts.app ?? (await startApp());
  const metrics = testMetrics();
  const listener = await startPublicListener(
    {
      bind: { host: "127.0.0.1", port: 0 },
      app: { host: "127.0.0.1", port: app.port },
      handshakeTimeoutMs: 10_000,
      localConnectTimeoutMs: 1000,
      allowNonLoopbackApp: false,
    },
    { certs, authz, log: cap.log, metrics },
  );
  t.after(async () => {
    listener.destroy();
    await listener.close();
    authz.close();
    certs.close();
    await agent.close();
    await app.close();
    await dev.stop();
    assert.equal(await imbalance(metrics), 0, "accepted = closed + active");
  });
  const get = async (path: string): Promise<unknown> => (await agent.request({ method: "GET", path })).body;
  return {
    listener,
    port: listener.address().port,
    app,
    metrics,
    cap,
    async client(service) {
      const leaf = parseLeafCert(await get(`/v1/agent/connect/ca/leaf/${service}`));
      return { certPem: leaf.certPem, keyPem: leaf.privateKeyPem, uri: leaf.serviceUri, leaf };
    },
    async rootPems() {
      return parseCaRoots(await get("/v1/agent/connect/ca/roots")).roots.map((r) => r.rootCertPem);
    },
    async setIntention(source, action) {
      await agent.request({ method: "PUT", path: "/v1/connect/intentions/exact", query: { source, destination: "api" }, body: { Action: action } });
    },
    async rotateCa() {
      await agent.request({
        method: "PUT",
        path: "/v1/connect/ca/configuration",
        body: rotateRootBody(),
      });
    },
    subscribe: (fn) => certs.subscribe(fn),
  };
}

test("dev agent: an allowed source reaches the app and bytes round-trip unchanged", async (t) => {
  const m = await devMesh(t);
  await m.setIntention("web", "allow");
  const web = await m.client("web");
  const sock = await dial(m.port, web, await m.rootPems());
  const payload = randomBytes(256 * 1024);
  assert.ok((await roundTrip(sock, payload)).equals(payload));
  const line = await closedWith(m.cap, "done");
  assert.equal(line.source, web.uri);
  assert.equal(line.bytesIn, payload.length);
  assert.equal(m.app.accepts, 1);
});

test("dev agent: a denied source is rejected and the app never sees it; a deny revokes a live connection", async (t) => {
  const m = await devMesh(t);
  await m.setIntention("web", "allow");
  await m.setIntention("intruder", "deny");
  const roots = await m.rootPems();

  const intruder = await dial(m.port, await m.client("intruder"), roots);
  await closedWith(m.cap, "denied");
  await closed(intruder);
  assert.equal(m.app.accepts, 0, "a denied source never reaches the app");

  const web = await m.client("web");
  const live = await dial(m.port, web, roots);
  assert.equal(await echo(live, "hello"), "hello");
  assert.equal(m.app.accepts, 1);
  await m.setIntention("web", "deny");
  await closed(live);
  await closedWith(m.cap, "revoked", web.uri);
  assert.equal(await metricValue(m.metrics.connectionsClosed, { listener: "public", reason: "revoked" }), 1);
  assert.equal(await metricValue(m.metrics.connectionsRejected, { listener: "public", reason: "denied" }), 1);
});

test("dev agent: 100 live connections survive a CA rotation and new handshakes see the new leaf", async (t) => {
  const m = await devMesh(t);
  await m.setIntention("web", "allow");
  const web = await m.client("web");
  const rootsBefore = await m.rootPems();
  const probe = await dial(m.port, web, rootsBefore);
  const oldSerial = probe.getPeerCertificate().serialNumber;
  probe.end();
  await closedWith(m.cap, "done");

  const live = await Promise.all(Array.from({ length: 100 }, () => dial(m.port, web, rootsBefore)));
  await Promise.all(live.map((c, i) => echo(c, `a${i}`)));

  const newLeaf = new Promise<TlsMaterial>((resolve) => {
    const off = m.subscribe((mat) => {
      if (mat.roots.roots.length === 2 && mat.leaf.serialNumber.replaceAll(":", "") !== oldSerial.toLowerCase()) {
        off();
        resolve(mat);
      }
    });
  });
  await m.rotateCa();
  const rotated = await newLeaf;

  // The client keeps its old-root leaf (still trusted: the old root stays in the roots list).
  const after = await dial(m.port, web, await m.rootPems());
  const newSerial = after.getPeerCertificate().serialNumber;
  assert.notEqual(newSerial, oldSerial);
  assert.equal(newSerial.toLowerCase(), rotated.leafSerial.replaceAll(":", ""));
  assert.equal(await echo(after, "new"), "new");

  const echoes = await Promise.all(live.map((c, i) => echo(c, `b${i}`)));
  assert.deepEqual(echoes, live.map((_, i) => `b${i}`), "every live connection survived the rotation");
  for (const c of [...live, after]) c.end();
  await m.cap.next(() => m.cap.closed().filter((l) => l.reason === "done").length === 102);
  assert.equal(m.app.accepts, 102);
});

/** Runs a command with `input` on stdin and resolves with its exit code and output. */
async function run(cmd: string, args: string[], input: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(cmd, args, { stdio: ["pipe", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
  child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
  child.stdin.end(input);
  const [code] = (await once(child, "close")) as [number | null];
  return { code, stdout, stderr };
}

async function writePems(t: TestContext, client: { certPem: string; keyPem: string }, roots: string[]): Promise<{ cert: string; key: string; ca: string }> {
  const dir = await mkdtemp(join(tmpdir(), "listener-pems-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const files = { cert: join(dir, "leaf.pem"), key: join(dir, "key.pem"), ca: join(dir, "root.pem") };
  await writeFile(files.cert, client.certPem);
  await writeFile(files.key, client.keyPem, { mode: 0o600 });
  await writeFile(files.ca, roots.join("\n"));
  return files;
}

test("dev agent: openssl s_client with a dev-agent leaf talks to the app through the listener", async (t) => {
  // The app answers one line and closes: s_client -quiet ignores stdin EOF and waits for the server.
  const app = await startApp({
    onSocket: (s) => s.once("data", (line: Buffer) => s.end(`app got: ${line.toString().trim()}\n`)),
  });
  const m = await devMesh(t, { app });
  await m.setIntention("web", "allow");
  const files = await writePems(t, await m.client("web"), await m.rootPems());
  const r = await run("openssl", ["s_client", "-connect", `127.0.0.1:${m.port}`, "-cert", files.cert, "-key", files.key, "-CAfile", files.ca, "-quiet"], "hello over openssl\n");
  assert.match(r.stdout, /app got: hello over openssl/, r.stderr);
  await closedWith(m.cap, "done");
  assert.equal(app.accepts, 1);
});

test("dev agent: curl with a client certificate reaches an HTTP app behind the listener", async (t) => {
  const http = createHttpServer((req, res) => {
    res.setHeader("content-type", "text/plain");
    res.end(`hello ${req.method} ${req.url} over HTTP/${req.httpVersion}`);
  });
  http.listen(0, "127.0.0.1");
  await once(http, "listening");
  t.after(() => {
    http.closeAllConnections();
    http.close();
  });
  const app: TestApp = { server: http as never, port: (http.address() as { port: number }).port, accepts: 0, sockets: new Set(), close: async () => {} };
  const m = await devMesh(t, { app });
  await m.setIntention("web", "allow");
  const files = await writePems(t, await m.client("web"), await m.rootPems());
  // -k: Connect certificates name a SPIFFE ID, not a host name; the server's chain is what --cacert is for.
  const r = await run("curl", ["-sS", "--cert", files.cert, "--key", files.key, "--cacert", files.ca, "-k", `https://127.0.0.1:${m.port}/greet?x=1`], "");
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, "hello GET /greet?x=1 over HTTP/1.1");
  await closedWith(m.cap, "done");

  // Without a client certificate curl gets no answer and the app sees nothing new.
  const bare = await run("curl", ["-sS", "--cacert", files.ca, "-k", `https://127.0.0.1:${m.port}/`], "");
  assert.notEqual(bare.code, 0);
  await closedWith(m.cap, "no_client_cert");
});
