import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { mkdtemp, rm } from "node:fs/promises";
import { connect as netConnect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestContext } from "node:test";
import { connect as tlsConnect } from "node:tls";
import { promisify } from "node:util";
import { startPublicListener, type PublicListener, type PublicListenerOptions } from "../../src/listener/index.js";
import type { Metrics } from "../../src/ops/index.js";
import { makeCa, rootsOf, type TestCa } from "../certs/fixtures.js";
import { canBind } from "../../src/net/index.js";
import { peerHost } from "../net/netns.js";
import { test } from "../support/leaks.js";
import { until } from "../support/wait.js";
import {
  captureLog, closed, closedWith, dial, echo, fakeAuthz, imbalance, makeMesh, metricValue, roundTrip, startApp,
  testMetrics, type FakeAuthz, type TestApp,
} from "./harness.js";

interface Setup {
  listener: PublicListener;
  port: number;
  app: TestApp;
  ca: TestCa;
  caPems: string[];
  authz: FakeAuthz;
  metrics: Metrics;
  cap: ReturnType<typeof captureLog>;
  mesh: Awaited<ReturnType<typeof makeMesh>>;
  /** A client leaf for `service` from the mesh CA, allowed unless the test says otherwise. */
  client(service?: string): Promise<{ certPem: string; keyPem: string; uri: string }>;
}

const execFileP = promisify(execFile);

async function setup(t: TestContext, opts: Partial<PublicListenerOptions> & { greeting?: string; cachedAuthz?: boolean } = {}): Promise<Setup> {
  const cap = captureLog();
  const mesh = await makeMesh(cap.log);
  const app = await startApp(opts.greeting !== undefined ? { greeting: opts.greeting } : {});
  const authz = fakeAuthz({}, { cached: opts.cachedAuthz ?? false });
  const metrics = testMetrics();
  const listener = await startPublicListener(
    {
      bind: opts.bind ?? { host: "127.0.0.1", port: 0 },
      app: { host: "127.0.0.1", port: app.port },
      handshakeTimeoutMs: opts.handshakeTimeoutMs ?? 10_000,
      localConnectTimeoutMs: opts.localConnectTimeoutMs ?? 1000,
      allowNonLoopbackApp: false,
      ...(opts.maxConns !== undefined ? { maxConns: opts.maxConns } : {}),
      ...(opts.idleTimeoutMs !== undefined ? { idleTimeoutMs: opts.idleTimeoutMs } : {}),
      ...(opts.keepAliveMs !== undefined ? { keepAliveMs: opts.keepAliveMs } : {}),
      ...(opts.protocol !== undefined ? { protocol: opts.protocol } : {}),
    },
    { certs: mesh.store, authz, log: cap.log, metrics },
  );
  t.after(async () => {
    listener.destroy();
    await listener.close();
    await app.close();
    mesh.store.close();
    assert.equal(await imbalance(metrics), 0, "accepted = closed + active");
  });
  return {
    listener,
    port: listener.address().port,
    app,
    ca: mesh.ca,
    caPems: [mesh.ca.certPem],
    authz,
    metrics,
    cap,
    mesh,
    async client(service = "web") {
      const leaf = await mesh.ca.issueLeaf({ service });
      authz.verdicts.set(leaf.uri, "allow");
      return { certPem: leaf.certPem, keyPem: leaf.keyPem, uri: leaf.uri };
    },
  };
}

test("an allowed source reaches the app and bytes round-trip unchanged, with half-close", async (t) => {
  const s = await setup(t);
  const creds = await s.client("web");
  const sock = await dial(s.port, creds, s.caPems);
  const payload = randomBytes(1 << 20);
  const back = await roundTrip(sock, payload);
  assert.ok(back.equals(payload), "echoed bytes equal the bytes sent");
  const line = await closedWith(s.cap, "done");
  assert.equal(line.source, creds.uri);
  assert.equal(line.listener, "public");
  assert.equal(line.bytesIn, payload.length);
  assert.equal(line.bytesOut, payload.length);
  assert.equal(typeof line.durationMs, "number");
  assert.match(String(line.peer), /^127\.0\.0\.1:\d+$/);
  assert.equal(s.app.accepts, 1);
  assert.equal(await metricValue(s.metrics.receivedBytes, { listener: "public" }), payload.length);
  assert.equal(await metricValue(s.metrics.sentBytes, { listener: "public" }), payload.length);
  assert.equal(await metricValue(s.metrics.connectionsClosed, { listener: "public", reason: "done" }), 1);
  assert.equal((await s.metrics.handshakeDuration.get()).values.find((v) => v.metricName?.endsWith("_count"))?.value, 1);
  assert.equal(s.cap.closed().length, 1, "one log line per connection");
});

test("a server-speaks-first app's greeting reaches the client before it sends anything", async (t) => {
  const s = await setup(t, { greeting: "220 hello\r\n", cachedAuthz: true });
  const sock = await dial(s.port, await s.client(), s.caPems);
  const [first] = (await once(sock, "data")) as [Buffer];
  assert.equal(first.toString(), "220 hello\r\n");
  assert.equal(await echo(sock, "ping"), "ping");
  sock.end();
  await closedWith(s.cap, "done");
});

test("each bad client is rejected with its reason and the app never sees a connection", async (t) => {
  const s = await setup(t, { cachedAuthz: true });
  const otherCa = await makeCa();
  const expiredAt = new Date(Date.now() - 3_600_000);
  const cases: Array<{ reason: string; creds: { certPem: string; keyPem: string } | undefined }> = [
    { reason: "no_client_cert", creds: undefined },
    { reason: "bad_chain", creds: await otherCa.issueLeaf({ service: "web" }) },
    { reason: "cert_expired", creds: await s.ca.issueLeaf({ service: "web", notBefore: new Date(expiredAt.getTime() - 3_600_000), notAfter: expiredAt }) },
    { reason: "wrong_trust_domain", creds: await s.ca.issueLeaf({ service: "web", trustDomain: "11111111-2222-3333-4444-555555555555.consul" }) },
    { reason: "not_a_service", creds: await s.ca.issueLeaf({ uri: `spiffe://${s.ca.trustDomain}/agent/client/dc/dc1/id/node-1` }) },
    { reason: "denied", creds: await s.ca.issueLeaf({ service: "intruder" }) },
  ];
  s.authz.verdicts.set((cases[5]!.creds as unknown as { uri: string }).uri, "denied");
  for (const c of cases) {
    const sock = await dial(s.port, c.creds, s.caPems);
    const line = await closedWith(s.cap, c.reason);
    await closed(sock);
    assert.equal(line.bytesIn, 0);
    assert.equal(await metricValue(s.metrics.connectionsRejected, { listener: "public", reason: c.reason }), 1, c.reason);
  }
  assert.equal(s.app.accepts, 0, "no rejected client reached the app");
  assert.equal(s.listener.activeCount(), 0);
});

test("an authorization outage rejects with authz_unavailable, never reaching the app", async (t) => {
  const s = await setup(t);
  const creds = await s.client();
  s.authz.verdicts.set(creds.uri, "authz_unavailable");
  const sock = await dial(s.port, creds, s.caPems);
  await closedWith(s.cap, "authz_unavailable");
  await closed(sock);
  assert.equal(s.app.accepts, 0);
});

test("a silent client is cut at the handshake deadline without disturbing a live connection", async (t) => {
  const s = await setup(t);
  const live = await dial(s.port, await s.client(), s.caPems);
  assert.equal(await echo(live, "before"), "before");
  s.listener.update({ handshakeTimeoutMs: 300 }); // for connections accepted from now on
  const silent = netConnect(s.port, "127.0.0.1");
  silent.on("error", () => {});
  await closedWith(s.cap, "handshake_timeout");
  await closed(silent);
  assert.equal(await echo(live, "after"), "after", "the live connection still works");
  assert.equal(s.app.accepts, 1);
  live.end();
  await closedWith(s.cap, "done");
});

test("the handshake deadline also covers a slow authorization", async (t) => {
  // Long enough for a handshake on a loaded machine; the held authorization is what runs it out.
  const s = await setup(t, { handshakeTimeoutMs: 1500 });
  const creds = await s.client();
  const release = Promise.withResolvers<void>();
  s.authz.hold = release.promise;
  const sock = await dial(s.port, creds, s.caPems);
  const line = await closedWith(s.cap, "handshake_timeout");
  assert.equal(line.source, creds.uri, "the peer was identified, then timed out waiting for authz");
  release.resolve();
  await closed(sock);
  assert.equal(s.app.accepts, 0);
});

test("garbage, plaintext and a TLS 1.0 offer are cut at once as tls_error", async (t) => {
  const s = await setup(t, { handshakeTimeoutMs: 120_000 }); // the reason, not the deadline, must end them
  const live = await dial(s.port, await s.client(), s.caPems);
  assert.equal(await echo(live, "x"), "x");

  const garbage = netConnect(s.port, "127.0.0.1");
  garbage.on("error", () => {});
  // Fixed bytes: random ones can look like the header of a long TLS or SSLv2 record and be waited for.
  garbage.write(Buffer.from(Array.from({ length: 512 }, (_, i) => i & 0xff)));
  await closedWith(s.cap, "tls_error");
  await closed(garbage);

  const plain = netConnect(s.port, "127.0.0.1");
  plain.on("error", () => {});
  plain.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  await closed(plain);

  const old = tlsConnect({ host: "127.0.0.1", port: s.port, minVersion: "TLSv1", maxVersion: "TLSv1", ciphers: "DEFAULT@SECLEVEL=0", rejectUnauthorized: false });
  old.on("error", () => {});
  await closed(old);

  await s.cap.next(() => s.cap.closed().filter((l) => l.reason === "tls_error").length === 3);
  assert.equal(await metricValue(s.metrics.connectionsRejected, { listener: "public", reason: "tls_error" }), 3);
  assert.equal(await echo(live, "still here"), "still here");
  assert.equal(s.app.accepts, 1);
  live.end();
  await closedWith(s.cap, "done");
});

test("a client that connects and leaves without a handshake is client_reset, not a rejection", async (t) => {
  const s = await setup(t);
  const probe = netConnect(s.port, "127.0.0.1");
  await once(probe, "connect");
  probe.end();
  await closedWith(s.cap, "client_reset");
  assert.equal(await metricValue(s.metrics.connectionsRejected, { listener: "public", reason: "client_reset" }), 0);
});

test("revoking a source closes its live connections and leaves others open", async (t) => {
  const s = await setup(t, { cachedAuthz: true });
  const web = await s.client("web");
  const db = await s.client("db");
  const a = await dial(s.port, web, s.caPems);
  const b = await dial(s.port, web, s.caPems);
  const other = await dial(s.port, db, s.caPems);
  for (const c of [a, b, other]) assert.equal(await echo(c, "hi"), "hi");
  s.authz.revoke(web.uri);
  assert.deepEqual(await Promise.all([closed(a), closed(b)]), ["ECONNRESET", "ECONNRESET"]); // cut, not a clean end
  await s.cap.next(() => s.cap.closed().filter((l) => l.reason === "revoked").length === 2);
  assert.equal(await metricValue(s.metrics.connectionsClosed, { listener: "public", reason: "revoked" }), 2);
  assert.equal(await metricValue(s.metrics.connectionsRevoked, {}), 2);
  assert.equal(await echo(other, "still"), "still");
  const again = await dial(s.port, web, s.caPems);
  await closedWith(s.cap, "denied", web.uri);
  await closed(again);
  other.end();
  await closedWith(s.cap, "done", db.uri);
});

test("rotation: 100 live connections survive a leaf and root change; new handshakes see the new leaf", async (t) => {
  const s = await setup(t, { cachedAuthz: true });
  const creds = await s.client("web");
  const before = await dial(s.port, creds, s.caPems);
  const oldSerial = before.getPeerCertificate().serialNumber;
  before.end();
  await closedWith(s.cap, "done");

  const live = await Promise.all(Array.from({ length: 100 }, () => dial(s.port, creds, s.caPems)));
  await Promise.all(live.map((c, i) => echo(c, `a${i}`)));

  // New CA: the roots carry both (the new one active), the leaf comes from the new CA.
  const newCa = await makeCa({ trustDomain: s.ca.trustDomain });
  const newLeaf = await newCa.issueLeaf({ service: "api" });
  const rotated = new Promise<void>((resolve) => {
    const off = s.mesh.store.subscribe((m) => {
      if (m.leafSerial === newLeaf.serial) {
        off();
        resolve();
      }
    });
  });
  s.mesh.store.setRoots(rootsOf([newCa, s.ca], { activeIndex: 0 }));
  s.mesh.store.setLeaf(newLeaf.leaf);
  await rotated;

  const after = await dial(s.port, creds, [newCa.certPem]); // an old-CA client is still trusted
  const newSerial = after.getPeerCertificate().serialNumber;
  assert.notEqual(newSerial, oldSerial);
  assert.equal(newSerial.toLowerCase(), newLeaf.serial.replaceAll(":", ""));
  assert.equal(await echo(after, "new"), "new");

  const echoes = await Promise.all(live.map((c, i) => echo(c, `b${i}`)));
  assert.deepEqual(echoes, live.map((_, i) => `b${i}`), "every live connection still echoes");
  assert.equal(s.listener.activeCount(), 101);

  // Drop the old root: a client from the old CA is now refused on a new handshake.
  s.mesh.store.setRoots(rootsOf([newCa]));
  await s.cap.next((l) => l.msg === "TLS material updated" && Array.isArray(l.rootFingerprints) && l.rootFingerprints.length === 1);
  const stale = await dial(s.port, creds, [newCa.certPem]);
  await closedWith(s.cap, "bad_chain");
  await closed(stale);
  assert.equal(await echo(live[0]!, "c"), "c");

  for (const c of [...live, after]) c.end();
  await s.cap.next(() => s.cap.closed().filter((l) => l.reason === "done").length === 102);
  assert.equal(s.app.accepts, 102);
});

test("a non-loopback app address is refused at start, and only warned about when allowed", async (t) => {
  const cap = captureLog();
  const mesh = await makeMesh(cap.log);
  t.after(() => mesh.store.close());
  const base = {
    bind: { host: "127.0.0.1", port: 0 },
    app: { host: "10.1.2.3", port: 8080 },
    handshakeTimeoutMs: 1000,
    localConnectTimeoutMs: 1000,
  };
  const deps = { certs: mesh.store, authz: fakeAuthz(), log: cap.log, metrics: testMetrics() };
  await assert.rejects(startPublicListener({ ...base, allowNonLoopbackApp: false }, deps), (err: Error & { code?: string }) => {
    assert.equal(err.code, "config");
    assert.match(err.message, /--allow-non-loopback-app/);
    return true;
  });
  const l = await startPublicListener({ ...base, allowNonLoopbackApp: true }, deps);
  assert.ok(cap.lines.some((x) => x.level === 40 && /not a loopback address/.test(x.msg)), "a loud warn");
  l.update({ app: { host: "192.168.0.1", port: 1 } }); // allowed here too: warns again, does not throw
  await l.close();
});

test("update() rejects a non-loopback app and repoints new connections only", async (t) => {
  const s = await setup(t, { cachedAuthz: true });
  assert.throws(() => s.listener.update({ app: { host: "192.0.2.10", port: 80 } }), (e: Error & { code?: string }) => e.code === "config");
  const creds = await s.client();
  const first = await dial(s.port, creds, s.caPems);
  assert.equal(await echo(first, "one"), "one");
  const app2 = await startApp({ greeting: "app2" });
  t.after(() => app2.close());
  s.listener.update({ app: { host: "127.0.0.1", port: app2.port } });
  const second = await dial(s.port, creds, s.caPems);
  const [g] = (await once(second, "data")) as [Buffer];
  assert.equal(g.toString(), "app2");
  assert.equal(await echo(first, "still one"), "still one");
  assert.equal(s.app.accepts, 1);
  assert.equal(app2.accepts, 1);
  first.end();
  second.end();
  await s.cap.next(() => s.cap.closed().filter((l) => l.reason === "done").length === 2);
});

test("an app that is down gives app_unreachable", async (t) => {
  const s = await setup(t, { cachedAuthz: true });
  const creds = await s.client();
  const down = await startApp();
  const port = down.port;
  await down.close();
  s.listener.update({ app: { host: "127.0.0.1", port } });
  const sock = await dial(s.port, creds, s.caPems);
  await closedWith(s.cap, "app_unreachable", creds.uri);
  await closed(sock);
});

test("an app whose listen backlog is full (it never accepts) gives app_unreachable at local_connect_timeout_ms, and the listener serves the next client", async (t) => {
  const s = await setup(t, { cachedAuthz: true, localConnectTimeoutMs: 300 });
  const creds = await s.client();
  // An app that listens with a backlog of 1 (Node reads 0 as its default, 511) and then stops (SIGSTOP), so it never accepts: once its
  // accept queue holds a connection, the kernel drops further SYNs; a connect neither succeeds nor fails.
  const listen = "require('node:net').createServer().listen({ host: '127.0.0.1', port: 0, backlog: 1 }, function () { console.log(this.address().port) })";
  const stuck = spawn(process.execPath, ["-e", listen], { stdio: ["ignore", "pipe", "inherit"] });
  t.after(() => void stuck.kill("SIGKILL"));
  const [portLine] = (await once(stuck.stdout, "data")) as [Buffer];
  const stuckPort = Number(portLine.toString().trim());
  stuck.kill("SIGSTOP");
  const fillers = [0, 1, 2, 3].map(() => netConnect(stuckPort, "127.0.0.1").on("error", () => {}));
  t.after(() => fillers.forEach((f) => f.destroy()));
  await until(() => fillers.filter((f) => f.readyState === "open").length >= 2, "the stuck app's accept queue to fill");

  s.listener.update({ app: { host: "127.0.0.1", port: stuckPort } });
  const sock = await dial(s.port, creds, s.caPems);
  const line = await closedWith(s.cap, "app_unreachable", creds.uri);
  await closed(sock);
  assert.equal(await metricValue(s.metrics.connectionsRejected, { listener: "public", reason: "app_unreachable" }), 1);
  assert.equal(line.bytesIn ?? 0, 0);

  // The listener is not held up by the stuck dial: the next client to a working app is served.
  s.listener.update({ app: { host: "127.0.0.1", port: s.app.port } });
  const next = await dial(s.port, creds, s.caPems);
  assert.equal(await echo(next, "served"), "served");
  next.end();
  await closedWith(s.cap, "done");
});

test("IPv6 loopback: a public listener on [::1] serves a client over ::1 and dials an app on ::1", async (t) => {
  if (!(await canBind("::1", 0))) return t.skip("this host has no IPv6 loopback (::1): the IPv6 case is not checked");
  const s = await setup(t, { cachedAuthz: true, bind: { host: "::1", port: 0 } });
  const app6 = await startApp({ host: "::1" });
  t.after(() => app6.close());
  s.listener.update({ app: { host: "::1", port: app6.port } });
  assert.deepEqual(s.listener.address(), { host: "::1", port: s.port });
  const creds = await s.client();
  const sock = tlsConnect({ host: "::1", port: s.port, cert: creds.certPem, key: creds.keyPem, ca: s.caPems, checkServerIdentity: () => undefined });
  sock.on("error", () => {});
  await once(sock, "secureConnect");
  assert.equal(await echo(sock, "over IPv6"), "over IPv6");
  assert.equal(app6.accepts, 1);
  assert.equal(app6.sockets.values().next().value?.remoteAddress, "::1", "the app was dialled over ::1");
  sock.end();
  const line = await closedWith(s.cap, "done");
  assert.match(String(line.peer), /^\[::1\]:\d+$/);
});

test("a unix socket app is reachable", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "listener-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const s = await setup(t, { cachedAuthz: true });
  const unixApp = await startApp({ path: join(dir, "app.sock") });
  t.after(() => unixApp.close());
  s.listener.update({ app: { socketPath: join(dir, "app.sock") } });
  const sock = await dial(s.port, await s.client(), s.caPems);
  assert.equal((await roundTrip(sock, "over unix")).toString(), "over unix");
  assert.equal(unixApp.accepts, 1);
  await closedWith(s.cap, "done");
});

test("over maxConns a connection is refused with max_conns", async (t) => {
  const s = await setup(t, { cachedAuthz: true, maxConns: 2 });
  const creds = await s.client();
  const a = await dial(s.port, creds, s.caPems);
  const b = await dial(s.port, creds, s.caPems);
  const extra = netConnect(s.port, "127.0.0.1");
  extra.on("error", () => {});
  await closedWith(s.cap, "max_conns");
  await closed(extra);
  assert.equal(await metricValue(s.metrics.connectionsRejected, { listener: "public", reason: "max_conns" }), 1);
  assert.equal(await echo(a, "a"), "a");
  assert.equal(await echo(b, "b"), "b");
  a.end();
  await closedWith(s.cap, "done");
  const c = await dial(s.port, creds, s.caPems); // room again
  assert.equal(await echo(c, "c"), "c");
  b.end();
  c.end();
  await s.cap.next(() => s.cap.closed().filter((l) => l.reason === "done").length === 3);
});

test("close() stops accepting, lets a live connection finish, then resolves", async (t) => {
  const s = await setup(t, { cachedAuthz: true });
  const live = await dial(s.port, await s.client(), s.caPems);
  assert.equal(await echo(live, "x"), "x");
  let closedDone = false;
  const closing = s.listener.close().then(() => (closedDone = true));
  const refused = netConnect(s.port, "127.0.0.1");
  const [err] = (await once(refused, "error")) as [NodeJS.ErrnoException];
  assert.equal(err.code, "ECONNREFUSED");
  assert.equal(await echo(live, "y"), "y");
  assert.equal(closedDone, false);
  assert.equal(s.listener.activeCount(), 1);
  live.end();
  await closing;
  assert.equal(s.listener.activeCount(), 0);
  assert.equal(await metricValue(s.metrics.connectionsClosed, { listener: "public", reason: "done" }), 1);
});

test("close() refuses connections still handshaking as draining", async (t) => {
  const s = await setup(t);
  const creds = await s.client();
  const release = Promise.withResolvers<void>();
  s.authz.hold = release.promise;
  const waiting = await dial(s.port, creds, s.caPems);
  await until(() => s.authz.decideCalls > 0, "the authorizer to be asked");
  await s.listener.close();
  await closedWith(s.cap, "draining");
  await closed(waiting);
  release.resolve();
  assert.equal(s.app.accepts, 0);
});

test("destroy() cuts live connections as shutdown", async (t) => {
  const s = await setup(t, { cachedAuthz: true });
  const creds = await s.client();
  const conns = await Promise.all([dial(s.port, creds, s.caPems), dial(s.port, creds, s.caPems)]);
  for (const c of conns) assert.equal(await echo(c, "z"), "z");
  s.listener.destroy();
  await Promise.all(conns.map(closed));
  await s.listener.close();
  assert.equal(await metricValue(s.metrics.connectionsClosed, { listener: "public", reason: "shutdown" }), 2);
});

test("rebind() moves the listener; the old address stops accepting; live connections continue", async (t) => {
  const s = await setup(t, { cachedAuthz: true });
  const creds = await s.client();
  const live = await dial(s.port, creds, s.caPems);
  assert.equal(await echo(live, "old"), "old");
  await s.listener.rebind({ host: "127.0.0.1", port: 0 });
  const newPort = s.listener.address().port;
  assert.notEqual(newPort, s.port);
  const refused = netConnect(s.port, "127.0.0.1");
  assert.equal(((await once(refused, "error")) as [NodeJS.ErrnoException])[0].code, "ECONNREFUSED");
  const fresh = await dial(newPort, creds, s.caPems);
  assert.equal(await echo(fresh, "new"), "new");
  assert.equal(await echo(live, "old still"), "old still");
  assert.equal(s.listener.activeCount(), 2);
  live.end();
  fresh.end();
  await s.cap.next(() => s.cap.closed().filter((l) => l.reason === "done").length === 2);
});

test("rebind() to a busy address fails and keeps the old listener", async (t) => {
  const s = await setup(t, { cachedAuthz: true });
  await assert.rejects(s.listener.rebind({ host: "127.0.0.1", port: s.app.port }), (e: NodeJS.ErrnoException) => e.code === "EADDRINUSE");
  assert.equal(s.listener.address().port, s.port);
  const sock = await dial(s.port, await s.client(), s.caPems);
  assert.equal(await echo(sock, "ok"), "ok");
  sock.end();
  await closedWith(s.cap, "done");
});

test("a TLS 1.3 session resumes with a ticket and is still identified and authorized", async (t) => {
  const s = await setup(t, { cachedAuthz: true });
  const creds = await s.client();
  const first = tlsConnect({ host: "127.0.0.1", port: s.port, cert: creds.certPem, key: creds.keyPem, ca: s.caPems, checkServerIdentity: () => undefined });
  first.on("error", () => {});
  const ticket = once(first, "session");
  assert.equal(await echo(first, "1"), "1");
  const [session] = (await ticket) as [Buffer];
  first.end();
  await closedWith(s.cap, "done");
  const second = tlsConnect({ host: "127.0.0.1", port: s.port, cert: creds.certPem, key: creds.keyPem, ca: s.caPems, session, checkServerIdentity: () => undefined });
  second.on("error", () => {});
  await once(second, "secureConnect");
  assert.equal(second.isSessionReused(), true);
  assert.equal(second.alpnProtocol, false, "no ALPN is negotiated");
  assert.equal(await echo(second, "2"), "2");
  second.end();
  await s.cap.next(() => s.cap.closed().filter((l) => l.reason === "done" && l.source === creds.uri).length === 2);
});

test("a denied peer still gets a session ticket, so its retries resume instead of repeating the full handshake", async (t) => {
  const s = await setup(t, { cachedAuthz: true });
  const creds = await s.client();
  s.authz.verdicts.set(creds.uri, "denied");
  const opts = { host: "127.0.0.1", port: s.port, cert: creds.certPem, key: creds.keyPem, ca: s.caPems, checkServerIdentity: () => undefined };
  const first = tlsConnect(opts);
  first.on("error", () => {});
  let session: Buffer | undefined;
  first.on("session", (b: Buffer) => void (session = b));
  await closedWith(s.cap, "denied");
  await closed(first);
  assert.ok(session, "the refused connection delivered a session ticket before closing");
  const second = tlsConnect({ ...opts, session });
  second.on("error", () => {});
  await once(second, "secureConnect");
  assert.equal(second.isSessionReused(), true, "the retry resumed");
  await closed(second);
  await s.cap.next(() => s.cap.closed().filter((l) => l.reason === "denied").length === 2);
  assert.equal(await metricValue(s.metrics.connectionsRejected, { listener: "public", reason: "denied" }), 2, "the resumed retry is denied too");
  assert.equal(s.app.accepts, 0);
});

test("a default Node client gets X25519 (server preference), and an ML-KEM-only client still connects", async (t) => {
  const s = await setup(t, { cachedAuthz: true });
  const creds = await s.client();
  // Node 24's default client offers X25519MLKEM768 and X25519 key shares; the listener picks X25519.
  const plain = tlsConnect({ host: "127.0.0.1", port: s.port, cert: creds.certPem, key: creds.keyPem, ca: s.caPems, checkServerIdentity: () => undefined });
  plain.on("error", () => {});
  await once(plain, "secureConnect");
  assert.equal((plain.getEphemeralKeyInfo() as { name?: string } | null)?.name, "X25519");
  assert.equal(await echo(plain, "x"), "x");
  plain.end();
  await closedWith(s.cap, "done");
  const pq = tlsConnect({ host: "127.0.0.1", port: s.port, cert: creds.certPem, key: creds.keyPem, ca: s.caPems, ecdhCurve: "X25519MLKEM768", checkServerIdentity: () => undefined });
  pq.on("error", () => {});
  await once(pq, "secureConnect");
  assert.equal((pq.getEphemeralKeyInfo() as { name?: string } | null)?.name, "X25519MLKEM768");
  assert.equal(await echo(pq, "pq"), "pq");
  pq.end();
  await s.cap.next(() => s.cap.closed().filter((l) => l.reason === "done").length === 2);
});

test("TLS 1.2 negotiates an AEAD ECDHE suite, and a client offering only CBC suites is a tls_error", async (t) => {
  const s = await setup(t, { cachedAuthz: true });
  const creds = await s.client();
  const tls12 = tlsConnect({ host: "127.0.0.1", port: s.port, cert: creds.certPem, key: creds.keyPem, ca: s.caPems, maxVersion: "TLSv1.2", checkServerIdentity: () => undefined });
  tls12.on("error", () => {});
  await once(tls12, "secureConnect");
  assert.equal(tls12.getProtocol(), "TLSv1.2");
  assert.match(tls12.getCipher().name, /^ECDHE-ECDSA-(AES(128|256)-GCM-SHA(256|384)|CHACHA20-POLY1305)$/);
  assert.equal(await echo(tls12, "v12"), "v12");
  tls12.end();
  await closedWith(s.cap, "done");

  const cbc = tlsConnect({ host: "127.0.0.1", port: s.port, cert: creds.certPem, key: creds.keyPem, ca: s.caPems, maxVersion: "TLSv1.2", ciphers: "ECDHE-ECDSA-AES128-SHA256:ECDHE-ECDSA-AES128-SHA", checkServerIdentity: () => undefined });
  cbc.on("error", () => {});
  await closed(cbc);
  await closedWith(s.cap, "tls_error");
  assert.equal(s.app.accepts, 1);
});

test("a root change retires session tickets: a ticket from before it does not resume", async (t) => {
  const s = await setup(t, { cachedAuthz: true });
  const creds = await s.client();
  const opts = { host: "127.0.0.1", port: s.port, cert: creds.certPem, key: creds.keyPem, ca: s.caPems, checkServerIdentity: () => undefined };
  const first = tlsConnect(opts);
  first.on("error", () => {});
  const ticket = once(first, "session");
  assert.equal(await echo(first, "1"), "1");
  const [session] = (await ticket) as [Buffer];
  first.end();
  await closedWith(s.cap, "done");

  const extraCa = await makeCa({ trustDomain: s.ca.trustDomain });
  s.mesh.store.setRoots(rootsOf([s.ca, extraCa]));
  await s.cap.next((l) => l.msg === "TLS material updated" && Array.isArray(l.rootFingerprints) && l.rootFingerprints.length === 2);

  const second = tlsConnect({ ...opts, session });
  second.on("error", () => {});
  await once(second, "secureConnect");
  assert.equal(second.isSessionReused(), false, "full handshake against the new roots");
  assert.equal(await echo(second, "2"), "2");
  second.end();
  await s.cap.next(() => s.cap.closed().filter((l) => l.reason === "done").length === 2);
});

test("with logConnections false nothing is logged per connection, and metrics still count", async (t) => {
  const cap = captureLog();
  const mesh = await makeMesh(cap.log);
  const app = await startApp();
  const authz = fakeAuthz({}, { cached: true });
  const metrics = testMetrics();
  const listener = await startPublicListener(
    { bind: { host: "127.0.0.1", port: 0 }, app: { host: "127.0.0.1", port: app.port }, handshakeTimeoutMs: 10_000, localConnectTimeoutMs: 1000, allowNonLoopbackApp: false },
    { certs: mesh.store, authz, log: cap.log, metrics, logConnections: false },
  );
  t.after(async () => {
    await app.close();
    mesh.store.close();
  });
  const leaf = await mesh.ca.issueLeaf({ service: "web" });
  authz.verdicts.set(leaf.uri, "allow");
  const sock = await dial(listener.address().port, leaf, [mesh.ca.certPem]);
  assert.equal((await roundTrip(sock, "quiet")).toString(), "quiet");
  await listener.close();
  assert.equal(cap.closed().length, 0);
  assert.equal(await metricValue(metrics.connectionsClosed, { listener: "public", reason: "done" }), 1);
  assert.equal(await imbalance(metrics), 0);
});

test("both sockets of a proxied connection carry TCP keepalive (seen by ss)", async (t) => {
  const ss = await execFileP("ss", ["-V"]).catch(() => undefined);
  if (ss === undefined) return t.skip("ss (iproute2) is not installed: cannot see the sockets' timers");
  const s = await setup(t, { keepAliveMs: 45_000 });
  const sock = await dial(s.port, await s.client(), s.caPems);
  assert.equal(await echo(sock, "ka"), "ka");
  const appSide = [...s.app.sockets][0]!;
  assert.match(await ssLine(s.port, sock.localPort!), /timer:\(keepalive/, "the client's side");
  assert.match(await ssLine(appSide.remotePort!, s.app.port), /timer:\(keepalive/, "the app's side");
  sock.end();
  await closedWith(s.cap, "done");
});

test("in HTTP mode the client's socket carries TCP keepalive too (seen by ss)", async (t) => {
  const ss = await execFileP("ss", ["-V"]).catch(() => undefined);
  if (ss === undefined) return t.skip("ss (iproute2) is not installed: cannot see the sockets' timers");
  const s = await setup(t, { keepAliveMs: 45_000, protocol: "http" });
  const sock = await dial(s.port, await s.client(), s.caPems);
  // No request is needed: the socket is the HTTP server's once it is authorized.
  await until(async () => /timer:\(keepalive/.test(await ssLine(s.port, sock.localPort!)), "keepalive on the HTTP connection's socket", { everyMs: 50 });
  sock.end();
  await closedWith(s.cap, "done");
});

/** ss's line for the established socket whose local port is `local`, facing `peer` ("" when none). */
async function ssLine(local: number, peer: number): Promise<string> {
  const { stdout } = await execFileP("ss", ["-tnoH", "state", "established"]);
  return stdout.split("\n").find((l) => new RegExp(`:${local}\\s+\\S+:${peer}\\s`).test(l)) ?? "";
}

/** True when our socket on `port` facing `peer` has nothing left unacknowledged (ss -ti shows no unacked). */
async function acknowledged(port: number, peer: string): Promise<boolean> {
  const { stdout } = await execFileP("ss", ["-tniH", "state", "established", "sport", "=", `:${port}`, "dst", peer]);
  return stdout.trim() !== "" && !/unacked:/.test(stdout);
}

test("a client that vanishes without a FIN or a reset is closed as client_timeout, and so is the app's side", async (t) => {
  const host = await peerHost(t);
  if ("unavailable" in host) return t.skip(`no peer host: ${host.unavailable}`);
  const s = await setup(t, { bind: { host: host.hostIp, port: 0 }, keepAliveMs: 1_000 });
  const creds = await s.client();
  const script = `
    const tls = require("node:tls");
    const c = tls.connect({ host: ${JSON.stringify(host.hostIp)}, port: ${s.port}, cert: process.env.CERT, key: process.env.KEY,
      ca: process.env.CA, checkServerIdentity: () => undefined }, () => c.write("hi"));
    c.on("data", (d) => process.stdout.write(d));
    c.on("error", (e) => console.error(e.code, e.message));
    setInterval(() => {}, 1000);`;
  process.env.CERT = creds.certPem; // handed to the child through its environment
  process.env.KEY = creds.keyPem;
  process.env.CA = s.caPems[0];
  t.after(() => void (delete process.env.CERT, delete process.env.KEY, delete process.env.CA));
  const child = host.spawn(process.execPath, ["-e", script]);
  t.after(() => void child.kill("SIGKILL"));
  let stderr = "";
  child.stderr!.on("data", (d: Buffer) => void (stderr += d.toString()));
  const [echoed] = (await Promise.race([once(child.stdout!, "data"), once(child, "exit").then(() => assert.fail(`the client exited: ${stderr}`))])) as [Buffer];
  assert.equal(echoed.toString(), "hi");
  const appSide = [...s.app.sockets][0]!;
  const appClosed = new Promise((resolve) => appSide.once("close", resolve)); // reset by the cut: not once(), which rejects on that error

  // Keepalive probes only a quiet connection: while data is unacknowledged, TCP retransmits instead
  // (for up to ~15 minutes; Node cannot set TCP_USER_TIMEOUT). Vanish once everything is acknowledged.
  await until(() => acknowledged(s.port, host.peerIp), "ss to show nothing unacknowledged on the connection", { everyMs: 50 });
  await host.vanish();
  const closed = await closedWith(s.cap, "client_timeout");
  assert.equal(closed.bytesIn, 2);
  await appClosed;
  assert.equal(await metricValue(s.metrics.connectionsClosed, { listener: "public", reason: "client_timeout" }), 1);
});
