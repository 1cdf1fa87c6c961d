import assert from "node:assert/strict";
import { test } from "node:test";
import { collectDefaultMetrics, Registry } from "prom-client";
import { collectProcessMetrics, createMetrics } from "../../src/ops/index.js";

// What a scrape shows, values left out: the HELP and TYPE lines and each sample's name and labels.
async function shape(registry: Registry): Promise<string[]> {
  return (await registry.metrics()).split("\n").filter((l) => l !== "").map((l) => (l.startsWith("#") ? l : l.replace(/ \S+$/, "")));
}

test("the process metrics are prom-client's default metrics: the same names, help, types and order", async () => {
  const theirs = new Registry();
  collectDefaultMetrics({ register: theirs, prefix: "connect_sidecar_" });
  const ours = new Registry();
  collectProcessMetrics(ours, "connect_sidecar_");
  const headers = (lines: string[]) => lines.filter((l) => l.startsWith("#"));
  assert.deepEqual(headers(await shape(ours)), headers(await shape(theirs)));
  // Samples vary with what the process holds open (handles, resources); the CPU ones never do.
  const cpu = (lines: string[]) => lines.filter((l) => l.startsWith("connect_sidecar_process_cpu"));
  assert.deepEqual(cpu(await shape(ours)), cpu(await shape(theirs)));
});

test("process CPU counts the CPU time used since the metrics were created, as prom-client does", async () => {
  const registry = new Registry();
  collectProcessMetrics(registry, "x_");
  const t0 = process.cpuUsage();
  const until = Date.now() + 30;
  while (Date.now() < until); // burn some user time
  const used = process.cpuUsage(t0);
  const value = async (name: string) => (await registry.getSingleMetric(name)!.get()).values[0]!.value;
  const user = await value("x_process_cpu_user_seconds_total"); // its collect() updates all three
  const system = await value("x_process_cpu_system_seconds_total");
  const total = await value("x_process_cpu_seconds_total");
  assert.ok(user >= used.user / 1e6, `user ${user} s covers the ${used.user / 1e6} s burnt`);
  assert.ok(Math.abs(total - (user + system)) < 1e-9, "total = user + system");
});

test("createMetrics registers the process metrics unless told not to", async () => {
  const names = async (m: ReturnType<typeof createMetrics>) => (await m.registry.getMetricsAsJSON()).map((x) => x.name);
  assert.ok((await names(createMetrics(new Registry()))).includes("connect_sidecar_process_cpu_seconds_total"));
  assert.ok(!(await names(createMetrics(new Registry(), { processMetrics: false }))).includes("connect_sidecar_process_cpu_seconds_total"));
});
