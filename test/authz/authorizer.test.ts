import assert from "node:assert/strict";
import { test, type TestContext } from "node:test";
import { Registry } from "prom-client";
import { createAgentClient, type SpiffeUri } from "../../src/agent/index.js";
import { createAuthorizer, type AuthorizerOptions, type Verdict } from "../../src/authz/index.js";
import { createMetrics } from "../../src/ops/index.js";
import { captureLog } from "../support/log-capture.js";
import { until } from "../support/wait.js";
import { startFakeAgent, type Action } from "./fake-agent.js";

const TRUST_DOMAIN = "11111111-2222-3333-4444-555555555555.consul";
const WEB = `spiffe://${TRUST_DOMAIN}/ns/default/dc/dc1/svc/web` as SpiffeUri;
const DB = `spiffe://${TRUST_DOMAIN}/ns/default/dc/dc1/svc/db` as SpiffeUri;
const CACHE = `spiffe://${TRUST_DOMAIN}/ns/default/dc/dc1/svc/cache` as SpiffeUri;
const SERIAL = "04:00:00:00:00:01:15:4b:5a:c3:94";
const MAX_STALE_MS = 60_000;
const DAY_MS = 24 * 3_600_000;

interface Setup {
  intentions?: Record<string, Action>;
  authz?: Partial<AuthorizerOptions>;
  /** Don't wait for the intention watch to be caught up. */
  noWait?: boolean;
  /** The agent's default intention action (authorize with no match, intentions/check). */
  fakeDefault?: Action;
}

/** Fake agent + real agent client + authorizer for target "api", with a fake clock and own metrics. */
async function setup(t: TestContext, o: Setup = {}) {
  const fake = await startFakeAgent(t, { intentions: o.intentions ?? {}, ...(o.fakeDefault !== undefined ? { defaultAction: o.fakeDefault } : {}) });
  const captured = captureLog({ level: "debug" });
  const agent = createAgentClient(fake.config, { log: captured.log });
  const clock = { ms: 1_700_000_000_000 };
  const metrics = createMetrics(new Registry(), { processMetrics: false });
  const authz = createAuthorizer(
    agent,
    { log: captured.log, metrics, now: () => clock.ms },
    { target: "api", maxStaleMs: MAX_STALE_MS, revokeLive: true, ...o.authz },
  );
  t.after(async () => {
    authz.close();
    await agent.close();
  });
  if (!o.noWait) await fake.watchCaughtUp();
  return { fake, authz, clock, metrics, captured };
}

/** authz_decisions_total{result, source}: a read adds the batched counts. */
async function decisions(metrics: ReturnType<typeof createMetrics>, result: Verdict, source: string): Promise<number> {
  const m = await metrics.authzDecisions.get();
  return m.values.find((v) => v.labels.result === result && v.labels.source === source)?.value ?? 0;
}

async function cacheGauge(metrics: ReturnType<typeof createMetrics>): Promise<number> {
  return (await metrics.authzCacheEntries.get()).values[0]?.value ?? 0;
}

test("a miss asks the agent once; hits then answer from memory with no request", async (t) => {
  const { fake, authz, metrics } = await setup(t, { intentions: { web: "allow", db: "deny" } });
  assert.equal(authz.peek(WEB), undefined, "nothing is cached before the first decision");

  assert.equal(await authz.decide(WEB, SERIAL), "allow");
  assert.equal(await authz.decide(DB, SERIAL), "denied");
  assert.equal(fake.authorizeCalls, 2);
  assert.equal(authz.size(), 2);

  const requestsBefore = fake.totalRequests;
  for (let i = 0; i < 1000; i++) {
    assert.equal(authz.peek(WEB), "allow");
    assert.equal(authz.peek(DB), "denied");
  }
  assert.equal(await authz.decide(WEB, SERIAL), "allow", "decide on a cached source is a hit too");
  assert.equal(fake.totalRequests, requestsBefore, "hits made no HTTP request at all");
  assert.equal(fake.authorizeCalls, 2);

  assert.equal(await cacheGauge(metrics), 2);
  authz.close();
  assert.equal(await decisions(metrics, "allow", "agent"), 1);
  assert.equal(await decisions(metrics, "denied", "agent"), 1);
  assert.equal(await decisions(metrics, "allow", "cache"), 1001);
  assert.equal(await decisions(metrics, "denied", "cache"), 1000);
  assert.equal(await cacheGauge(metrics), 0, "close empties the cache and the gauge");
});

test("concurrent misses for one source share one authorize request", async (t) => {
  const { fake, authz } = await setup(t, { intentions: { web: "allow" } });

  const web = Array.from({ length: 50 }, () => authz.decide(WEB, SERIAL));
  const db = Array.from({ length: 20 }, () => authz.decide(DB, SERIAL));
  assert.deepEqual(new Set(await Promise.all(web)), new Set<Verdict>(["allow"]));
  assert.deepEqual(new Set(await Promise.all(db)), new Set<Verdict>(["denied"]));

  assert.equal(fake.authorizeCalls, 2, "one request per source, not one per caller");
  assert.equal(authz.size(), 2);
});

test("a deny intention re-checks cached decisions and revokes the source now denied", async (t) => {
  const { fake, authz } = await setup(t, { intentions: { web: "allow", db: "allow" } });
  assert.equal(await authz.decide(WEB, SERIAL), "allow");
  assert.equal(await authz.decide(DB, SERIAL), "allow");

  const revoked: SpiffeUri[] = [];
  const unsubscribed: SpiffeUri[] = [];
  const off = authz.onRevoke((src) => unsubscribed.push(src));
  off();
  const firstRevoke = new Promise<void>((resolve) =>
    authz.onRevoke((src) => {
      revoked.push(src);
      resolve();
    }),
  );

  fake.setIntention("web", "deny");
  await firstRevoke; // the watch delivered the change and the re-check found web denied

  assert.deepEqual(revoked, [WEB]);
  assert.deepEqual(unsubscribed, [], "an unsubscribed listener is not called");
  assert.equal(authz.peek(WEB), "denied", "the cache holds the new verdict");

  // db was re-checked as well (4 calls: 2 misses + 2 re-checks) and stays allowed, without a new request.
  await fake.until(() => fake.authorizeCalls >= 4);
  assert.equal(await authz.decide(DB, SERIAL), "allow");
  assert.equal(fake.authorizeCalls, 4);
  assert.deepEqual(revoked, [WEB], "only the source whose verdict flipped is revoked");
});

test("with revokeLive off, a flip to denied updates the cache but notifies no one", async (t) => {
  const { fake, authz, captured } = await setup(t, { intentions: { web: "allow" }, authz: { revokeLive: false } });
  assert.equal(await authz.decide(WEB, SERIAL), "allow");
  const revoked: SpiffeUri[] = [];
  authz.onRevoke((src) => revoked.push(src));

  fake.setIntention("web", "deny");
  await captured.waitFor("intentions now deny a source that was allowed");

  assert.equal(authz.peek(WEB), "denied");
  assert.deepEqual(revoked, []);
});

test("an index bump that leaves this service's intentions unchanged re-checks nothing", async (t) => {
  const { fake, authz } = await setup(t, { intentions: { web: "allow" } });
  assert.equal(await authz.decide(WEB, SERIAL), "allow");

  fake.bumpIndex();
  await fake.watchCaughtUp(); // the watch took the new index and asked again: the delivery was handled
  assert.equal(authz.peek(WEB), "allow", "still fresh");
  assert.equal(fake.authorizeCalls, 1);

  fake.setIntention("web", "allow"); // same action, but a new ModifyIndex: re-checked
  await fake.until(() => fake.authorizeCalls >= 2);
  assert.equal(await authz.decide(WEB, SERIAL), "allow");
  assert.equal(fake.authorizeCalls, 2);
});

test("agent down: cached decisions serve up to maxStaleMs, unknown sources are refused (fail closed)", async (t) => {
  const { fake, authz, clock, metrics, captured } = await setup(t, { intentions: { web: "allow", db: "deny" } });
  assert.equal(await authz.decide(WEB, SERIAL), "allow");
  assert.equal(await authz.decide(DB, SERIAL), "denied");

  await fake.stop();
  await captured.waitFor("intention watch failing");

  assert.equal(authz.peek(WEB), "allow", "a cached allow keeps serving");
  assert.equal(authz.peek(DB), "denied", "a cached deny keeps denying");
  clock.ms += MAX_STALE_MS - 1_000;
  assert.equal(authz.peek(WEB), "allow");
  assert.equal(await authz.decide(WEB, SERIAL), "allow");
  assert.equal(await authz.decide(CACHE, SERIAL), "authz_unavailable", "an unknown pair is never let in");

  clock.ms += 2_000; // now past maxStaleMs since the last successful check
  assert.equal(authz.peek(WEB), undefined, "too old to serve");
  assert.equal(await authz.decide(WEB, SERIAL), "authz_unavailable");
  assert.equal(await authz.decide(DB, SERIAL), "authz_unavailable");

  authz.close();
  assert.equal(await decisions(metrics, "allow", "stale"), 3);
  assert.equal(await decisions(metrics, "denied", "stale"), 1);
  assert.equal(await decisions(metrics, "authz_unavailable", "agent"), 3);
});

test("authorize failing with 5xx after an intention change: stale-if-error up to maxStaleMs, then refused", async (t) => {
  const { fake, authz, clock, metrics } = await setup(t, { intentions: { web: "allow" } });
  assert.equal(await authz.decide(WEB, SERIAL), "allow");

  fake.authorizeMode = "500";
  fake.setIntention("cache", "allow");
  await fake.until(() => fake.authorizeCalls >= 2); // the re-check reached the agent (and failed)

  assert.equal(authz.peek(WEB), undefined, "a decision awaiting re-check is not served as fresh");
  assert.equal(await authz.decide(WEB, SERIAL), "allow", "served stale: the agent failed");
  assert.equal(await authz.decide(DB, SERIAL), "authz_unavailable");

  clock.ms += MAX_STALE_MS + 1;
  assert.equal(await authz.decide(WEB, SERIAL), "authz_unavailable");

  fake.authorizeMode = "ok";
  assert.equal(await authz.decide(WEB, SERIAL), "allow", "answers again once the agent recovers");
  assert.equal(authz.peek(WEB), "allow");

  authz.close();
  assert.equal(await decisions(metrics, "allow", "stale"), 1);
});

test("a 403 from authorize fails closed and logs the token problem once", async (t) => {
  const { fake, authz, captured } = await setup(t);
  fake.authorizeMode = "403";

  assert.equal(await authz.decide(WEB, SERIAL), "authz_unavailable");
  assert.equal(await authz.decide(DB, SERIAL), "authz_unavailable");
  assert.equal(await authz.decide(WEB, SERIAL), "authz_unavailable");
  assert.equal(authz.size(), 0, "a refusal is not cached");
  const acl = captured.lines.filter((l) => l.msg.includes('needs service:write on "api"'));
  assert.equal(acl.length, 1, "logged once, not per connection");
  assert.equal(acl[0]?.level, 50, "at error level");

  fake.authorizeMode = "ok";
  fake.setIntention("web", "allow");
  assert.equal(await authz.decide(WEB, SERIAL), "allow", "a fixed token is used at once");
});

test("a 403 on the re-check of a cached decision (a revoked token) serves it stale up to maxStaleMs, like an agent failure", async (t) => {
  const { fake, authz, clock, metrics } = await setup(t, { intentions: { web: "allow" } });
  assert.equal(await authz.decide(WEB, SERIAL), "allow");

  fake.authorizeMode = "403";
  fake.setIntention("cache", "allow"); // a new policy generation: every cached decision is re-checked
  await fake.until(() => fake.authorizeCalls >= 2); // the re-check reached the agent (and was refused)

  assert.equal(await authz.decide(WEB, SERIAL), "allow", "served stale: the token was refused, not the source");
  assert.equal(await authz.decide(DB, SERIAL), "authz_unavailable", "a source never decided is still refused");
  clock.ms += MAX_STALE_MS + 1;
  assert.equal(await authz.decide(WEB, SERIAL), "authz_unavailable", "no longer than maxStaleMs");

  authz.close();
  assert.equal(await decisions(metrics, "allow", "stale"), 1);
});

test("the L7 default learned from the agent keeps serving across an intention change, also when asking again fails", async (t) => {
  const { fake, authz } = await setup(t, { fakeDefault: "allow" });
  assert.equal(authz.l7Default(), "deny", "unknown: deny");
  fake.setIntention("web", "allow", [{ Action: "deny", HTTP: { PathPrefix: "/admin" } }]);
  await fake.until(() => fake.checkCalls >= 1);
  await until(() => authz.l7Default() === "allow", "the default learned");

  fake.checkMode = "500";
  fake.setIntention("web", "allow", [{ Action: "deny", HTTP: { PathPrefix: "/private" } }]);
  await fake.until(() => fake.checkCalls >= 2); // asked again, and the agent failed
  await fake.watchCaughtUp();
  assert.equal(authz.l7Default(), "allow", "an intention edit does not move the agent's default; a failed re-ask keeps it");

  fake.setIntention("*", "allow", [{ Action: "allow", HTTP: { PathPrefix: "/" } }]);
  await until(() => authz.l7Default() === "deny", "a * intention hides the default: deny");
});

test("entries unused for idleEvictMs are dropped on access", async (t) => {
  const { authz, clock, metrics } = await setup(t, { intentions: { web: "allow", db: "allow" } });
  assert.equal(await authz.decide(WEB, SERIAL), "allow");
  assert.equal(await authz.decide(DB, SERIAL), "allow");

  clock.ms += 2 * DAY_MS;
  assert.equal(authz.peek(WEB), "allow"); // web is used, db is not
  clock.ms += DAY_MS + 1;
  assert.equal(authz.peek(DB), undefined, "db unused for 3 days + 1 ms");
  assert.equal(authz.size(), 1);
  assert.equal(authz.peek(WEB), "allow");
  assert.equal(await cacheGauge(metrics), 1);
});

test("the periodic sweep evicts idle entries without any access", async (t) => {
  t.mock.timers.enable({ apis: ["setInterval"] });
  const { authz, clock, metrics } = await setup(t, {
    intentions: { web: "allow", db: "allow" },
    authz: { idleEvictMs: DAY_MS, sweepIntervalMs: 60_000 },
  });
  assert.equal(await authz.decide(WEB, SERIAL), "allow");
  assert.equal(await authz.decide(DB, SERIAL), "allow");
  assert.equal(await cacheGauge(metrics), 2);

  clock.ms += DAY_MS / 2;
  assert.equal(authz.peek(WEB), "allow");
  clock.ms += DAY_MS / 2 + 1;
  t.mock.timers.tick(60_000);
  assert.equal(authz.size(), 1, "db idle past idleEvictMs is gone; web was used");
  assert.equal(await cacheGauge(metrics), 1);

  clock.ms += DAY_MS;
  t.mock.timers.tick(60_000);
  assert.equal(authz.size(), 0);
  assert.equal(await cacheGauge(metrics), 0);
});

test("close stops the watch, and later decisions fail closed", async (t) => {
  const { fake, authz } = await setup(t, { intentions: { web: "allow" } });
  assert.equal(await authz.decide(WEB, SERIAL), "allow");
  assert.equal(fake.parkedCount, 1);

  authz.close();
  authz.close(); // idempotent
  await fake.until(() => fake.parkedCount === 0); // the blocking watch request was aborted
  assert.equal(authz.peek(WEB), undefined);
  assert.equal(await authz.decide(WEB, SERIAL), "authz_unavailable");
  assert.equal(fake.authorizeCalls, 1, "no request after close");
});

test("bad options are configuration errors", async (t) => {
  const fake = await startFakeAgent(t);
  const { log } = captureLog({ level: "debug" });
  const agent = createAgentClient(fake.config, { log });
  t.after(() => agent.close());
  const deps = { log, now: Date.now };
  assert.throws(() => createAuthorizer(agent, deps, { target: "", maxStaleMs: 1, revokeLive: true }), { code: "config" });
  assert.throws(() => createAuthorizer(agent, deps, { target: "api", maxStaleMs: -1, revokeLive: true }), { code: "config" });
  assert.throws(() => createAuthorizer(agent, deps, { target: "api", maxStaleMs: 1, idleEvictMs: 0, revokeLive: true }), {
    code: "config",
  });
});

test("decision counts reach authz_decisions_total when it is read, with no timer, and stop when the authorizer closes", async (t) => {
  const { authz, metrics } = await setup(t, { intentions: { web: "allow" } });
  assert.equal(await authz.decide(WEB, SERIAL), "allow");
  for (let i = 0; i < 5; i++) assert.equal(authz.peek(WEB), "allow");
  assert.equal(await decisions(metrics, "allow", "cache"), 5, "a read right after the decisions sees them");
  assert.match(await metrics.scrape(), /^connect_sidecar_authz_decisions_total\{result="allow",source="agent"\} 1$/m, "a scrape too");
  authz.close();
  assert.equal(metrics.authzDecisionBatches.size, 0, "a closed authorizer's batch is no longer read");
});
