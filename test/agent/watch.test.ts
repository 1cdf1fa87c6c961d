import assert from "node:assert/strict";
import type http from "node:http";
import { test } from "node:test";
import type { TestContext } from "node:test";
import { AgentError, createAgentClient, watch } from "../../src/agent/index.js";
import type { AgentClient, WatchSpec } from "../../src/agent/index.js";
import { createTokenBucket, retryDelayMs, UNREACHABLE_RETRY_MAX_MS } from "../../src/agent/watch.js";
import { backoffDelayMs } from "../../src/net/index.js";
import { httpConfig, sendJson, sendText, silentLog, startHttpServer } from "./fixtures.js";
import type { TestServer } from "./fixtures.js";

/**
 * A blocking resource like Consul's: `?index=N` (or `?hash=H`) parks the request until the
 * version differs or `wait` ends; then it answers with the current value.
 */
interface FakeResource {
  server: TestServer;
  /** Publishes a new value; parked requests are answered at once. */
  set(value: unknown, version: number | string): void;
  /** Query of each request, in order. */
  queries(): URLSearchParams[];
}

async function startResource(
  t: TestContext,
  mode: "index" | "hash",
  first: { value: unknown; version: number | string },
  opts: { indexHeader?: (version: number | string) => string | undefined } = {},
): Promise<FakeResource> {
  let current = first;
  const parked = new Set<() => void>();
  const timers = new Set<NodeJS.Timeout>();
  t.after(() => timers.forEach((tm) => clearTimeout(tm)));
  const answer = (res: http.ServerResponse) => {
    const headers: Record<string, string> = {};
    if (mode === "index") {
      const h = opts.indexHeader ? opts.indexHeader(current.version) : String(current.version);
      if (h !== undefined) headers["X-Consul-Index"] = h;
    } else headers["X-Consul-ContentHash"] = String(current.version);
    sendJson(res, 200, current.value, headers);
  };
  const server = await startHttpServer(t, (req, res) => {
    const q = new URL(req.url ?? "", "http://x").searchParams;
    const blockOn = mode === "index" ? q.get("index") : q.get("hash");
    const same = mode === "index" ? blockOn !== null && Number(blockOn) >= Number(current.version) : blockOn === String(current.version);
    if (!same) return answer(res);
    const waitMs = Number(/^(\d+)ms$/.exec(q.get("wait") ?? "")?.[1] ?? 300_000);
    const wake = () => {
      parked.delete(wake);
      clearTimeout(timer);
      timers.delete(timer);
      answer(res);
    };
    const timer = setTimeout(wake, waitMs);
    timers.add(timer);
    parked.add(wake);
  });
  return {
    server,
    set(value, version) {
      current = { value, version };
      for (const wake of [...parked]) wake();
    },
    queries: () => server.requests.map((r) => new URL(r.url, "http://x").searchParams),
  };
}

function client(t: TestContext, server: TestServer): AgentClient {
  const agent = createAgentClient(httpConfig(server), { log: silentLog });
  t.after(() => agent.destroy());
  return agent;
}

function spec(mode: "index" | "hash", extra: Partial<WatchSpec<unknown>> = {}): WatchSpec<unknown> {
  return { name: "test", path: "/v1/test/resource", mode, parse: (b) => b, ...extra };
}

/** Fast pacing so tests run quickly; the defaults are exercised by the unit tests below. */
const QUICK = { minIntervalMs: 1, backoff: { initialMs: 1, maxMs: 5 } };

function start<T>(t: TestContext, agent: AgentClient, s: WatchSpec<T>, extra: Partial<Parameters<typeof watch>[2]> = {}) {
  const ctl = new AbortController();
  t.after(() => ctl.abort());
  const it = watch(agent, s, { signal: ctl.signal, ...QUICK, ...extra })[Symbol.asyncIterator]();
  return { it, ctl };
}

test("index mode: yields the first result, then blocks with ?index and wait=<N>ms until it changes", async (t) => {
  const r = await startResource(t, "index", { value: { v: 1 }, version: 5 });
  const { it } = start(t, client(t, r.server), spec("index", { waitMs: 1500, query: { by: "destination" } }));
  assert.deepEqual(await it.next(), { value: { v: 1 }, done: false });
  const next = it.next();
  await r.server.waitForRequests(2);
  r.set({ v: 2 }, 6);
  assert.deepEqual(await next, { value: { v: 2 }, done: false });
  const [q1, q2] = r.queries();
  assert.equal(q1?.has("index"), false, "the first read does not block");
  assert.equal(q1?.get("wait"), "1500ms");
  assert.equal(q1?.get("by"), "destination");
  assert.equal(q2?.get("index"), "5");
  assert.equal(q2?.get("wait"), "1500ms");
});

test("index mode: a wait that ends with the same index is not yielded again", async (t) => {
  const r = await startResource(t, "index", { value: "a", version: 7 });
  const { it } = start(t, client(t, r.server), spec("index", { waitMs: 5 }));
  assert.equal((await it.next()).value, "a");
  const next = it.next();
  await r.server.waitForRequests(4); // at least two waits ended unchanged
  r.set("b", 8);
  assert.equal((await next).value, "b");
  assert.ok(r.queries().slice(1).every((q) => q.get("index") === "7" || q.get("index") === "8"));
});

test("index mode: an index that goes backwards resets to a non-blocking read", async (t) => {
  const r = await startResource(t, "index", { value: "old", version: 10 });
  const { it } = start(t, client(t, r.server), spec("index"));
  assert.equal((await it.next()).value, "old");
  const next = it.next();
  await r.server.waitForRequests(2);
  r.set("restarted", 3); // e.g. the agent lost its state
  assert.equal((await next).value, "restarted");
  const idx = r.queries().map((q) => q.get("index"));
  assert.deepEqual(idx.slice(0, 3), [null, "10", null], "after going backwards the next read has no index");
  const after = it.next();
  await r.server.waitForRequests(4);
  assert.equal(r.queries()[3]?.get("index"), "3", "then it blocks on the new, lower index");
  r.set("later", 4);
  assert.equal((await after).value, "later");
});

test("index mode: an index of 0 (or none) is sent back as 1, never 0", async (t) => {
  for (const header of [() => "0", () => undefined]) {
    const r = await startResource(t, "index", { value: "x", version: 0 }, { indexHeader: header });
    const { it, ctl } = start(t, client(t, r.server), spec("index"));
    assert.equal((await it.next()).value, "x");
    const next = it.next();
    await r.server.waitForRequests(2);
    assert.equal(r.queries()[1]?.get("index"), "1");
    ctl.abort();
    assert.deepEqual(await next, { value: undefined, done: true });
  }
});

test("hash mode: blocks with ?hash=<last>, yields on a different hash, ignores an equal one", async (t) => {
  const r = await startResource(t, "hash", { value: { ContentHash: "aa01" }, version: "aa01" });
  const { it } = start(t, client(t, r.server), spec("hash", { waitMs: 5 }));
  assert.deepEqual((await it.next()).value, { ContentHash: "aa01" });
  const next = it.next();
  await r.server.waitForRequests(3); // a wait ended with the same hash: not yielded
  r.set({ ContentHash: "bb02" }, "bb02");
  assert.deepEqual((await next).value, { ContentHash: "bb02" });
  const hashes = r.queries().map((q) => q.get("hash"));
  assert.equal(hashes[0], null, "the first read has no hash and answers at once");
  assert.ok(hashes.slice(1).every((h) => h === "aa01" || h === "bb02"));
  assert.equal(r.queries().some((q) => q.has("index")), false, "hash mode never sends ?index");
});

test("hash mode: falls back to the body's ContentHash when the header is missing", async (t) => {
  let n = 0;
  const server = await startHttpServer(t, (_req, res) => {
    n += 1;
    sendJson(res, 200, { ContentHash: n === 1 ? "h1" : "h2" });
  });
  const { it } = start(t, client(t, server), spec("hash"));
  assert.deepEqual((await it.next()).value, { ContentHash: "h1" });
  assert.deepEqual((await it.next()).value, { ContentHash: "h2" });
  assert.equal(new URL(server.requests[1]?.url ?? "", "http://x").searchParams.get("hash"), "h1");
});

test("errors are reported to onError with a failure count, backed off, and the watch resumes", async (t) => {
  let n = 0;
  const server = await startHttpServer(t, (_req, res) => {
    n += 1;
    if (n <= 3) return sendText(res, 500, "rpc error: No cluster leader");
    sendJson(res, 200, { ok: true }, { "X-Consul-Index": "12" });
  });
  const seen: Array<[string, number]> = [];
  const { it } = start(t, client(t, server), spec("index"), { onError: (e, failures) => seen.push([e.code, failures]) });
  assert.deepEqual((await it.next()).value, { ok: true });
  assert.deepEqual(seen, [
    ["http_status", 1],
    ["http_status", 2],
    ["http_status", 3],
  ]);
});

test("a body the parser rejects is a bad_body error naming the endpoint and field; the watch retries", async (t) => {
  let n = 0;
  const server = await startHttpServer(t, (_req, res) => {
    n += 1;
    sendJson(res, 200, { Name: n === 1 ? 42 : "web" }, { "X-Consul-Index": "3" });
  });
  const errors: AgentError[] = [];
  const parse = (b: unknown) => {
    const name = (b as { Name: unknown }).Name;
    if (typeof name !== "string") throw new AgentError("bad_body", "thing.Name: expected string, got number");
    return name;
  };
  const { it } = start(t, client(t, server), { ...spec("index"), parse }, { onError: (e) => errors.push(e) });
  assert.equal((await it.next()).value, "web");
  assert.equal(errors.length, 1);
  assert.equal(errors[0]?.code, "bad_body");
  assert.match(errors[0]?.message ?? "", /^GET \/v1\/test\/resource: bad body: thing\.Name: expected string/);
});

test("aborting ends a pending next() without throwing, mid-request and mid-back-off", async (t) => {
  const r = await startResource(t, "index", { value: 1, version: 2 });
  const { it, ctl } = start(t, client(t, r.server), spec("index"));
  await it.next();
  const pending = it.next();
  await r.server.waitForRequests(2); // parked in a blocking query
  ctl.abort();
  assert.deepEqual(await pending, { value: undefined, done: true });

  const failing = await startHttpServer(t, (_req, res) => sendText(res, 500, "boom"));
  const ctl2 = new AbortController();
  t.after(() => ctl2.abort());
  let failures = 0;
  let backingOff!: () => void;
  const onErrorSeen = new Promise<void>((resolve) => (backingOff = resolve));
  const slow = watch(client(t, failing), spec("index"), {
    signal: ctl2.signal,
    backoff: { initialMs: 600_000, maxMs: 600_000 },
    onError: () => {
      failures += 1;
      backingOff();
    },
  })[Symbol.asyncIterator]();
  const stuck = slow.next();
  await onErrorSeen; // now sleeping for 5 to 10 minutes
  ctl2.abort();
  assert.deepEqual(await stuck, { value: undefined, done: true });
  assert.equal(failures, 1);
});

test("an already aborted signal yields nothing and sends nothing", async (t) => {
  const server = await startHttpServer(t, (_req, res) => sendJson(res, 200, {}));
  const ctl = new AbortController();
  ctl.abort();
  const got: unknown[] = [];
  for await (const v of watch(client(t, server), spec("index"), { signal: ctl.signal })) got.push(v);
  assert.deepEqual(got, []);
  assert.equal(server.requests.length, 0);
});

test("closing the client ends the watch", async (t) => {
  const r = await startResource(t, "index", { value: 1, version: 2 });
  const agent = client(t, r.server);
  const { it } = start(t, agent, spec("index"));
  await it.next();
  const pending = it.next();
  await r.server.waitForRequests(2);
  await agent.close();
  assert.deepEqual(await pending, { value: undefined, done: true });
});

test("breaking out of for-await stops the watch", async (t) => {
  const r = await startResource(t, "index", { value: "only", version: 4 });
  const ctl = new AbortController();
  t.after(() => ctl.abort());
  for await (const v of watch(client(t, r.server), spec("index"), { signal: ctl.signal, ...QUICK })) {
    assert.equal(v, "only");
    break;
  }
  assert.equal(r.server.requests.length, 1);
});

test("token bucket: a burst of 2, then one request per interval", () => {
  let now = 0;
  const bucket = createTokenBucket({ burst: 2, intervalMs: 1000, now: () => now });
  assert.equal(bucket.take(), 0);
  assert.equal(bucket.take(), 0);
  assert.equal(bucket.take(), 1000, "third request in a hot loop waits a full interval");
  now += 1000; // the caller waited
  assert.equal(bucket.take(), 1000);
  now += 1000;
  now += 10_000; // a long blocking query: the bucket refills, but only up to the burst
  assert.equal(bucket.take(), 0);
  assert.equal(bucket.take(), 0);
  assert.equal(bucket.take(), 1000);
  assert.equal(createTokenBucket({ burst: 2, intervalMs: 0, now: () => 0 }).take(), 0, "interval 0 disables the limit");
});

test("back-off doubles from the initial step to the cap, with jitter in [step/2, step)", () => {
  const o = { initialMs: 250, maxMs: 30_000 };
  assert.equal(backoffDelayMs(1, o, () => 0), 125);
  assert.equal(backoffDelayMs(1, o, () => 0.999999) < 250, true);
  assert.equal(backoffDelayMs(2, o, () => 0), 250);
  assert.equal(backoffDelayMs(3, o, () => 0), 500);
  assert.equal(backoffDelayMs(8, o, () => 0), 15_000);
  assert.equal(backoffDelayMs(9, o, () => 0), 15_000, "capped at maxMs");
  assert.equal(backoffDelayMs(1000, o, () => 0.5), 22_500);
});

test("an unreachable agent is retried at least every 2 s however long it was down; other errors back off to the cap", () => {
  const o = { initialMs: 250, maxMs: 30_000 };
  const down = new AgentError("unreachable", "GET /v1/agent/connect/ca/leaf/web: agent unreachable: ECONNREFUSED");
  const denied = new AgentError("acl_denied", "Permission denied", { status: 403 });
  const top = () => 0.999999; // the longest jitter
  for (const failures of [1, 3, 5, 8, 20, 1000]) {
    assert.ok(retryDelayMs(down, failures, o, top) < UNREACHABLE_RETRY_MAX_MS, `failure ${failures}`);
    assert.equal(retryDelayMs(denied, failures, o, top), backoffDelayMs(failures, o, top));
  }
  assert.equal(UNREACHABLE_RETRY_MAX_MS, 2_000);
  assert.ok(retryDelayMs(denied, 20, o, top) > 29_000, "a 403 still backs off to 30 s");
  assert.equal(retryDelayMs(down, 2, o, () => 0), 250, "early retries follow the usual back-off");
});
