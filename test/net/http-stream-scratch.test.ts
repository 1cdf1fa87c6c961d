// The HTTP pass-through reads every socket into the process's one scratch buffer: what it forwards in
// the same turn is written from there (a view to a TLS socket with nothing queued, else a copy), what
// it holds (a head until it is complete, a head waiting for the app's dial) is copied. These tests make
// the scratch be overwritten while bytes of an earlier read are still wanted (other connections'
// reads, the next read of the same one, a slow reader that lets writes queue), and check that every
// byte arrives as it was sent.
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { once } from "node:events";
import { createServer as createHttpServer } from "node:http";
import net from "node:net";
import { test, type TestContext } from "node:test";
import tls from "node:tls";
import { streamHttp } from "../../src/net/index.js";
import { makeCa } from "../certs/fixtures.js";
import { until } from "../support/wait.js";

const MiB = 1024 * 1024;
const sha256 = (b: Buffer): string => createHash("sha256").update(b).digest("hex");
const noop = (): void => {};

async function listening<S extends net.Server>(t: TestContext, server: S): Promise<number> {
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  t.after(() => server.close());
  return (server.address() as net.AddressInfo).port;
}

const streamOpts = (t: TestContext) => {
  const stop = new AbortController();
  t.after(() => stop.abort());
  return { onExchange: noop, signal: stop.signal, idleTimeoutMs: 0, keepAliveMs: 0 };
};

/** Reads everything `s` receives, pausing 1 ms after each chunk (a reader slower than the writer); resolves with the bytes once `total` came. */
function readSlowly(s: net.Socket, total: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let got = 0;
  return new Promise((resolve, reject) => {
    s.on("data", (c: Buffer) => {
      chunks.push(c);
      got += c.length;
      if (got >= total) return resolve(Buffer.concat(chunks));
      s.pause();
      setTimeout(() => s.resume(), 1);
    });
    s.on("close", () => reject(new Error(`closed after ${got} of ${total} bytes`)));
  });
}

test("answers reach slow TLS clients intact: written from the scratch while a client keeps up, copied while it does not", async (t) => {
  const ca = await makeCa();
  const leaf = await ca.issueLeaf({ service: "web" });
  // The app answers each GET with a random body; a connection's answers, as sent, are what its client must get.
  const sent = new Map<string, Buffer[]>();
  const app = net.createServer((s) => {
    s.on("error", noop);
    let text = "";
    s.on("data", (d: Buffer) => {
      text += d.toString("latin1");
      for (let i = text.indexOf("\r\n\r\n"); i !== -1; i = text.indexOf("\r\n\r\n")) {
        const conn = /^GET \/(\d+)\//.exec(text)![1]!;
        text = text.slice(i + 4);
        const body = randomBytes(3 * MiB + 7);
        const answer = Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\n\r\n`, "latin1"), body]);
        (sent.get(conn) ?? sent.set(conn, []).get(conn)!).push(answer);
        s.write(answer);
      }
    });
  });
  const appPort = await listening(t, app);
  const proxy = tls.createServer({ key: leaf.keyPem, cert: leaf.certPem, allowHalfOpen: true } as tls.TlsOptions, (sock) => {
    sock.on("error", noop);
    streamHttp(sock, {
      ...streamOpts(t),
      dial: async () => {
        const s = net.connect({ port: appPort, host: "127.0.0.1", allowHalfOpen: true });
        await once(s, "connect");
        return s;
      },
    });
    // Reads go to the shared scratch, not through 'data' events (else this test proves nothing about it).
    assert.equal(sock.listenerCount("data"), 1, "streamHttp's 'data' listener, for what was read before it");
  });
  const proxyPort = await listening(t, proxy);

  // Four connections at once (their reads take turns in the one scratch), two pipelined requests each.
  const received = await Promise.all(
    [0, 1, 2, 3].map(async (i) => {
      const c = tls.connect({ port: proxyPort, host: "127.0.0.1", ca: ca.certPem, checkServerIdentity: () => undefined });
      t.after(() => c.destroy());
      c.on("error", noop);
      await once(c, "secureConnect");
      const total = 2 * (3 * MiB + 7 + `HTTP/1.1 200 OK\r\nContent-Length: ${3 * MiB + 7}\r\n\r\n`.length);
      const got = readSlowly(c, total);
      c.write(`GET /${i}/a HTTP/1.1\r\nHost: x\r\n\r\nGET /${i}/b HTTP/1.1\r\nHost: x\r\n\r\n`);
      return { i, bytes: await got };
    }),
  );
  for (const r of received) {
    const expected = Buffer.concat(sent.get(String(r.i))!);
    assert.equal(r.bytes.length, expected.length);
    assert.equal(sha256(r.bytes), sha256(expected), `connection ${r.i} got other bytes than its app sent`);
  }
});

test("requests reach a slow TLS server intact (an upstream instance): bodies written from the scratch or copied, never mixed", async (t) => {
  const ca = await makeCa();
  const leaf = await ca.issueLeaf({ service: "api" });
  const BODY = 3 * MiB + 5;
  const head = `POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: ${BODY}\r\n\r\n`;
  // The TLS app reads each request slowly, then answers with the SHA-256 of the bytes it got.
  const app = tls.createServer({ key: leaf.keyPem, cert: leaf.certPem } as tls.TlsOptions, (s) => {
    s.on("error", noop);
    void readSlowly(s, head.length + BODY).then(
      (got) => s.write(`HTTP/1.1 200 OK\r\nContent-Length: 64\r\n\r\n${sha256(got)}`),
      noop,
    );
  });
  const appPort = await listening(t, app);
  const proxy = net.createServer({ allowHalfOpen: true }, (client) => {
    client.on("error", noop);
    client.pause();
    const up = tls.connect({ port: appPort, host: "127.0.0.1", ca: ca.certPem, checkServerIdentity: () => undefined });
    up.on("error", noop);
    up.once("secureConnect", () => void streamHttp(client, { ...streamOpts(t), server: up }));
  });
  const proxyPort = await listening(t, proxy);

  const results = await Promise.all(
    [0, 1, 2, 3].map(async () => {
      const c = net.connect({ port: proxyPort, host: "127.0.0.1" });
      t.after(() => c.destroy());
      c.on("error", noop);
      await once(c, "connect");
      const request = Buffer.concat([Buffer.from(head, "latin1"), randomBytes(BODY)]);
      let text = "";
      c.setEncoding("latin1");
      const answered = new Promise<string>((resolve) => c.on("data", (d: string) => (text += d).length >= 64 && /\r\n\r\n[0-9a-f]{64}$/.test(text) && resolve(text)));
      c.write(request);
      return { sent: sha256(request), answer: await answered };
    }),
  );
  for (const r of results) assert.ok(r.answer.endsWith(r.sent), `the app got other bytes than were sent: ${r.answer.slice(-64)}`);
});

/** A node:http app that echoes what it saw, and a plain proxy in front whose first dial waits for `gate`. */
async function echoBehindProxy(t: TestContext, gate?: Promise<void>) {
  const app = createHttpServer((req, res) => {
    let body = "";
    req.setEncoding("latin1");
    req.on("data", (d: string) => (body += d));
    req.on("end", () => res.end(`${req.method} ${req.url} ${req.headers["x-long"] ?? ""} ${body}`));
  });
  const appPort = await listening(t, app);
  t.after(() => app.closeAllConnections());
  const accepted: net.Socket[] = [];
  let dials = 0;
  const proxy = net.createServer({ allowHalfOpen: true }, (client) => {
    accepted.push(client);
    streamHttp(client, {
      ...streamOpts(t),
      dial: async () => {
        if (dials++ === 0 && gate !== undefined) await gate;
        const s = net.connect({ port: appPort, host: "127.0.0.1", allowHalfOpen: true });
        await once(s, "connect");
        return s;
      },
    });
  });
  const port = await listening(t, proxy);
  const connect = async () => {
    const c = net.connect({ port, host: "127.0.0.1" });
    t.after(() => c.destroy());
    c.on("error", noop);
    c.setNoDelay(true);
    await once(c, "connect");
    let text = "";
    c.setEncoding("latin1");
    c.on("data", (d: string) => (text += d));
    return { c, text: () => text };
  };
  return { accepted, dials: () => dials, connect };
}

test("a request head split over reads is held as a copy: the next read into the scratch does not change it", async (t) => {
  const s = await echoBehindProxy(t);
  const { c, text } = await s.connect();
  const long = "L".repeat(300);
  const parts = ["GET /a-path-long-enough-to-be-over", `written HTTP/1.1\r\nHost: x\r\nX-Long: ${long}`, "\r\nContent-Length: 4\r\n\r\nbody"];
  let sent = 0;
  for (const p of parts) {
    c.write(p);
    sent += p.length;
    // Each part is its own read: the proxy has read it before the next is written.
    await until(() => s.accepted[0]!.bytesRead >= sent, "the proxy to read the part");
  }
  await until(() => text().includes("body"), "the answer");
  assert.match(text(), new RegExp(`GET /a-path-long-enough-to-be-overwritten ${long} body$`));
});

test("a request head waiting for the app's dial is kept as a copy: other connections' reads into the scratch do not change it", async (t) => {
  const gate = Promise.withResolvers<void>();
  const s = await echoBehindProxy(t, gate.promise);
  const first = await s.connect();
  first.c.write("GET /the-first-connection-waits-for-its-dial HTTP/1.1\r\nHost: x\r\n\r\n");
  await until(() => s.dials() === 1, "the first dial to start");
  // Another connection's request is read into the scratch and answered meanwhile.
  const second = await s.connect();
  second.c.write("PUT /2nd HTTP/1.1\r\nHost: y\r\nContent-Length: 9\r\n\r\noverwrite");
  await until(() => second.text().includes("PUT /2nd  overwrite"), "the second connection's answer");
  gate.resolve();
  await until(() => first.text().includes("GET /the-first"), "the first connection's answer");
  assert.match(first.text(), /^HTTP\/1\.1 200 [^]*GET \/the-first-connection-waits-for-its-dial  $/);
});

const RECORD = 16 * 1024; // TLS's largest plaintext record

/**
 * A TLS client in front of streamHttp and a node:http app that answers each request with its path, the
 * body's length and SHA-256 (reading it slowly when `slowApp`). `holdUntil`: the proxy reads nothing
 * before it resolves. Counts the proxy's writes to the app.
 */
async function tlsClientToPlainApp(t: TestContext, o: { slowApp: boolean; holdUntil?: Promise<void> }) {
  const ca = await makeCa();
  const leaf = await ca.issueLeaf({ service: "web" });
  const seen: Array<{ url: string; hop: string | undefined }> = [];
  const app = createHttpServer((req, res) => {
    seen.push({ url: req.url!, hop: req.headers["x-hop"] as string | undefined });
    const h = createHash("sha256");
    let n = 0;
    req.on("data", (d: Buffer) => {
      h.update(d);
      n += d.length;
      if (o.slowApp) {
        req.pause();
        setTimeout(() => req.resume(), 1);
      }
    });
    req.on("end", () => res.end(`${req.url} ${n} ${h.digest("hex")}\n`));
  });
  const appPort = await listening(t, app);
  t.after(() => app.closeAllConnections());
  let writesToApp = 0;
  const proxy = tls.createServer({ key: leaf.keyPem, cert: leaf.certPem, allowHalfOpen: true } as tls.TlsOptions, (sock) => {
    sock.on("error", noop);
    sock.pause();
    void (o.holdUntil ?? Promise.resolve()).then(() =>
      streamHttp(sock, {
        ...streamOpts(t),
        dial: async () => {
          const s = net.connect({ port: appPort, host: "127.0.0.1", allowHalfOpen: true });
          const write = s.write.bind(s) as (...args: unknown[]) => boolean;
          s.write = ((...args: unknown[]) => (writesToApp++, write(...args))) as typeof s.write;
          await once(s, "connect");
          return s;
        },
      }),
    );
  });
  const port = await listening(t, proxy);
  const c = tls.connect({ port, host: "127.0.0.1", ca: ca.certPem, checkServerIdentity: () => undefined, allowHalfOpen: true } as tls.ConnectionOptions);
  t.after(() => c.destroy());
  c.on("error", noop);
  await once(c, "secureConnect");
  let text = "";
  c.setEncoding("latin1");
  c.on("data", (d: string) => (text += d));
  return { c, seen, text: () => text, writesToApp: () => writesToApp };
}

test("a TLS client's full records bound for a plain app are gathered: fewer writes than records, bodies intact under backpressure", async (t) => {
  const s = await tlsClientToPlainApp(t, { slowApp: true });
  const body = randomBytes(8 * MiB + 3);
  s.c.write(`POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: ${body.length}\r\n\r\n`);
  s.c.write(body);
  await until(() => s.text().includes("/up "), "the answer");
  assert.match(s.text(), new RegExp(`/up ${body.length} ${sha256(body)}\n$`));
  const records = Math.ceil(body.length / RECORD);
  // One write per record would be `records`; a 64 KiB TCP read holds up to four of them.
  assert.ok(s.writesToApp() < records / 2, `${s.writesToApp()} writes to the app for ${records} TLS records`);
});

test("records gathered for a plain app are written before the rebuilt head that follows them in the same turn", async (t) => {
  const sent = Promise.withResolvers<void>();
  const s = await tlsClientToPlainApp(t, { slowApp: false, holdUntil: sent.promise });
  // The first request fills whole records exactly; the second's head starts a record of its own and is
  // rebuilt (it names a hop-by-hop field): a write from elsewhere right after gathered records.
  const prefix = "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: ";
  const BODY_A = 16 * RECORD - (prefix.length + 6 + 4); // a 6-digit length
  const head = `${prefix}${BODY_A}\r\n\r\n`;
  const first = Buffer.concat([Buffer.from(head, "latin1"), randomBytes(16 * RECORD - head.length)]);
  assert.equal(first.length % RECORD, 0);
  const body = first.subarray(head.length);
  s.c.write(first);
  s.c.write("POST /b HTTP/1.1\r\nHost: x\r\nConnection: X-Hop\r\nX-Hop: 1\r\nContent-Length: 3\r\n\r\nabc");
  s.c.end();
  await once(s.c, "finish");
  sent.resolve(); // the proxy reads it all now, in one turn
  await until(() => s.text().includes("/b "), "the second answer");
  assert.match(s.text(), new RegExp(`/a ${body.length} ${sha256(body)}\n[^]*/b 3 ${sha256(Buffer.from("abc"))}\n$`));
  assert.deepEqual(s.seen, [{ url: "/a", hop: undefined }, { url: "/b", hop: undefined }]);
});
