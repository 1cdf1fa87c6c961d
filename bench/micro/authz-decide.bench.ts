// Micro-benchmark: the cost of `Authorizer.peek` on a cache hit, the per-connection price of
// authorization once a source is known. Compared, in the same run, with the floor it cannot
// beat: a Map lookup plus one clock read. Prints numbers; asserts nothing.
//
//   node dist/bench/micro/authz-decide.bench.js [iterations=1000000] [sources=1000]
import type { AgentClient, AgentRequest, AgentResponse, SpiffeUri } from "../../src/agent/index.js";
import { createAuthorizer } from "../../src/authz/index.js";
import { pino } from "pino";

const ITERATIONS = Number(process.argv[2] ?? 1_000_000);
const SOURCES = Number(process.argv[3] ?? 1_000);
const ROUNDS = 7;

/**
 * An in-memory agent: authorize allows everyone; the intention watch answers once and then
 * blocks until aborted. Only the miss path touches it, so no socket noise enters the numbers.
 */
function memoryAgent(): AgentClient {
  let matchAnswered = false;
  const answer = (body: unknown, index?: number): AgentResponse => ({
    status: 200,
    headers: {},
    body,
    index,
    contentHash: undefined,
  });
  return {
    origin: "memory://agent",
    async request(req: AgentRequest): Promise<AgentResponse> {
      if (req.method === "POST") return answer({ Authorized: true, Reason: "bench" });
      if (!matchAnswered) {
        matchAnswered = true;
        return answer({ api: [] }, 7);
      }
      return new Promise((_, reject) => {
        const abort = () => reject(req.signal?.reason ?? new Error("aborted"));
        if (req.signal?.aborted) abort();
        req.signal?.addEventListener("abort", abort, { once: true });
      });
    },
    setToken() {},
    lastContactMs: () => Date.now(),
    async close() {},
    async destroy() {},
  };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? NaN;
}

async function main(): Promise<void> {
  const authz = createAuthorizer(
    memoryAgent(),
    { log: pino({ level: "silent" }), now: Date.now },
    { target: "api", maxStaleMs: 60_000, revokeLive: true },
  );
  const keys = Array.from(
    { length: SOURCES },
    (_, i) => `spiffe://11111111-2222-3333-4444-555555555555.consul/ns/default/dc/dc1/svc/svc-${i}` as SpiffeUri,
  );
  for (const k of keys) await authz.decide(k, "01:02");
  await new Promise((r) => setImmediate(r)); // let the watch take its first answer
  if (authz.peek(keys[0]!) !== "allow") throw new Error("cache not warm");

  // Baseline: what a hit costs at least (a Map lookup, one clock read, one field store).
  const floor = new Map(keys.map((k) => [k, { verdict: "allow", usedMs: 0 }]));
  const mask = SOURCES; // keys.length; modulo keeps every key in play

  let sink = 0;
  const peekNs: number[] = [];
  const floorNs: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    let t0 = process.hrtime.bigint();
    for (let i = 0; i < ITERATIONS; i++) {
      if (authz.peek(keys[i % mask]!) === "allow") sink++;
    }
    peekNs.push(Number(process.hrtime.bigint() - t0) / ITERATIONS);

    t0 = process.hrtime.bigint();
    for (let i = 0; i < ITERATIONS; i++) {
      const e = floor.get(keys[i % mask]!);
      if (e !== undefined) {
        e.usedMs = Date.now();
        if (e.verdict === "allow") sink++;
      }
    }
    floorNs.push(Number(process.hrtime.bigint() - t0) / ITERATIONS);
  }

  // The miss path against the in-memory agent: decide for fresh sources (shared-request machinery, no socket).
  const missKeys = Array.from({ length: 20_000 }, (_, i) => `${keys[0]}-miss-${i}` as SpiffeUri);
  const t0 = process.hrtime.bigint();
  for (const k of missKeys) if ((await authz.decide(k, "01:02")) === "allow") sink++;
  const missNs = Number(process.hrtime.bigint() - t0) / missKeys.length;
  authz.close();

  const p = median(peekNs);
  const f = median(floorNs);
  console.log(`authz peek (hit): ${p.toFixed(1)} ns/op  (median of ${ROUNDS} rounds × ${ITERATIONS} ops over ${SOURCES} sources)`);
  console.log(`baseline Map.get + Date.now: ${f.toFixed(1)} ns/op  → peek/baseline = ${(p / f).toFixed(2)}×`);
  console.log(`authz decide (miss, in-memory agent): ${(missNs / 1000).toFixed(2)} µs/op`);
  console.log(`rounds peek ns: ${peekNs.map((x) => x.toFixed(1)).join(" ")}`);
  if (sink === 0) console.log("(sink)");
}

await main();
