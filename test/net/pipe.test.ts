import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { once } from "node:events";
import { mkdtempSync, rmSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestContext } from "node:test";
import { test } from "../support/leaks.js";
import tls from "node:tls";
import { bytesPiped, cut, pipe, settlesWithin } from "../../src/net/index.js";
import { makeCa } from "../certs/fixtures.js";

const MiB = 1024 * 1024;

/** Two connected TCP sockets on 127.0.0.1 (both allowHalfOpen), destroyed when the test ends. */
async function socketPair(t: TestContext): Promise<[dialer: net.Socket, accepted: net.Socket]> {
  const server = net.createServer({ allowHalfOpen: true });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as net.AddressInfo;
  const accepted = once(server, "connection") as Promise<[net.Socket]>;
  const dialer = net.connect({ port, host: "127.0.0.1", allowHalfOpen: true });
  const [[acc]] = await Promise.all([accepted, once(dialer, "connect")]);
  server.close();
  t.after(() => {
    dialer.destroy();
    acc.destroy();
  });
  return [dialer, acc];
}

/**
 * outerClient ⇄ proxyIn ═pipe═ proxyOut ⇄ outerServer. The outer sockets get an error listener so
 * that a reset they see is recorded rather than thrown.
 */
async function topology(t: TestContext) {
  const [outerClient, proxyIn] = await socketPair(t);
  const [proxyOut, outerServer] = await socketPair(t);
  const outerErrors: string[] = [];
  outerClient.on("error", (e: NodeJS.ErrnoException) => outerErrors.push(`client:${e.code}`));
  outerServer.on("error", (e: NodeJS.ErrnoException) => outerErrors.push(`server:${e.code}`));
  return { outerClient, proxyIn, proxyOut, outerServer, outerErrors };
}

/** Reads a socket to its end; resolves with the byte count and sha256 of what arrived. */
function drain(sock: net.Socket): Promise<{ bytes: number; sha256: string; text: string }> {
  const h = createHash("sha256");
  let bytes = 0;
  let text = "";
  sock.on("data", (c: Buffer) => {
    h.update(c);
    bytes += c.length;
    if (text.length < 256) text += c.toString("latin1");
  });
  return once(sock, "end").then(() => ({ bytes, sha256: h.digest("hex"), text }));
}

/** Resolves with how the peer ended `sock`: "FIN" (a clean end) or the error code ("ECONNRESET" for a reset). */
const peerEnd = (sock: net.Socket): Promise<string> =>
  new Promise((resolve) => {
    sock.once("end", () => resolve("FIN"));
    sock.once("error", (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
    sock.resume();
  });
const sha256 = (b: Buffer): string => createHash("sha256").update(b).digest("hex");
const EVENTS = ["data", "end", "finish", "error", "close", "drain"] as const;
const listenerCounts = (s: net.Socket): number[] => EVENTS.map((e) => s.listenerCount(e));

test("pipe copies megabytes both ways unchanged and ends 'done' when both sides end, counted in bytesPiped()", async (t) => {
  const { outerClient, proxyIn, proxyOut, outerServer } = await topology(t);
  const before = [listenerCounts(proxyIn), listenerCounts(proxyOut)];
  const movedBefore = bytesPiped(); // the tests of this file run one at a time: no other pipe moves bytes now
  const up = randomBytes(4 * MiB + 17);
  const down = randomBytes(3 * MiB + 5);

  const piped = pipe(proxyIn, proxyOut);
  const atServer = drain(outerServer);
  const atClient = drain(outerClient);
  outerClient.end(up);
  outerServer.end(down);

  const [result, gotUp, gotDown] = await Promise.all([piped, atServer, atClient]);
  assert.deepEqual(result, { reason: "done", bytesFromClient: up.length, bytesFromServer: down.length });
  assert.equal(bytesPiped() - movedBefore, up.length + down.length, "the idle memory release's traffic count");
  assert.equal(gotUp.sha256, sha256(up));
  assert.equal(gotDown.sha256, sha256(down));
  assert.ok(proxyIn.destroyed && proxyOut.destroyed);
  assert.deepEqual([listenerCounts(proxyIn), listenerCounts(proxyOut)], before, "pipe left listeners behind");
});

test("a client half-close reaches the server, which can still answer before it ends", async (t) => {
  const { outerClient, proxyIn, proxyOut, outerServer } = await topology(t);
  const piped = pipe(proxyIn, proxyOut);
  const atClient = drain(outerClient);

  outerClient.end("request");
  const req = await drain(outerServer); // the server sees the client's FIN...
  assert.equal(req.text, "request");
  outerServer.write("response, "); // ...and still talks
  outerServer.end("bye");

  const [result, res] = await Promise.all([piped, atClient]);
  assert.equal(res.text, "response, bye");
  assert.deepEqual(result, { reason: "done", bytesFromClient: 7, bytesFromServer: 13 });
});

test("a server half-close reaches the client, which can still send before it ends", async (t) => {
  const { outerClient, proxyIn, proxyOut, outerServer } = await topology(t);
  const piped = pipe(proxyIn, proxyOut);
  const atServer = drain(outerServer);

  outerServer.end("banner");
  const banner = await drain(outerClient);
  assert.equal(banner.text, "banner");
  outerClient.end("late words");

  const [result, got] = await Promise.all([piped, atServer]);
  assert.equal(got.text, "late words");
  assert.deepEqual(result, { reason: "done", bytesFromClient: 10, bytesFromServer: 6 });
});

test("a reset from the client ends both sides with reason client_reset", async (t) => {
  const { outerClient, proxyIn, proxyOut, outerServer } = await topology(t);
  const piped = pipe(proxyIn, proxyOut);
  outerClient.write("hello");
  await once(outerServer, "data");
  const serverEnd = peerEnd(outerServer);
  outerClient.resetAndDestroy();

  const result = await piped;
  assert.equal(result.reason, "client_reset");
  assert.equal(result.bytesFromClient, 5);
  assert.equal(await serverEnd, "ECONNRESET"); // the reset is passed on, not turned into a clean end
  assert.ok(proxyIn.destroyed && proxyOut.destroyed);
});

test("a reset from the server ends both sides with reason server_reset", async (t) => {
  const { outerClient, proxyIn, proxyOut, outerServer } = await topology(t);
  const piped = pipe(proxyIn, proxyOut);
  outerServer.write("hi");
  await once(outerClient, "data");
  const clientEnd = peerEnd(outerClient);
  outerServer.resetAndDestroy();

  const result = await piped;
  assert.equal(result.reason, "server_reset");
  assert.equal(result.bytesFromServer, 2);
  assert.equal(await clientEnd, "ECONNRESET");
});

test("a socket destroyed under the pipe ends the other side too", async (t) => {
  const { outerClient, proxyIn, proxyOut } = await topology(t);
  const piped = pipe(proxyIn, proxyOut);
  const clientEnd = peerEnd(outerClient);
  proxyOut.destroy();
  assert.equal((await piped).reason, "server_reset");
  assert.equal(await clientEnd, "ECONNRESET");
});

test("a peer that stopped answering (ETIMEDOUT from keepalive) ends the pipe with its own reason, either side", async (t) => {
  for (const side of ["client", "server"] as const) {
    const { proxyIn, proxyOut, outerClient } = await topology(t);
    const piped = pipe(proxyIn, proxyOut, { keepAliveMs: 30_000 });
    outerClient.write("x");
    const timedOut = Object.assign(new Error("read ETIMEDOUT"), { code: "ETIMEDOUT" });
    (side === "client" ? proxyIn : proxyOut).destroy(timedOut); // what the kernel reports after its last unanswered probe
    assert.equal((await piped).reason, `${side}_timeout`);
  }
});

test("a slow reader holds the writer back: the pipe's buffers stay bounded while 50 MB pass", async (t) => {
  const { outerClient, proxyIn, proxyOut, outerServer } = await topology(t);
  const total = 50 * MiB;
  let maxBuffered = 0;
  const sample = (): void => void (maxBuffered = Math.max(maxBuffered, proxyIn.readableLength + proxyOut.writableLength));
  proxyIn.on("data", sample); // an observer: sees each chunk right after the pipe forwarded it
  const piped = pipe(proxyIn, proxyOut);

  // The writer pushes as fast as its own backpressure allows.
  const chunk = randomBytes(256 * 1024);
  const writer = (async () => {
    for (let sent = 0; sent < total; sent += chunk.length) {
      if (!outerClient.write(chunk)) await once(outerClient, "drain");
    }
    outerClient.end();
  })();

  // The reader takes at most 4 KiB per turn of the event loop, far slower than the writer.
  outerServer.pause();
  let received = 0;
  let ended = false;
  outerServer.once("end", () => (ended = true));
  while (!ended) {
    const c = outerServer.read(4096) as Buffer | null;
    if (c !== null) received += c.length;
    else if (outerServer.readableLength > 0) received += (outerServer.read() as Buffer).length;
    else if (!outerServer.readableEnded) await Promise.race([once(outerServer, "readable"), once(outerServer, "end")]);
    sample();
    await new Promise<void>((r) => setImmediate(r));
  }
  outerServer.end();
  await writer;
  const result = await piped;

  assert.equal(received, total);
  assert.deepEqual(result, { reason: "done", bytesFromClient: total, bytesFromServer: 0 });
  // Without backpressure the pipe would hold tens of MB here; with it, about one high-water mark each.
  assert.ok(maxBuffered < 2 * MiB, `pipe buffered ${maxBuffered} bytes`);
  if (process.env.PIPE_TEST_DEBUG) console.log({ maxBuffered });
});

test("no bytes either way for idleTimeoutMs ends both sides with reason idle_timeout", async (t) => {
  const { outerClient, proxyIn, proxyOut, outerServer } = await topology(t);
  const piped = pipe(proxyIn, proxyOut, { idleTimeoutMs: 40 });
  outerClient.write("ping");
  await once(outerServer, "data");
  const closed = Promise.all([peerEnd(outerClient), peerEnd(outerServer)]);
  assert.deepEqual(await piped, { reason: "idle_timeout", bytesFromClient: 4, bytesFromServer: 0 });
  assert.deepEqual(await closed, ["FIN", "FIN"]); // nothing was in flight: a clean end
});

test("aborting ends both sides with the signal's reason when it is a close reason, else 'shutdown'", async (t) => {
  for (const [abortWith, expected] of [["revoked", "revoked"], [undefined, "shutdown"], ["whatever", "shutdown"]] as const) {
    const { outerClient, proxyIn, proxyOut, outerServer } = await topology(t);
    const before = [listenerCounts(proxyIn), listenerCounts(proxyOut)];
    const ac = new AbortController();
    const piped = pipe(proxyIn, proxyOut, { signal: ac.signal, idleTimeoutMs: 60_000 });
    const closed = Promise.all([peerEnd(outerClient), peerEnd(outerServer)]);
    ac.abort(abortWith);
    assert.equal((await piped).reason, expected);
    assert.deepEqual(await closed, ["ECONNRESET", "ECONNRESET"]); // a cut is a reset both ways
    assert.deepEqual([listenerCounts(proxyIn), listenerCounts(proxyOut)], before);
  }
});

test("an already aborted signal or an already closed socket settles at once", async (t) => {
  {
    const { proxyIn, proxyOut } = await topology(t);
    assert.equal((await pipe(proxyIn, proxyOut, { signal: AbortSignal.abort("shutdown") })).reason, "shutdown");
    assert.ok(proxyIn.destroyed && proxyOut.destroyed);
  }
  {
    const { proxyIn, proxyOut } = await topology(t);
    proxyIn.destroy();
    await once(proxyIn, "close");
    assert.equal((await pipe(proxyIn, proxyOut)).reason, "client_reset");
    assert.ok(proxyOut.destroyed);
  }
});

test("pipe joins a TLS socket to a unix socket, half-close and all", async (t) => {
  const ca = await makeCa();
  const leaf = await ca.issueLeaf({ service: "web" });
  const dir = mkdtempSync(join(tmpdir(), "pipe-test-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const sockPath = join(dir, "app.sock");

  // The "app": a unix socket server that answers with what it heard, after the client's FIN.
  const app = net.createServer({ allowHalfOpen: true }, (s) => {
    s.on("error", () => {});
    void drain(s).then((got) => s.end(`heard ${got.bytes} bytes: ${got.sha256}`));
  });
  app.listen(sockPath);
  await once(app, "listening");
  t.after(() => app.close());

  let piped: Promise<Awaited<ReturnType<typeof pipe>>> | undefined;
  const front = tls.createServer({ key: leaf.keyPem, cert: leaf.certPem, allowHalfOpen: true } as tls.TlsOptions, (sock) => {
    const back = net.connect({ path: sockPath, allowHalfOpen: true });
    piped = pipe(sock, back);
  });
  front.listen(0, "127.0.0.1");
  await once(front, "listening");
  t.after(() => front.close());

  const body = randomBytes(MiB + 3);
  const client = tls.connect({
    port: (front.address() as net.AddressInfo).port,
    host: "127.0.0.1",
    ca: ca.certPem,
    checkServerIdentity: () => undefined, // no DNS names in Connect leaves
  });
  t.after(() => client.destroy());
  await once(client, "secureConnect");
  const answer = drain(client);
  client.end(body);
  const got = await answer;
  assert.equal(got.text, `heard ${body.length} bytes: ${sha256(body)}`);
  const result = await piped!;
  assert.equal(result.reason, "done");
  assert.equal(result.bytesFromClient, body.length);
  assert.equal(result.bytesFromServer, got.bytes);
});

test("a cut TLS connection reaches its TLS peer as a reset, not a clean end, from either side", async (t) => {
  const ca = await makeCa();
  const leaf = await ca.issueLeaf({ service: "web" });
  const dir = mkdtempSync(join(tmpdir(), "pipe-test-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  // Behind the proxy: a unix socket app (cut() falls back to a plain destroy there) that streams forever.
  const app = net.createServer({ allowHalfOpen: true }, (s) => {
    s.on("error", () => {});
    const chunk = randomBytes(64 * 1024);
    const more = (): void => {
      while (!s.destroyed && s.write(chunk));
    };
    s.on("drain", more);
    more();
  });
  app.listen(join(dir, "app.sock"));
  await once(app, "listening");
  t.after(() => app.close());

  // The accepting side: a TLS server piping to the app, aborted while the app is mid-stream.
  let ac = new AbortController();
  let piped: Promise<Awaited<ReturnType<typeof pipe>>> | undefined;
  const front = tls.createServer({ key: leaf.keyPem, cert: leaf.certPem, allowHalfOpen: true } as tls.TlsOptions, (sock) => {
    piped = pipe(sock, net.connect({ path: join(dir, "app.sock"), allowHalfOpen: true }), { signal: ac.signal });
  });
  front.listen(0, "127.0.0.1");
  await once(front, "listening");
  t.after(() => front.close());

  // A TLS client over a net.Socket of its own.
  const raw = net.connect({ port: (front.address() as net.AddressInfo).port, host: "127.0.0.1", allowHalfOpen: true });
  const client = tls.connect({ socket: raw, ca: ca.certPem, checkServerIdentity: () => undefined, allowHalfOpen: true } as tls.ConnectionOptions);
  t.after(() => client.destroy());
  await once(client, "secureConnect");
  await once(client, "data"); // bytes are flowing
  const clientEnd = peerEnd(client);
  ac.abort("revoked");
  assert.equal((await piped!).reason, "revoked");
  assert.equal(await clientEnd, "ECONNRESET");

  // And the other way round: the dialing side cuts, the accepting TLS server sees a reset (no 'end').
  ac = new AbortController();
  const serverSaw: string[] = [];
  front.once("secureConnection", (s: tls.TLSSocket) => {
    s.on("end", () => serverSaw.push("end")).on("error", (e: NodeJS.ErrnoException) => serverSaw.push(`${e.syscall}:${e.code}`));
  });
  // Dialed as the upstream listener dials: tls.connect() making its own TCP socket.
  const c2 = tls.connect({ port: (front.address() as net.AddressInfo).port, host: "127.0.0.1", ca: ca.certPem, checkServerIdentity: () => undefined });
  c2.on("error", () => {});
  await once(c2, "data");
  cut(c2);
  assert.equal((await piped!).reason, "client_reset");
  assert.deepEqual(serverSaw.map((e) => e.replace(/^(read|write):/, "")), ["ECONNRESET"]); // and no 'end' before it
});

/**
 * `n` apps that each send `bytes` random bytes then end; each is dialled and piped (every pipe reads
 * into the one scratch buffer of the process) to a front socket made by `front`. Resolves with what each
 * front client received and what its app sent.
 */
async function directFanIn(t: TestContext, n: number, bytes: number, tlsFront: boolean, slowReader: boolean) {
  const ca = await makeCa();
  const leaf = await ca.issueLeaf({ service: "web" });
  const sent = new Map<number, Buffer>();
  const app = net.createServer({ allowHalfOpen: true }, (s) => {
    s.on("error", () => {});
    s.once("data", (idx: Buffer) => {
      const body = randomBytes(bytes);
      sent.set(idx.readUInt8(0), body);
      s.end(body);
    });
    s.resume();
  });
  app.listen(0, "127.0.0.1");
  await once(app, "listening");
  t.after(() => app.close());
  const appPort = (app.address() as net.AddressInfo).port;
  const results: Array<Promise<Awaited<ReturnType<typeof pipe>>>> = [];
  const onFront = (sock: net.Socket): void => {
    sock.on("error", () => {});
    const back = net.connect({ host: "127.0.0.1", port: appPort, allowHalfOpen: true });
    back.on("error", () => {});
    results.push(
      once(back, "connect").then(() => {
        const piped = pipe(sock, back);
        // Reads go to the shared scratch, not through 'data' events (else this test proves nothing about it).
        assert.deepEqual([sock.listenerCount("data"), back.listenerCount("data")], [0, 0]);
        return piped;
      }),
    );
  };
  const front = tlsFront
    ? tls.createServer({ key: leaf.keyPem, cert: leaf.certPem, allowHalfOpen: true } as tls.TlsOptions, onFront)
    : net.createServer({ allowHalfOpen: true }, onFront);
  front.listen(0, "127.0.0.1");
  await once(front, "listening");
  t.after(() => front.close());
  const frontPort = (front.address() as net.AddressInfo).port;

  const received = await Promise.all(
    Array.from({ length: n }, async (_, i) => {
      const c: net.Socket = tlsFront
        ? tls.connect({ port: frontPort, host: "127.0.0.1", ca: ca.certPem, checkServerIdentity: () => undefined })
        : net.connect({ port: frontPort, host: "127.0.0.1", allowHalfOpen: true });
      t.after(() => c.destroy());
      await once(c, tlsFront ? "secureConnect" : "connect");
      const h = createHash("sha256");
      let got = 0;
      c.on("data", (chunk: Buffer) => {
        h.update(chunk);
        got += chunk.length;
        if (slowReader) {
          c.pause(); // a reader slower than the app: the pipe must hold back, not lose or mix bytes
          setTimeout(() => c.resume(), 1);
        }
      });
      const end = once(c, "end");
      c.end(Buffer.from([i]));
      await end;
      return { i, got, sha256: h.digest("hex") };
    }),
  );
  const piped = await Promise.all(results);
  return { received, sent, piped };
}

test("pipes sharing one read buffer deliver every app's bytes unchanged to TLS peers", async (t) => {
  const { received, sent, piped } = await directFanIn(t, 4, 24 * MiB + 11, true, true);
  for (const r of received) {
    assert.equal(r.got, sent.get(r.i)!.length);
    assert.equal(r.sha256, sha256(sent.get(r.i)!), `connection ${r.i} got other bytes than its app sent`);
  }
  for (const p of piped) assert.equal(p.reason, "done");
});

test("pipes sharing one read buffer copy each read for a plain TCP peer: bytes arrive unchanged under backpressure", async (t) => {
  const { received, sent, piped } = await directFanIn(t, 4, 24 * MiB + 11, false, true);
  for (const r of received) {
    assert.equal(r.got, sent.get(r.i)!.length);
    assert.equal(r.sha256, sha256(sent.get(r.i)!), `connection ${r.i} got other bytes than its app sent`);
  }
  for (const p of piped) assert.equal(p.reason, "done");
});

/**
 * Counts and hashes what `s` receives; a slow reader pauses for 1 ms after each chunk. `onChunk` runs
 * after each chunk is counted.
 */
function tally(s: net.Socket, slow: boolean, onChunk?: () => void) {
  const h = createHash("sha256");
  const got = { bytes: 0, sha256: () => h.digest("hex") };
  s.on("data", (c: Buffer) => {
    h.update(c);
    got.bytes += c.length;
    if (slow) {
      s.pause();
      setTimeout(() => s.resume(), 1);
    }
    onChunk?.();
  });
  return got;
}

/**
 * A TLS client uploads `body` through a pipe to a plain TCP app, which answers with the byte count and
 * sha256 of what it got once the upload ended. Resolves with that answer, how the pipe ended and how
 * many times the pipe wrote to the app.
 */
async function uploadThroughTlsToPlain(t: TestContext, body: Buffer, o: { slowApp: boolean; pipeAfterUpload: boolean; clientEnds?: false }) {
  const { slowApp } = o;
  let uploaded!: () => void;
  const uploadDone = new Promise<void>((resolve) => (uploaded = resolve));
  const ca = await makeCa();
  const leaf = await ca.issueLeaf({ service: "web" });
  const app = net.createServer({ allowHalfOpen: true }, (s) => {
    s.on("error", () => {});
    const got = tally(s, slowApp, () => {
      // A client that does not end is answered once all of the body is in.
      if (o.clientEnds === false && got.bytes === body.length) s.end(`${got.bytes} ${got.sha256()}`);
    });
    if (o.clientEnds !== false) s.on("end", () => s.end(`${got.bytes} ${got.sha256()}`));
  });
  app.listen(0, "127.0.0.1");
  await once(app, "listening");
  t.after(() => app.close());

  let writesToApp = 0;
  let piped: ReturnType<typeof pipe> | undefined;
  const front = tls.createServer({ key: leaf.keyPem, cert: leaf.certPem, allowHalfOpen: true } as tls.TlsOptions, (sock) => {
    sock.on("error", () => {});
    const back = net.connect({ host: "127.0.0.1", port: (app.address() as net.AddressInfo).port, allowHalfOpen: true });
    const write = back.write.bind(back) as (...args: unknown[]) => boolean;
    back.write = ((...args: unknown[]) => (writesToApp++, write(...args))) as typeof back.write;
    if (!o.pipeAfterUpload) return void (piped = pipe(sock, back));
    // Read nothing until the client has sent all, its end included: the pipe's first turn then reads
    // the last records and the end together.
    sock.pause();
    piped = uploadDone.then(() => pipe(sock, back));
  });
  front.listen(0, "127.0.0.1");
  await once(front, "listening");
  t.after(() => front.close());

  const client = tls.connect({ port: (front.address() as net.AddressInfo).port, host: "127.0.0.1", ca: ca.certPem, checkServerIdentity: () => undefined });
  t.after(() => client.destroy());
  await once(client, "secureConnect");
  const answer = drain(client);
  if (o.clientEnds === false) {
    client.write(body);
  } else {
    client.end(body);
    await once(client, "finish");
  }
  uploaded();
  const gotAnswer = await settlesWithin(answer, 30_000);
  assert.ok(gotAnswer, "the app never got all of the body");
  return { answer: (await answer).text, reason: (await piped!).reason, writesToApp };
}

const RECORD = 16 * 1024; // TLS's largest plaintext record

test("full TLS records bound for a plain socket are written gathered: fewer writes than records, bytes unchanged under backpressure", async (t) => {
  const body = randomBytes(16 * MiB + 5);
  const r = await uploadThroughTlsToPlain(t, body, { slowApp: true, pipeAfterUpload: false });
  assert.equal(r.answer, `${body.length} ${sha256(body)}`);
  assert.equal(r.reason, "done");
  const records = Math.ceil(body.length / RECORD);
  // One write per record would be `records`; a 64 KiB TCP read holds up to four of them.
  assert.ok(r.writesToApp < records / 2, `${r.writesToApp} writes to the app for ${records} TLS records`);
});

test("records gathered for a plain socket are all written before the end that arrived with them", async (t) => {
  const body = randomBytes(16 * RECORD); // a whole number of records, small enough to wait in the kernel's buffers
  const r = await uploadThroughTlsToPlain(t, body, { slowApp: false, pipeAfterUpload: true });
  assert.equal(r.answer, `${body.length} ${sha256(body)}`);
  assert.equal(r.reason, "done");
});

test("records gathered for a plain socket are written at the end of their turn, when nothing follows them", async (t) => {
  const body = randomBytes(4 * RECORD); // a whole number of records, then the client waits for the answer
  const r = await uploadThroughTlsToPlain(t, body, { slowApp: false, pipeAfterUpload: false, clientEnds: false });
  assert.equal(r.answer, `${body.length} ${sha256(body)}`);
});

/**
 * outer plain client → proxyIn ═pipe═ proxyOut (a TLS client) → a TLS app that reads `total` bytes,
 * slowly or not. Resolves with how often the pipe paused proxyIn, the most proxyOut held queued, and
 * what the app got.
 */
async function uploadThroughPlainToTls(t: TestContext, total: number, slowApp: boolean) {
  const ca = await makeCa();
  const leaf = await ca.issueLeaf({ service: "api" });
  let appGot: ReturnType<typeof tally> | undefined;
  const app = tls.createServer({ key: leaf.keyPem, cert: leaf.certPem }, (s) => {
    s.on("error", () => {});
    appGot = tally(s, slowApp);
    s.on("end", () => s.end());
  });
  app.listen(0, "127.0.0.1");
  await once(app, "listening");
  t.after(() => app.close());

  const [outerClient, proxyIn] = await socketPair(t);
  const proxyOut = tls.connect({ port: (app.address() as net.AddressInfo).port, host: "127.0.0.1", ca: ca.certPem, checkServerIdentity: () => undefined });
  t.after(() => proxyOut.destroy());
  await once(proxyOut, "secureConnect");
  // The pipe pauses a socket that reads into its scratch by answering false to the read, which stops
  // the handle's reads (Node's onStreamRead calls readStop): count those.
  let pauses = 0;
  const handle = (proxyIn as net.Socket & { _handle: { readStop: () => number } })._handle;
  const readStop = handle.readStop.bind(handle);
  handle.readStop = () => (pauses++, readStop());
  let maxQueued = 0;
  const write = proxyOut.write.bind(proxyOut) as (...args: unknown[]) => boolean;
  proxyOut.write = ((...args: unknown[]) => {
    const ok = write(...args);
    maxQueued = Math.max(maxQueued, proxyOut.writableLength);
    return ok;
  }) as typeof proxyOut.write;
  const piped = pipe(proxyIn, proxyOut);

  const body = randomBytes(total);
  outerClient.end(body);
  const result = await piped;
  return { pauses, maxQueued, result, appBytes: appGot?.bytes, appSha256: appGot?.sha256(), bodySha256: sha256(body) };
}

test("a TLS destination is written a few reads ahead: its deferred write completions do not pause the source per read", async (t) => {
  const total = 32 * MiB;
  const r = await uploadThroughPlainToTls(t, total, false);
  assert.equal(r.result.reason, "done");
  assert.equal(r.appBytes, total);
  assert.equal(r.appSha256, r.bodySha256);
  const fewestReads = total / (64 * 1024); // a read takes at most 64 KiB
  assert.ok(r.pauses < fewestReads / 2, `the source was paused ${r.pauses} times in at least ${fewestReads} reads`);
});

test("a slow TLS destination still holds the source back: what waits in it stays bounded", async (t) => {
  const total = 16 * MiB;
  const r = await uploadThroughPlainToTls(t, total, true);
  assert.equal(r.result.reason, "done");
  assert.equal(r.appBytes, total);
  assert.equal(r.appSha256, r.bodySha256);
  assert.ok(r.pauses > 0, "the source was never paused");
  // The write-ahead (256 KiB) and one read on top of it, not megabytes.
  assert.ok(r.maxQueued <= 256 * 1024 + 64 * 1024, `${r.maxQueued} bytes waited in the TLS socket`);
});
