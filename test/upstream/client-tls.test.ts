import assert from "node:assert/strict";
import { once } from "node:events";
import { test } from "../support/leaks.js";
import { createMaterialHolder, type MaterialHolder } from "../../src/certs/index.js";
import { makeCa, rootsOf, type TestCa } from "../certs/fixtures.js";
import { startBlackHole } from "../sockets.js";
import { closedWithData, connectionLine, counterValue, dial, portOf, roundTrip, SELF, startMesh, upstream, type Mesh } from "./harness.js";
import { until } from "../support/wait.js";

/** A cert store the test feeds from its own CAs: `ca` (our trust domain) plus any extra trusted roots. */
async function holderWith(mesh: Mesh, ca: TestCa, extraRoots: TestCa[] = []): Promise<MaterialHolder> {
  const holder = createMaterialHolder({ log: mesh.log.log, now: Date.now });
  holder.setRoots(rootsOf([ca, ...extraRoots]));
  holder.setLeaf((await ca.issueLeaf({ service: SELF })).leaf);
  await holder.ready();
  return holder;
}

test("a server presenting a valid leaf of another service is refused with wrong_server_identity", async (t) => {
  const mesh = await startMesh(t);
  const other = await mesh.leafFor("other");
  await mesh.startInstance({ service: "db", id: "db-1", leaf: { key: other.privateKeyPem, certChain: other.certPem } });
  const ups = mesh.upstreams();
  await ups.apply([upstream("db")]);

  const c = await dial(portOf(ups, "db"));
  c.write("secret for db only");
  assert.equal(await closedWithData(c), "");
  const line = await connectionLine(mesh.log, "wrong_server_identity");
  assert.match(String(line.detail), /\/svc\/other$/);
  assert.equal(await counterValue(mesh.metrics.upstreamDialFailures, { upstream: "db", reason: "wrong_server_identity" }), 1);
});

test("a server whose chain does not lead to our roots is refused with bad_chain", async (t) => {
  const mesh = await startMesh(t);
  const stranger = await makeCa({ trustDomain: mesh.dev.trustDomain }); // same name, different key
  const leaf = await stranger.issueLeaf({ service: "db" });
  await mesh.startInstance({ service: "db", id: "db-1", leaf: { key: leaf.keyPem, certChain: leaf.certPem } });
  const ups = mesh.upstreams();
  await ups.apply([upstream("db")]);
  const c = await dial(portOf(ups, "db"));
  assert.equal(await closedWithData(c), "");
  await connectionLine(mesh.log, "bad_chain");
});

test("a server of another trust domain is refused even when its CA is trusted (stricter than Consul)", async (t) => {
  const mesh = await startMesh(t);
  const ours = await makeCa();
  const theirs = await makeCa(); // another trust domain, whose root we nevertheless trust
  const certs = await holderWith(mesh, ours, [theirs]);
  const foreign = await theirs.issueLeaf({ service: "db" });
  await mesh.startInstance({ service: "db", id: "db-foreign", leaf: { key: foreign.keyPem, certChain: foreign.certPem }, ca: [ours.certPem] });
  const ups = mesh.upstreams({ certs });
  await ups.apply([upstream("db")]);
  const c = await dial(portOf(ups, "db"));
  assert.equal(await closedWithData(c), "");
  const line = await connectionLine(mesh.log, "wrong_server_identity");
  assert.match(String(line.detail), new RegExp(`spiffe://${theirs.trustDomain}/`));

  // The same service name in our trust domain, same CA set: accepted.
  const good = await ours.issueLeaf({ service: "DB" }); // names compare case-insensitively
  await mesh.startInstance({ service: "db", id: "db-good", leaf: { key: good.keyPem, certChain: good.certPem }, ca: [ours.certPem] });
  await mesh.fail("db-foreign-ttl");
  await until(() => ups.status()[0]!.instances.length === 1, "only the good instance left");
  assert.equal(await roundTrip(portOf(ups, "db"), "hello"), "hello");
});

test("a failing handshake fails over to the next instance within connect_timeout_ms", async (t) => {
  const mesh = await startMesh(t);
  const holePort = (await startBlackHole(t)).port; // accepts TCP, never answers the ClientHello
  await mesh.put("/v1/agent/service/register", {
    Name: "db", ID: "db-hole", Address: "127.0.0.1", Port: holePort, Connect: { Native: true },
    Check: { CheckID: "db-hole-ttl", TTL: "600s", Status: "passing" },
  });
  const good = await mesh.startInstance({ service: "db", id: "db-good" });
  const wrong = await mesh.leafFor("other");
  await mesh.startInstance({ service: "db", id: "db-wrong", leaf: { key: wrong.privateKeyPem, certChain: wrong.certPem } });

  const ups = mesh.upstreams({ now: () => 1_000_000 }); // frozen: ejections last the whole test
  await ups.apply([upstream("db", { config: { connect_timeout_ms: 4000 } })]);
  const port = portOf(ups, "db");
  await until(() => ups.status()[0]!.instances.length === 3, "three instances discovered");
  const results = await Promise.all(Array.from({ length: 6 }, (_, i) => roundTrip(port, `m${i}`)));
  assert.deepEqual(results, Array.from({ length: 6 }, (_, i) => `m${i}`));
  for (let i = 0; i < 10; i++) assert.equal(await roundTrip(port, `s${i}`), `s${i}`);
  assert.equal(good.accepts, 16);
  assert.equal(await counterValue(mesh.metrics.connectionsClosed, { listener: "upstream:db", reason: "done" }), 16);
});

test("a connection made before our certificates are ready waits for them, then succeeds", async (t) => {
  const mesh = await startMesh(t);
  const ca = await makeCa();
  const holder = createMaterialHolder({ log: mesh.log.log, now: Date.now });
  const leaf = await ca.issueLeaf({ service: "db" });
  await mesh.startInstance({ service: "db", id: "db-1", leaf: { key: leaf.keyPem, certChain: leaf.certPem }, ca: [ca.certPem] });
  const ups = mesh.upstreams({ certs: holder });
  await ups.apply([upstream("db")]);

  const c = await dial(portOf(ups, "db"));
  c.setEncoding("utf8");
  c.write("early bird");
  const answer = once(c, "data");
  // Let the connection reach its wait: the listener has accepted it and counts it as active.
  await until(async () => (await counterValue(mesh.metrics.connectionsActive, { listener: "upstream:db" })) === 1, "the connection to be accepted");
  holder.setRoots(rootsOf([ca]));
  holder.setLeaf((await ca.issueLeaf({ service: SELF })).leaf);
  assert.equal((await answer)[0], "early bird");
  c.end();
  await once(c, "close");
});

test("reconnects resume the TLS session; a new leaf starts over with a full handshake", async (t) => {
  const mesh = await startMesh(t);
  const ca = await makeCa();
  const holder = await holderWith(mesh, ca);
  const leaf = await ca.issueLeaf({ service: "db" });
  const inst = await mesh.startInstance({ service: "db", id: "db-1", leaf: { key: leaf.keyPem, certChain: leaf.certPem }, ca: [ca.certPem] });
  const ups = mesh.upstreams({ certs: holder });
  await ups.apply([upstream("db")]);
  const port = portOf(ups, "db");

  assert.equal(await roundTrip(port, "one"), "one");
  assert.equal(await roundTrip(port, "two"), "two");
  assert.deepEqual(inst.reused, [false, true]);

  holder.setLeaf((await ca.issueLeaf({ service: SELF })).leaf); // rotation: cached sessions are dropped
  assert.equal(await roundTrip(port, "three"), "three");
  assert.equal(await roundTrip(port, "four"), "four");
  assert.deepEqual(inst.reused, [false, true, false, true]);
});

test("the real cert store: a second connection to an instance is resumed", async (t) => {
  const mesh = await startMesh(t);
  const inst = await mesh.startInstance({ service: "db", id: "db-1" });
  const ups = mesh.upstreams();
  await ups.apply([upstream("db")]);
  const port = portOf(ups, "db");
  assert.equal(await roundTrip(port, "a"), "a");
  assert.equal(await roundTrip(port, "b"), "b");
  assert.deepEqual(inst.reused, [false, true]);
});
