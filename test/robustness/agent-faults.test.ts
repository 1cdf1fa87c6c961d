// A failing agent, through a stand-in in front of the real dev agent: a slow authorize, 500s,
// malformed JSON, wrong types, truncated and oversized bodies, and certificates that do not verify.
// Nothing the agent says is trusted before it is validated: a bad answer never admits a client,
// and a bad certificate never replaces good material.
import assert from "node:assert/strict";
import { test } from "../support/leaks.js";
import { makeCa } from "../certs/fixtures.js";
import { closed, closedWith, dial, roundTrip, startRig, type FaultAction } from "./rig.js";

const AUTHORIZE = "/v1/agent/connect/authorize";
const LEAF = "/v1/agent/connect/ca/leaf/api";

test("a slow authorize is cut at the handshake deadline while a client with a cached decision is still served", async (t) => {
  const rig = await startRig(t, { handshakeTimeoutMs: 1500 });
  await rig.setIntention("web", "allow");
  await rig.setIntention("slow", "allow");
  const roots = await rig.rootPems();
  const web = await rig.client("web");
  const slow = await rig.client("slow");
  assert.equal((await roundTrip(await dial(rig.port, web, roots), "warm")).toString(), "warm"); // caches web's allow

  rig.proxy.set((r) => (r.path === AUTHORIZE ? { t: "delay", ms: 6000 } : undefined));
  const asked = rig.proxy.next((r) => r.path === AUTHORIZE);
  const stuck = await dial(rig.port, slow, roots);
  await asked;
  // While slow's authorize hangs, web (a cache hit: no I/O) is served.
  assert.equal((await roundTrip(await dial(rig.port, web, roots), "served")).toString(), "served");
  await closedWith(rig.cap, "handshake_timeout", slow.uri);
  await closed(stuck);
  assert.equal(rig.app.accepts, 2, "the slow source never reached the app");
});

test("authorize answers that are errors, malformed, mistyped, truncated or oversized never admit a client", async (t) => {
  const rig = await startRig(t);
  const roots = await rig.rootPems();
  const huge = JSON.stringify({ Authorized: true, Reason: "x".repeat(9 * 1024 * 1024) }); // over the 8 MiB cap
  const faults: Array<[string, FaultAction]> = [
    ["s500", { t: "status", status: 500, body: "rpc error: No cluster leader" }],
    ["malformed", { t: "json", body: '{"Authorized": tru' }],
    ["string-bool", { t: "json", body: '{"Authorized":"true","Reason":"ok"}' }],
    ["number-bool", { t: "json", body: '{"Authorized":1}' }],
    ["array", { t: "json", body: "[true]" }],
    ["truncated", { t: "truncate", declaredBytes: 200, body: '{"Authorized":true' }],
    ["huge", { t: "json", body: huge }],
  ];
  for (const [source] of faults) await rig.setIntention(source, "allow"); // the real agent would allow every one
  for (const [source, action] of faults) {
    rig.proxy.set((r) => (r.path === AUTHORIZE ? action : undefined));
    const c = await rig.client(source);
    const sock = await dial(rig.port, c, roots);
    const line = await closedWith(rig.cap, "authz_unavailable", c.uri);
    assert.equal(line.source, c.uri, source);
    await closed(sock);
  }
  assert.equal(rig.app.accepts, 0, "no bad answer admitted anyone");
  // With the agent healthy again, the same sources are allowed.
  rig.proxy.set(undefined);
  const ok = await rig.client("s500");
  assert.equal((await roundTrip(await dial(rig.port, ok, roots), "ok")).toString(), "ok");
});

test("leaf answers that fail (500, malformed, mistyped, truncated, oversized) or do not verify keep the previous material", async (t) => {
  const rig = await startRig(t);
  await rig.setIntention("web", "allow");
  const roots = await rig.rootPems();
  const web = await rig.client("web");
  const before = rig.certs.current();
  assert.ok(before);

  const failures: Array<[string, FaultAction]> = [
    ["http_status", { t: "status", status: 500, body: "internal error" }],
    ["bad_body", { t: "json", body: "{not json" }],
    ["bad_body", { t: "json", body: '{"SerialNumber":7,"CertPEM":[]}' }],
    ["unreachable", { t: "truncate", declaredBytes: 5000, body: '{"SerialNumber":"' }],
    ["bad_body", { t: "json", body: JSON.stringify({ pad: "x".repeat(9 * 1024 * 1024) }) }],
  ];
  for (const [code, action] of failures) {
    const logged = rig.cap.lines.length;
    rig.proxy.set((r) => (r.path === LEAF ? action : undefined));
    await rig.cap.next((l) => rig.cap.lines.indexOf(l) >= logged && l.msg === "certificate watch failed; retrying" && l.code === code);
    assert.equal(rig.certs.current(), before, `material kept after ${code}`);
  }

  // A well-formed leaf from a CA this mesh does not trust: parsed, checked, refused.
  const foreign = await (await makeCa()).issueLeaf({ service: "api" });
  const l = foreign.leaf;
  const body = JSON.stringify({
    SerialNumber: l.serialNumber, CertPEM: l.certPem, PrivateKeyPEM: l.privateKeyPem, Service: "api", ServiceURI: l.serviceUri,
    ValidAfter: l.validAfter.toISOString(), ValidBefore: l.validBefore.toISOString(), ModifyIndex: 999999,
  });
  rig.proxy.set((r) => (r.path === LEAF ? { t: "json", body } : undefined));
  await rig.cap.next((line) => line.msg === "refused TLS material update; kept the previous material");
  assert.ok(rig.rejected.includes("bad_chain"), `rejections: ${rig.rejected.join(", ")}`);
  assert.equal(rig.certs.current(), before);
  assert.ok(!JSON.stringify(rig.cap.lines).includes("PRIVATE KEY"), "no private key in any log line");

  // Clients still see the previous leaf and are served.
  const sock = await dial(rig.port, web, roots);
  assert.equal(sock.getPeerCertificate().serialNumber.toLowerCase(), before.leafSerial.replaceAll(":", "").toLowerCase());
  assert.equal((await roundTrip(sock, "kept")).toString(), "kept");
});

test("roots answers that fail or name no usable root keep the previous material", async (t) => {
  const rig = await startRig(t);
  const before = rig.certs.current();
  assert.ok(before);
  const cases: FaultAction[] = [
    { t: "status", status: 503, body: "no leader" },
    { t: "json", body: '{"ActiveRootID":"x","TrustDomain":"t.consul","Roots":[{"ID":"x","RootCert":42}]}' },
    { t: "json", body: '{"ActiveRootID":"","TrustDomain":"","Roots":null}' }, // Connect not bootstrapped: no roots
  ];
  for (const action of cases) {
    const seen = rig.cap.lines.length;
    rig.proxy.set((r) => (r.path === "/v1/agent/connect/ca/roots" ? action : undefined));
    await rig.cap.next(
      (l) => rig.cap.lines.indexOf(l) >= seen && (l.msg === "certificate watch failed; retrying" || l.msg === "refused TLS material update; kept the previous material"),
    );
    assert.equal(rig.certs.current(), before);
  }
  assert.ok(rig.rejected.length >= 1, "the empty roots were refused by the check, not trusted");
});
