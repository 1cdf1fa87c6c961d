import assert from "node:assert/strict";
import { test, type TestContext } from "node:test";
import tls from "node:tls";
import { pino } from "pino";
import { createAgentClient, resolveAgentConfig } from "../../src/agent/index.js";
import { createCertStore, createMaterialHolder, type MaterialRejectReason, type TlsMaterial } from "../../src/certs/index.js";
import { startDevAgent } from "../../src/dev-agent/index.js";
import { rotateRootBody } from "../dev-agent/ca-rotation.js";
import { captureLog } from "../support/log-capture.js";
import { makeCa, rootsOf } from "./fixtures.js";

function holderWithLog() {
  const { log, lines, raw } = captureLog();
  const rejected: MaterialRejectReason[] = [];
  const holder = createMaterialHolder({ log, now: Date.now, onRejected: (r) => rejected.push(r) });
  const published: TlsMaterial[] = [];
  holder.subscribe((m) => published.push(m));
  return { holder, lines, raw, rejected, published };
}

test("material is published once both leaf and roots are known, and ready() resolves with it", async () => {
  const ca = await makeCa();
  const { leaf } = await ca.issueLeaf({ service: "web" });
  const { holder, lines, rejected, published } = holderWithLog();
  const ready = holder.ready();

  holder.setLeaf(leaf);
  assert.equal(holder.current(), undefined, "no roots yet");
  assert.equal(lines.filter((l) => l.level >= 40).length, 0, "waiting for roots is not a warning");
  holder.setRoots(rootsOf([ca]));

  const m = await ready;
  assert.equal(holder.current(), m);
  assert.deepEqual(published, [m]);
  assert.deepEqual(rejected, []);
  assert.equal(m.leafSerial, leaf.serialNumber);
  assert.equal(await holder.ready(), m, "later ready() calls resolve at once");
  // The material is directly usable as a TLS context.
  assert.ok(tls.createSecureContext({ key: m.key, cert: m.certChain, ca: m.ca }));
});

test("a bad update keeps the previous material, warns with the reason and reports it", async () => {
  const ca = await makeCa();
  const stranger = await makeCa();
  const good = await ca.issueLeaf();
  const { holder, lines, raw, rejected, published } = holderWithLog();
  holder.setRoots(rootsOf([ca]));
  holder.setLeaf(good.leaf);
  const before = holder.current()!;

  const bad = await stranger.issueLeaf();
  holder.setLeaf(bad.leaf);
  holder.setLeaf({ ...good.leaf, privateKeyPem: bad.keyPem });

  assert.equal(holder.current(), before, "the old material stays in use");
  assert.deepEqual(rejected, ["bad_chain", "key_mismatch"]);
  assert.equal(published.length, 1, "subscribers hear only good material");
  const warnings = lines.filter((l) => l.level === 40);
  assert.deepEqual(warnings.map((w) => w.reason), ["bad_chain", "key_mismatch"]);
  const everything = raw.join("");
  assert.ok(!everything.includes("PRIVATE KEY") && !everything.includes(good.keyPem.split("\n")[1]!), "no key in the logs");
});

test("a root rotation is followed through: both roots trusted, then the new leaf", async () => {
  const oldCa = await makeCa();
  const newCa = await makeCa({ trustDomain: oldCa.trustDomain });
  const { holder, rejected, published } = holderWithLog();
  const oldLeaf = await oldCa.issueLeaf();
  holder.setRoots(rootsOf([oldCa]));
  holder.setLeaf(oldLeaf.leaf);

  holder.setRoots(rootsOf([oldCa, newCa], { activeIndex: 1 })); // the old root stays, inactive
  assert.deepEqual(holder.current()!.ca, [oldCa.certPem, newCa.certPem]);
  assert.equal(holder.current()!.leafSerial, oldLeaf.serial);

  holder.setRoots(rootsOf([newCa])); // the old root leaves before our new leaf arrives: refused for now
  assert.deepEqual(rejected, ["bad_chain"]);
  assert.equal(holder.current()!.ca.length, 2, "still the material that works");

  const newLeaf = await newCa.issueLeaf();
  holder.setLeaf(newLeaf.leaf); // checked against the latest roots, not the published ones
  assert.deepEqual(holder.current()!.ca, [newCa.certPem]);
  assert.equal(holder.current()!.leafSerial, newLeaf.serial);
  assert.equal(published.length, 3);
});

test("new roots are trusted while our leaf is expired; the leaf stays what we present until its renewal", async () => {
  const ca = await makeCa();
  const next = await makeCa({ trustDomain: ca.trustDomain });
  const { leaf } = await ca.issueLeaf({ service: "web" });
  const { log, lines } = captureLog();
  let nowMs = Date.now();
  const holder = createMaterialHolder({ log, now: () => nowMs });
  const published: TlsMaterial[] = [];
  holder.subscribe((m) => published.push(m));
  holder.setRoots(rootsOf([ca]));
  holder.setLeaf(leaf);
  const before = holder.current()!;

  nowMs = before.leafNotAfter.getTime() + 1_000; // the renewal is late: our leaf has just expired
  holder.setRoots(rootsOf([ca, next], { activeIndex: 1 }));
  const after = holder.current()!;
  assert.equal(published.length, 2, "the rotated roots are published");
  assert.equal(after.rootFingerprints.length, 2);
  assert.deepEqual(after.ca, rootsOf([ca, next]).roots.map((r) => r.rootCertPem));
  assert.equal(after.leafSerial, before.leafSerial, "the leaf we present is unchanged");
  assert.ok(lines.some((l) => l.level === 40 && /applied new roots; our leaf is expired/.test(l.msg)));

  holder.setLeaf(leaf); // the same expired leaf again is still refused as a whole
  assert.equal(holder.current(), after);
  const foreign = await makeCa({ trustDomain: "other.consul" });
  holder.setRoots(rootsOf([foreign])); // roots of another trust domain are not ours to trust with this leaf
  assert.equal(holder.current(), after);

  const renewed = await next.issueLeaf({ service: "web" });
  nowMs = Date.now();
  holder.setRoots(rootsOf([ca, next], { activeIndex: 1 }));
  holder.setLeaf(renewed.leaf);
  assert.equal(holder.current()!.leafSerial, renewed.leaf.serialNumber);
});

test("ready() rejects on abort and on close, and a throwing subscriber does not stop the others", async () => {
  const ca = await makeCa();
  const { log, lines } = captureLog();
  const holder = createMaterialHolder({ log, now: Date.now });
  const ac = new AbortController();
  const aborted = holder.ready(ac.signal);
  ac.abort(new Error("gave up"));
  await assert.rejects(aborted, /gave up/);

  const seen: string[] = [];
  const unsubscribe = holder.subscribe(() => {
    throw new Error("boom");
  });
  holder.subscribe((m) => seen.push(m.leafSerial));
  const { leaf } = await ca.issueLeaf();
  holder.setRoots(rootsOf([ca]));
  holder.setLeaf(leaf);
  assert.deepEqual(seen, [leaf.serialNumber]);
  assert.ok(lines.some((l) => l.level === 50 && /subscriber failed/.test(l.msg)));
  unsubscribe();

  const empty = createMaterialHolder({ log, now: Date.now });
  const pending = empty.ready();
  empty.close();
  empty.close();
  await assert.rejects(pending, /closed/);
});

async function devAgentClient(t: TestContext, opts: { leafCertTtlMs?: number } = {}) {
  const dev = await startDevAgent({ leafReissueWindowMs: 10, ...opts });
  t.after(() => dev.stop());
  const cfg = resolveAgentConfig({ httpAddr: dev.address, token: dev.managementToken }, {});
  const agent = createAgentClient(cfg, { log: pino({ level: "silent" }) });
  t.after(() => agent.close());
  return { dev, agent };
}

test("the cert store follows a dev agent's roots and leaf, through a CA rotation", async (t) => {
  const { dev, agent } = await devAgentClient(t);
  const { log } = captureLog();
  const rejected: MaterialRejectReason[] = [];
  const store = createCertStore(agent, { service: "web" }, { log, now: Date.now, onRejected: (r) => rejected.push(r) });
  t.after(() => store.close());

  const first = await store.ready(AbortSignal.timeout(30_000));
  assert.equal(first.trustDomain, dev.trustDomain);
  assert.equal(first.serviceUri, `spiffe://${dev.trustDomain}/ns/default/dc/${dev.datacenter}/svc/web`);
  assert.equal(first.ca.length, 1);

  // Rotate the CA; the agent reissues the leaf within the (shortened) jitter window.
  const rotated = new Promise<TlsMaterial>((resolve) => {
    const off = store.subscribe((m) => {
      if (m.ca.length === 2 && m.leafSerial !== first.leafSerial) {
        off();
        resolve(m);
      }
    });
  });
  await agent.request({
    method: "PUT",
    path: "/v1/connect/ca/configuration",
    body: rotateRootBody(),
  });
  const m = await rotated;
  assert.equal(store.current(), m);
  assert.ok(m.ca.includes(first.ca[0]!), "the old root is still trusted during the rotation");
  // The two watches are independent: a new leaf may arrive before the roots that sign it, and is
  // refused until they do. Nothing else may be refused.
  assert.ok(rejected.every((r) => r === "bad_chain"), rejected.join());
  store.close();
});
