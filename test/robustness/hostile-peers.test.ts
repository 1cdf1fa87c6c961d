// Hostile peers on the public port, against the real dev agent, cert store, authorizer and listener:
// plaintext, no certificate, garbage, oversized ClientHellos, thousands of silent sockets, old TLS
// versions, renegotiation, resets from either side, and 1-byte traffic. The listener survives each
// and keeps serving legitimate clients; the app never sees a refused peer.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { test } from "../support/leaks.js";
import tls, { connect as tlsConnect } from "node:tls";
import { closed, closedWith, dial, dialOverRaw, echo, openFds, rawConnect, roundTrip, startApp, startRig, type Rig } from "./rig.js";
import { until } from "../support/wait.js";

/** A legitimate client: allowed by intention, served end to end. */
async function assertServes(rig: Rig, service = "web"): Promise<void> {
  const sock = await dial(rig.port, await rig.client(service), await rig.rootPems());
  assert.equal((await roundTrip(sock, "still serving")).toString(), "still serving");
}

test("plaintext bytes on the mTLS port end as tls_error and never reach the app", async (t) => {
  const rig = await startRig(t);
  await rig.setIntention("web", "allow");
  const s = await rawConnect(rig.port);
  s.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  await closedWith(rig.cap, "tls_error");
  await closed(s);
  assert.equal(rig.app.accepts, 0);
  await assertServes(rig);
});

test("a TLS client without a certificate is refused with no_client_cert", async (t) => {
  const rig = await startRig(t);
  const sock = tlsConnect({ host: "127.0.0.1", port: rig.port, ca: await rig.rootPems(), checkServerIdentity: () => undefined });
  sock.on("error", () => {});
  await closedWith(rig.cap, "no_client_cert");
  await closed(sock);
  assert.equal(rig.app.accepts, 0);
});

test("garbage, in one write or byte by byte and then a FIN, is refused as tls_error and the listener keeps serving", async (t) => {
  const rig = await startRig(t);
  await rig.setIntention("web", "allow");
  // Fixed bytes, each not the start of a TLS handshake (a random first byte can be 0x16 and wait for more).
  const inputs = [Buffer.from("G"), Buffer.from("GARBAGE"), Buffer.alloc(4096, 0x5a), Buffer.from([0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5]), Buffer.from([0x80, 0x2e, 0x01, 0x00, 0x02])];
  const reasons: unknown[] = [];
  const seen = new Set<object>();
  for (const garbage of inputs) {
    const s = await rawConnect(rig.port);
    if (garbage.length < 16) for (const b of garbage) s.write(Buffer.from([b]));
    else s.write(garbage);
    s.end(); // a FIN after the garbage: the server must not wait for more
    await closed(s);
    const line = await rig.cap.next((l) => l.msg === "inbound connection closed" && !seen.has(l));
    seen.add(line);
    reasons.push(line.reason);
  }
  // Each peer spoke and then left with a FIN, not a reset: what it sent was not a (complete) TLS handshake.
  assert.deepEqual(reasons, inputs.map(() => "tls_error"));
  assert.equal(await rig.closedCount("tls_error"), inputs.length);
  assert.equal(rig.app.accepts, 0);
  await assertServes(rig);
});

// A TLS 1.2 ClientHello whose extensions block is `extBytes` long (one padding extension), split into
// records of at most `recordBytes` (a conforming peer uses ≤ 16384).
function clientHello(extBytes: number, recordBytes: number): Buffer {
  const padding = Buffer.alloc(Math.max(0, extBytes - 4));
  const ext = Buffer.concat([Buffer.from([0x00, 0x15, (padding.length >> 8) & 0xff, padding.length & 0xff]), padding]);
  const body = Buffer.concat([
    Buffer.from([0x03, 0x03]),
    randomBytes(32),
    Buffer.from([0x00]), // no session id
    Buffer.from([0x00, 0x04, 0xc0, 0x2b, 0xc0, 0x2f]), // ECDHE-ECDSA/RSA-AES128-GCM-SHA256
    Buffer.from([0x01, 0x00]), // null compression
    Buffer.from([(ext.length >> 8) & 0xff, ext.length & 0xff]),
    ext,
  ]);
  const msg = Buffer.concat([Buffer.from([0x01, (body.length >> 16) & 0xff, (body.length >> 8) & 0xff, body.length & 0xff]), body]);
  const records: Buffer[] = [];
  for (let off = 0; off < msg.length; off += recordBytes) {
    const frag = msg.subarray(off, off + recordBytes);
    records.push(Buffer.from([0x16, 0x03, 0x01, (frag.length >> 8) & 0xff, frag.length & 0xff]), frag);
  }
  return Buffer.concat(records);
}

test("oversized ClientHellos (64 KiB of extensions; a record above 16 KiB; a 16 MiB length claim) are cut and the listener keeps serving", async (t) => {
  const rig = await startRig(t, { handshakeTimeoutMs: 2000 });
  await rig.setIntention("web", "allow");
  const bigRecord = Buffer.concat([Buffer.from([0x16, 0x03, 0x01, 0x48, 0x01]), randomBytes(0x4801)]); // 18433 > 16384 + 2048
  const hugeClaim = Buffer.concat([Buffer.from([0x16, 0x03, 0x01, 0x00, 0x04, 0x01, 0xff, 0xff, 0xff])]); // handshake length 16 MiB
  const cases = [clientHello(65_000, 16_384), clientHello(20_000, 0xffff), bigRecord, hugeClaim];
  for (const hello of cases) {
    const s = await rawConnect(rig.port);
    s.on("data", () => {}); // a ServerHello may come back; we never answer it
    s.write(hello);
    if (hello !== hugeClaim) s.end();
    await closed(s); // refused outright, or cut at the handshake deadline
  }
  await until(async () => rig.listener.activeCount() === 0, "oversized hellos to end");
  const reasons = rig.cap.closed().map((l) => String(l.reason));
  assert.equal(reasons.length, cases.length);
  for (const r of reasons) assert.ok(["tls_error", "client_reset", "handshake_timeout"].includes(r), `unexpected reason ${r}`);
  assert.equal(rig.app.accepts, 0);
  await assertServes(rig);
});

test("2,000 silent sockets are all cut at the handshake deadline while a legitimate client is served; connections and fds return to baseline", async (t) => {
  const app = await startApp();
  const rig = await startRig(t, { handshakeTimeoutMs: 2000, logConnections: false, app });
  await rig.setIntention("web", "allow");
  const web = await rig.client("web");
  const roots = await rig.rootPems();
  await assertServes(rig); // warms the authz cache and the agent client's pool
  const baseline = openFds();
  const N = 2000;

  const silent: Array<ReturnType<typeof rawConnect> extends Promise<infer S> ? S : never> = [];
  for (let i = 0; i < N; i += 200) {
    silent.push(...(await Promise.all(Array.from({ length: Math.min(200, N - i) }, () => rawConnect(rig.port)))));
  }
  const allClosed = Promise.all(silent.map((s) => closed(s)));
  // While they wait: a legitimate client handshakes, is authorized and echoes.
  const live = await dial(rig.port, web, roots);
  assert.equal(await echo(live, "ping"), "ping");

  await allClosed;
  assert.equal(await rig.closedCount("handshake_timeout"), N);
  live.end();
  await closed(live);
  await until(async () => rig.listener.activeCount() === 0, "the listener to count no connections");
  // Closed sockets release their fds on the next turns of the loop; nothing may be left behind.
  await until(() => openFds() <= baseline + 5, `fds back to baseline ${baseline} (now ${openFds()})`);
  assert.equal(app.accepts, 2, "only the legitimate clients reached the app");
});

test("TLS 1.0 and 1.1 offers are refused with protocol_version even where Node's default minimum would allow them", async (t) => {
  // Node's own default (TLSv1.2) would refuse these without our setting: lower it for this test.
  // OpenSSL 3's security level 1 (our cipher string keeps it) also refuses TLS < 1.2 with the same
  // alert, so this end-to-end check holds without minVersion too; test/listener/tls-options.test.ts
  // runs our server options at @SECLEVEL=0, where minVersion alone refuses them (and fails without it).
  const nodeDefault = tls.DEFAULT_MIN_VERSION;
  tls.DEFAULT_MIN_VERSION = "TLSv1";
  t.after(() => void (tls.DEFAULT_MIN_VERSION = nodeDefault));
  const rig = await startRig(t);
  const web = await rig.client("web");
  for (const version of ["TLSv1", "TLSv1.1"] as const) {
    const sock = tls.connect({
      host: "127.0.0.1",
      port: rig.port,
      cert: web.certPem,
      key: web.keyPem,
      ca: await rig.rootPems(),
      minVersion: version,
      maxVersion: version,
      ciphers: "DEFAULT@SECLEVEL=0",
      checkServerIdentity: () => undefined,
    });
    const outcome = await new Promise<string>((resolve) => {
      sock.once("secureConnect", () => resolve("connected"));
      sock.once("error", (e: NodeJS.ErrnoException) => resolve(`error ${String(e.code)}`));
    });
    sock.destroy();
    // The server's protocol_version alert: refused for its version, not for a cipher or a certificate.
    assert.equal(outcome, "error ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION", `${version}`);
    await closedWith(rig.cap, "tls_error");
  }
  await until(async () => rig.listener.activeCount() === 0, "refused connections to end");
  assert.equal(await rig.closedCount("tls_error"), 2);
  assert.equal(rig.app.accepts, 0);
});

test("a TLS 1.2 client's renegotiation is refused and the server survives", async (t) => {
  const rig = await startRig(t);
  await rig.setIntention("web", "allow");
  const web = await rig.client("web");
  const sock = tlsConnect({ host: "127.0.0.1", port: rig.port, cert: web.certPem, key: web.keyPem, ca: await rig.rootPems(), maxVersion: "TLSv1.2", checkServerIdentity: () => undefined });
  sock.on("error", () => {});
  await once(sock, "secureConnect");
  assert.equal(sock.getProtocol(), "TLSv1.2");
  assert.equal(await echo(sock, "before"), "before");
  const renegotiated = await new Promise<Error | null>((resolve) => {
    const ok = sock.renegotiate({ rejectUnauthorized: false }, (err) => resolve(err));
    if (!ok) resolve(new Error("renegotiate() refused locally"));
    sock.once("close", () => resolve(new Error("connection closed")));
    // A server that ignores the request (no_renegotiation warning) leaves the callback pending; data
    // still flowing then shows the session was not renegotiated.
    sock.write("after");
  });
  if (renegotiated === null) assert.fail("the server accepted a client-initiated renegotiation");
  sock.destroy();
  await until(async () => rig.listener.activeCount() === 0, "the renegotiating connection to end");
  await assertServes(rig);
});

test("abortive resets mid-transfer are counted as client_reset and server_reset", async (t) => {
  let appSide: import("node:net").Socket | undefined;
  const gotData = Promise.withResolvers<void>();
  const app = await startApp({
    onSocket: (s) => {
      appSide = s;
      s.on("data", () => gotData.resolve());
    },
  });
  const rig = await startRig(t, { app });
  await rig.setIntention("web", "allow");
  const web = await rig.client("web");
  const roots = await rig.rootPems();

  // The client resets (RST on its TCP connection) while sending.
  const a = await dialOverRaw(rig.port, web, roots);
  a.tls.write(randomBytes(64 * 1024));
  await gotData.promise;
  a.raw.resetAndDestroy();
  await closedWith(rig.cap, "client_reset");

  // The app resets while the client is mid-transfer.
  const b = await dial(rig.port, web, roots);
  const before = appSide;
  b.write(randomBytes(1024));
  await until(() => appSide !== before && appSide !== undefined, "the app to accept the second connection");
  appSide!.resetAndDestroy();
  await closedWith(rig.cap, "server_reset");
  await closed(b);
  assert.equal(await rig.closedCount("client_reset"), 1);
  assert.equal(await rig.closedCount("server_reset"), 1);
});

test("1-byte writes and 500 one-byte ping-pong round trips complete (no Nagle stall)", async (t) => {
  const rig = await startRig(t);
  await rig.setIntention("web", "allow");
  const sock = await dial(rig.port, await rig.client("web"), await rig.rootPems());
  sock.setNoDelay(true);
  // 1-byte writes in a burst, then the echo of all of them.
  const burst = "abcdefghijklmnopqrstuvwxyz";
  let got = "";
  const all = new Promise<void>((resolve) => {
    const on = (c: Buffer): void => {
      got += c.toString();
      if (got.length >= burst.length) (sock.off("data", on), resolve());
    };
    sock.on("data", on);
  });
  for (const ch of burst) sock.write(ch);
  await all;
  assert.equal(got, burst);
  // Ping-pong: each byte waits for the previous echo; write-write-read in each turn.
  for (let i = 0; i < 500; i++) {
    const b = String.fromCharCode(97 + (i % 26));
    assert.equal(await echo(sock, b), b);
  }
  sock.end();
  await closedWith(rig.cap, "done");
});
