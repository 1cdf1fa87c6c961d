// Thousands of short connections through both sidecars (upstream listener → mTLS → public listener →
// app) leave nothing behind: live-connection tables, the authz cache, metric label children,
// process listeners and libuv handles all return to their baseline. Sizes, never RSS or timings.
import assert from "node:assert/strict";
import { test } from "node:test";
import type { UpstreamStatus } from "../../src/upstream/index.js";
import { closed, dial, echo, setIntention, startSidecar, webToApiMesh } from "../e2e/mesh.js";
import { until } from "../support/wait.js";

const CONNECTIONS = 3000;
const PARALLEL = 50;

/** Counts of live libuv handles by kind (TCPWRAP, TLSWRAP, Timeout, …). */
function handles(): Map<string, number> {
  const out = new Map<string, number>();
  for (const kind of process.getActiveResourcesInfo()) out.set(kind, (out.get(kind) ?? 0) + 1);
  return out;
}

/** Number of label children (series) each metric holds. */
async function seriesCounts(metrics: { registry: { getMetricsAsJSON(): Promise<Array<{ name: string; values: unknown[] }>> } }) {
  const json = await metrics.registry.getMetricsAsJSON();
  return new Map(json.map((m) => [m.name, m.values.length]));
}

test("3,000 short connections through upstream and public listeners return every tracked structure to baseline", async (t) => {
  const { mesh, apiApp: api, webApp: web, upstreamPort } = await webToApiMesh(t);
  await setIntention(mesh, "web", "api", "allow");
  const apiSide = await startSidecar(t, mesh, { t: "sidecar-for", serviceId: "api" });
  const webSide = await startSidecar(t, mesh, { t: "sidecar-for", serviceId: "web" });

  const roundTrip = async (i: number): Promise<void> => {
    const sock = await dial(upstreamPort);
    assert.equal(await echo(sock, `ping ${i}`), `ping ${i}`);
    sock.end();
    await closed(sock);
  };
  // Warm-up: one connection binds the metric children, fills the authz and peer caches, resumes TLS.
  await roundTrip(-1);
  await waitUntilIdle();
  const baseHandles = handles();
  const baseSeries = [await seriesCounts(apiSide.metrics), await seriesCounts(webSide.metrics)];
  const baseProcessListeners = process.eventNames().map((e) => [e, process.listenerCount(e)] as const);

  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < CONNECTIONS) await roundTrip(next++);
  };
  await Promise.all(Array.from({ length: PARALLEL }, worker));
  await waitUntilIdle();

  const apiStatus = apiSide.sidecar.status();
  const webStatus = webSide.sidecar.status();
  assert.equal(apiStatus.listeners.public?.activeConnections, 0, "api public listener: no live connection left");
  assert.equal(apiStatus.authz?.cacheEntries, 1, "one source (web) → one authz cache entry");
  const upstreams = webStatus.upstreams as UpstreamStatus[];
  assert.equal(upstreams.length, 1);
  assert.equal(upstreams[0]!.activeConns, 0, "web upstream listener: no live connection left");
  for (const inst of upstreams[0]!.instances) assert.equal(inst.activeConns, 0, "web upstream instance: no live connection left");
  // accepted = closed + active, and every connection was counted.
  const accepted = await counter(apiSide.metrics, "connect_sidecar_connections_accepted_total", "public");
  const closedTotal = await counter(apiSide.metrics, "connect_sidecar_connections_closed_total", "public");
  assert.ok(accepted >= CONNECTIONS + 1, `api accepted ${accepted}`);
  assert.equal(closedTotal, accepted);
  assert.equal(await counter(apiSide.metrics, "connect_sidecar_connections_active", "public"), 0);
  assert.equal(await counter(webSide.metrics, "connect_sidecar_connections_active", "upstream:api"), 0);

  // No per-connection label children: a series set bounded by reasons (authz decisions are added when
  // the counter is read, so their few children appear with the first read), never one that grows with connections.
  const afterSeries = [await seriesCounts(apiSide.metrics), await seriesCounts(webSide.metrics)];
  for (const [i, after] of afterSeries.entries()) {
    for (const [name, n] of after) assert.ok(n - (baseSeries[i]!.get(name) ?? 0) <= 4, `${name}: ${baseSeries[i]!.get(name)} → ${n} series`);
  }
  // No process listeners or handles survive the connections.
  assert.deepEqual(process.eventNames().map((e) => [e, process.listenerCount(e)] as const), baseProcessListeners);
  for (const kind of ["TCPSocketWrap", "TLSWrap", "TCPWRAP"]) {
    assert.ok((handles().get(kind) ?? 0) <= (baseHandles.get(kind) ?? 0), `${kind}: ${handles().get(kind)} > ${baseHandles.get(kind)}`);
  }

  // Still serving afterwards.
  await roundTrip(CONNECTIONS);

  async function waitUntilIdle(): Promise<void> {
    // Both sides settle their connection records right after the sockets close; poll the public figures.
    await until(async () => {
      const a = apiSide.sidecar.status().listeners.public?.activeConnections ?? 0;
      const w = await counter(webSide.metrics, "connect_sidecar_connections_active", "upstream:api");
      return a === 0 && w === 0;
    }, "both sidecars to count no active connection");
  }
});

async function counter(
  metrics: { registry: { getSingleMetricAsString(name: string): Promise<string> } },
  name: string,
  listener: string,
): Promise<number> {
  const text = await metrics.registry.getSingleMetricAsString(name);
  let sum = 0;
  for (const line of text.split("\n")) {
    if (line.startsWith("#") || !line.includes(`listener="${listener}"`)) continue;
    sum += Number(line.slice(line.lastIndexOf(" ") + 1));
  }
  return sum;
}
