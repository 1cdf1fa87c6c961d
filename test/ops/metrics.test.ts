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

test("the process metrics are registered by the first scrape, not before, unless turned off", async () => {
  const cpu = "connect_sidecar_process_cpu_seconds_total";
  const gc = "connect_sidecar_nodejs_gc_duration_seconds";
  const names = async (m: ReturnType<typeof createMetrics>) => (await m.registry.getMetricsAsJSON()).map((x) => x.name);
  const m = createMetrics(new Registry());
  assert.ok((await names(m)).includes("connect_sidecar_connections_accepted_total"));
  assert.ok(!(await names(m)).includes(cpu), "no process metric before a scrape");
  const first = await m.scrape();
  assert.match(first, new RegExp(`^${cpu} `, "m"), "the first scrape shows them");
  assert.match(first, new RegExp(`^# TYPE ${gc} histogram$`, "m"));
  assert.equal((await m.scrape()).match(new RegExp(`^# TYPE ${cpu} `, "gm"))?.length, 1, "registered once");
  const off = createMetrics(new Registry(), { processMetrics: false });
  assert.doesNotMatch(await off.scrape(), new RegExp(cpu));
});
