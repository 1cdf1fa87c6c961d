import assert from "node:assert/strict";
import { test } from "node:test";
import { Registry } from "prom-client";
import { createLogger, createMetrics, startAdminServer, type Readiness, type SidecarStatus } from "../../src/ops/index.js";

const status = (r: Readiness): SidecarStatus => ({
  ready: r.t === "ready", readiness: r.t, state: r.t, mode: "static", proxyId: undefined, service: "web",
  identity: undefined, leaf: undefined, roots: undefined, listeners: { admin: "", public: undefined },
  upstreams: [], authz: undefined, agent: { origin: "http://127.0.0.1:8500", lastContact: undefined }, registration: undefined,
});

test("/ready follows the readiness union with its reason; /live, /metrics and /status answer; other paths 404", async (t) => {
  let readiness: Readiness = { t: "starting", missing: ["certificates", "public_listener"] };
  const metrics = createMetrics(new Registry(), { processMetrics: false });
  metrics.connectionsAccepted.labels("public").inc(3);
  const admin = await startAdminServer(
    { bind: { host: "127.0.0.1", port: 0 }, metrics, readiness: () => readiness, status: () => status(readiness) },
    { log: createLogger({ level: "silent", json: true }), now: () => 10_000 },
  );
  t.after(() => admin.close());
  assert.equal(admin.address().host, "127.0.0.1");
  assert.notEqual(admin.address().port, 0);

  const get = async (path: string) => {
    const res = await fetch(`${admin.url()}${path}`);
    return { status: res.status, body: await res.text(), type: res.headers.get("content-type") };
  };
  assert.deepEqual(await get("/ready"), {
    status: 503, body: "waiting for the leaf certificate and CA roots, the public listener to bind\n", type: "text/plain; charset=utf-8",
  });
  readiness = { t: "agent_unreachable", sinceMs: 4_000 };
  assert.equal((await get("/ready")).body, "the Consul agent has been unreachable for 6s\n");
  readiness = { t: "draining", deadlineMs: 20_000 };
  assert.equal((await get("/ready")).status, 503);
  readiness = { t: "ready" };
  assert.equal((await get("/ready")).status, 200);
  assert.equal((await get("/live")).status, 200);

  const m = await get("/metrics");
  assert.equal(m.status, 200);
  assert.match(m.body, /^connect_sidecar_connections_accepted_total\{listener="public"\} 3$/m);
  const s = await get("/status");
  assert.equal(JSON.parse(s.body).service, "web");
  assert.equal((await get("/nope")).status, 404);
  const post = await fetch(`${admin.url()}/ready`, { method: "POST" });
  assert.equal(post.status, 405);
  await post.text();
});

test("an address already in use rejects", async (t) => {
  const deps = { log: createLogger({ level: "silent", json: true }), now: Date.now };
  const opts = { metrics: createMetrics(new Registry(), { processMetrics: false }), readiness: (): Readiness => ({ t: "ready" }), status: () => status({ t: "ready" }) };
  const first = await startAdminServer({ ...opts, bind: { host: "127.0.0.1", port: 0 } }, deps);
  t.after(() => first.close());
  await assert.rejects(startAdminServer({ ...opts, bind: first.address() }, deps), { code: "EADDRINUSE" });
});

test("/metrics serves the metrics' scrape(): the process metrics, registered by the first scrape, are in it", async (t) => {
  const metrics = createMetrics(new Registry());
  const admin = await startAdminServer(
    { bind: { host: "127.0.0.1", port: 0 }, metrics, readiness: () => ({ t: "ready" }), status: () => status({ t: "ready" }) },
    { log: createLogger({ level: "silent", json: true }), now: Date.now },
  );
  t.after(() => admin.close());
  const res = await fetch(`${admin.url()}/metrics`);
  assert.equal(res.headers.get("content-type"), metrics.registry.contentType);
  assert.match(await res.text(), /^connect_sidecar_process_cpu_seconds_total \S+$/m);
});
