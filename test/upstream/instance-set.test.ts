import assert from "node:assert/strict";
import { test } from "../support/leaks.js";
import { Registry } from "prom-client";
import type { HealthEntry } from "../../src/agent/index.js";
import { createMetrics } from "../../src/ops/index.js";
import { createInstanceSet, EJECT_BASE_MS, EJECT_MAX_MS, type Instance } from "../../src/upstream/instance-set.js";

function entry(port: number, over: { address?: string; nodeAddress?: string; native?: boolean; service?: string; dc?: string; status?: string } = {}): HealthEntry {
  return {
    node: { id: "n", name: "node1", address: over.nodeAddress ?? "10.0.0.9", datacenter: over.dc ?? "dc1" },
    service: {
      kind: over.native ? "" : "connect-proxy",
      id: `i-${port}`,
      service: over.native ? (over.service ?? "db") : "db-sidecar-proxy",
      address: over.address ?? "10.0.0.5",
      port,
      socketPath: "",
      proxyDestinationServiceName: over.native ? "" : (over.service ?? "db"),
      connectNative: over.native ?? false,
    },
    checks: [{ checkId: "serfHealth", status: over.status ?? "passing" }],
  };
}

function makeSet(clock: { now: number }, random = Math.random) {
  const metrics = createMetrics(new Registry(), { processMetrics: false });
  return { metrics, set: createInstanceSet("db", { namespace: "default", datacenter: "dc1" }, { metrics, now: () => clock.now, random }) };
}

test("address is Service.Address, else Node.Address; identity is the proxy's destination or the native service's name", () => {
  const { set } = makeSet({ now: 0 });
  set.update([entry(1), entry(2, { address: "", nodeAddress: "10.0.0.7" }), entry(3, { native: true, service: "DB", dc: "DC2" })]);
  assert.deepEqual(
    set.list().map((i) => [i.address, i.service, i.datacenter]),
    [["10.0.0.5:1", "db", "dc1"], ["10.0.0.7:2", "db", "dc1"], ["10.0.0.5:3", "db", "dc2"]],
  );
  // Unnamed, unaddressable and critical entries are skipped.
  set.update([entry(4, { service: "" }), entry(0), entry(5, { status: "critical" }), entry(6, { address: "::1" })]);
  assert.deepEqual(set.list().map((i) => i.address), ["[::1]:6"]);
});

test("pick prefers the fewest active connections and breaks ties at random", () => {
  const { set } = makeSet({ now: 0 });
  set.update([entry(1), entry(2), entry(3)]);
  const [a, b, c] = set.list() as Instance[];
  a!.active = 2;
  b!.active = 1;
  c!.active = 1;
  const seen = new Map<string, number>();
  for (let i = 0; i < 300; i++) {
    const p = set.pick([])!;
    seen.set(p.address, (seen.get(p.address) ?? 0) + 1);
  }
  assert.equal(seen.get(a!.address), undefined);
  assert.ok((seen.get(b!.address) ?? 0) > 50 && (seen.get(c!.address) ?? 0) > 50, JSON.stringify([...seen]));
  assert.equal(set.pick([b!, c!]), a);
  assert.equal(set.pick([a!, b!, c!]), undefined);
});

test("two consecutive failures eject an instance, for 5 s doubling up to 60 s; a success clears it", () => {
  const clock = { now: 1_000 };
  const { set } = makeSet(clock);
  set.update([entry(1), entry(2)]);
  const [a, b] = set.list() as Instance[];
  assert.equal(set.recordFailure(a!), false);
  assert.equal(set.healthyCount(), 2);
  assert.equal(set.recordFailure(a!), true);
  assert.equal(a!.ejectedUntilMs, 1_000 + EJECT_BASE_MS);
  assert.equal(set.healthyCount(), 1);
  for (let i = 0; i < 10; i++) assert.equal(set.pick([]), b);

  // After the ejection, one probe; failing again ejects at once for twice as long.
  clock.now = a!.ejectedUntilMs;
  assert.equal(set.healthyCount(), 2);
  assert.equal(set.recordFailure(a!), true);
  assert.equal(a!.ejectedUntilMs, clock.now + 2 * EJECT_BASE_MS);
  for (let i = 0; i < 10; i++) {
    clock.now = a!.ejectedUntilMs;
    set.recordFailure(a!);
  }
  assert.equal(a!.ejectedUntilMs - clock.now, EJECT_MAX_MS);

  set.recordSuccess(a!);
  assert.equal(a!.ejectedUntilMs, 0);
  assert.equal(set.recordFailure(a!), false); // back to needing two failures
});

test("when every instance is ejected the least recently failed one is still picked", () => {
  const clock = { now: 1_000 };
  const { set } = makeSet(clock);
  set.update([entry(1), entry(2)]);
  const [a, b] = set.list() as Instance[];
  set.recordFailure(b!);
  set.recordFailure(b!);
  clock.now = 2_000;
  set.recordFailure(a!);
  set.recordFailure(a!);
  assert.equal(set.healthyCount(), 0);
  assert.equal(set.pick([]), b);
  assert.equal(set.pick([b!]), a);
});

test("an update keeps what we know about instances that stay, and the healthy gauge follows", async () => {
  const clock = { now: 1_000 };
  const { set, metrics } = makeSet(clock);
  set.update([entry(1), entry(2)]);
  const [a] = set.list() as Instance[];
  a!.active = 3;
  set.recordFailure(a!);
  set.recordFailure(a!);
  set.update([entry(2), entry(1), entry(3)]);
  const kept = set.list().find((i) => i.port === 1)!;
  assert.equal(kept, a);
  assert.equal(kept.active, 3);
  assert.ok(kept.ejectedUntilMs > clock.now);
  const gauge = await metrics.upstreamHealthyInstances.get();
  assert.equal(gauge.values.find((v) => v.labels.upstream === "db")?.value, 2);
});
