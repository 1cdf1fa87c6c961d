// The HTTP/1.1 pass-through on real loopback sockets: a raw client (so that pipelining, framing and
// the bytes on the wire are ours to choose), streamHttp in the middle, and a node:http app that
// records what reached it.
import assert from "node:assert/strict";
import { once } from "node:events";
import { createServer as createHttpServer, type IncomingHttpHeaders } from "node:http";
import { connect, createServer, type AddressInfo, type Socket } from "node:net";
import { test, type TestContext } from "node:test";
import { bytesPiped, streamHttp, type HttpExchange, type HttpStream } from "../../src/net/index.js";
import { until } from "../support/wait.js";

interface Seen { method: string; url: string; headers: IncomingHttpHeaders; body: string }

/** An app, and a proxy in front of it whose L7 rule denies paths under /deny. */
async function setup(t: TestContext, o: { idleTimeoutMs?: number } = {}) {
  const seen: Seen[] = [];
  let heads = 0; // request heads that reached the app (its body may still be on the way)
  const appSockets = new Set<Socket>();
  const app = createHttpServer((req, res) => {
    heads++;
    let body = "";
    req.setEncoding("latin1");
    req.on("data", (d: string) => (body += d));
    req.on("end", () => {
      seen.push({ method: req.method!, url: req.url!, headers: req.headers, body });
      if (req.url === "/chunked") {
        res.write("ab");
        return void res.end("cd");
      }
      if (req.url === "/no-content") return void res.writeHead(204).end();
      res.setHeader("content-type", "text/plain");
      res.end(`${req.method} ${req.url} ${body}`);
    });
  });
  app.on("connection", (s: Socket) => {
    appSockets.add(s);
    s.on("close", () => appSockets.delete(s));
  });
  app.keepAliveTimeout = 60_000;
  app.listen(0, "127.0.0.1");
  await once(app, "listening");
  const appPort = (app.address() as AddressInfo).port;

  const exchanges: HttpExchange[] = [];
  const streams: HttpStream[] = [];
  const stop = new AbortController();
  let dials = 0;
  const proxy = createServer({ allowHalfOpen: true }, (client) => {
    const s = streamHttp(client, {
      dial: async () => {
        dials++;
        const sock = connect({ port: appPort, host: "127.0.0.1", allowHalfOpen: true });
        await once(sock, "connect");
        return sock;
      },
      allow: (head) => !head.url.startsWith("/deny"),
      onExchange: (x) => exchanges.push(x),
      signal: stop.signal,
      idleTimeoutMs: o.idleTimeoutMs ?? 0,
      keepAliveMs: 0,
    });
    assert.ok(s !== undefined, "this Node's parser is usable");
    streams.push(s);
  });
  proxy.listen(0, "127.0.0.1");
  await once(proxy, "listening");
  t.after(() => {
    stop.abort();
    proxy.close();
    app.closeAllConnections();
    app.close();
  });
  return { port: (proxy.address() as AddressInfo).port, seen, exchanges, streams, appSockets, dials: () => dials, heads: () => heads };
}

/** A raw client: what it wrote, and a wait for what it read to satisfy `pred`. */
async function rawClient(t: TestContext, port: number) {
  const sock = connect({ port, host: "127.0.0.1" });
  t.after(() => sock.destroy());
  await once(sock, "connect");
  let text = "";
  let closed = false;
  const waiters: Array<() => void> = [];
  sock.setEncoding("latin1");
  sock.on("data", (d: string) => {
    text += d;
    for (const w of waiters.splice(0)) w();
  });
  sock.on("close", () => {
    closed = true;
    for (const w of waiters.splice(0)) w();
  });
  sock.on("error", () => {});
  const until = async (pred: (s: string) => boolean, what: string): Promise<string> => {
    while (!pred(text)) {
      if (closed) assert.fail(`closed before ${what}; read: ${JSON.stringify(text)}`);
      await new Promise<void>((r) => waiters.push(r));
    }
    return text;
  };
  return { sock, until, closed: () => closed, text: () => text };
}

const statusLines = (s: string): string[] => s.match(/HTTP\/1\.1 \d{3}/g) ?? [];

test("pipelined requests are answered in order; a denied one gets 403 in its place and its chunked body is skipped", async (t) => {
  const s = await setup(t);
  const c = await rawClient(t, s.port);
  // One write: a GET, a denied POST with a chunked body (with a trailer), a POST with Content-Length.
  c.sock.write(
    "GET /a HTTP/1.1\r\nHost: x\r\n\r\n" +
      "POST /deny/me HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nGET \r\n0\r\nX-T: 1\r\n\r\n" +
      "POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
  );
  const text = await c.until((x) => x.includes("POST /b hello"), "the third answer");
  assert.deepEqual(statusLines(text), ["HTTP/1.1 200", "HTTP/1.1 403", "HTTP/1.1 200"]);
  assert.ok(text.indexOf("GET /a") < text.indexOf("RBAC: access denied"), "the 403 waits for the answer before it");
  assert.deepEqual(s.seen.map((r) => `${r.method} ${r.url} ${r.body}`), ["GET /a ", "POST /b hello"], "the app never saw the denied request or its body");
  // The connection stays usable after the 403: a denied body with Content-Length, then one more request.
  c.sock.write("PUT /deny HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabcGET /c HTTP/1.1\r\nHost: x\r\n\r\n");
  await c.until((x) => x.includes("GET /c "), "the answer after the second 403");
  assert.deepEqual(s.seen.map((r) => r.url), ["/a", "/b", "/c"]);
  assert.deepEqual(s.exchanges.map((x) => `${x.method} ${x.status}`), ["GET 200", "POST 403", "POST 200", "PUT 403", "GET 200"]);
  assert.equal(s.dials(), 1, "one app connection carried every allowed request");
});

test("hop-by-hop fields are not forwarded either way; Transfer-Encoding stays with the framing it describes", async (t) => {
  const s = await setup(t);
  const c = await rawClient(t, s.port);
  c.sock.write(
    "POST /h HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, X-Secret\r\nX-Secret: 1\r\nKeep-Alive: timeout=9\r\nTE: trailers\r\n" +
      "Proxy-Connection: keep-alive\r\nUpgrade: h2c\r\nX-Kept: yes\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
  );
  await c.until((x) => x.includes("POST /h abc"), "the answer");
  const h = s.seen[0]!.headers;
  for (const name of ["x-secret", "keep-alive", "te", "proxy-connection", "upgrade"]) assert.equal(h[name], undefined, name);
  assert.equal(h.connection, "keep-alive", "the proxy's own Connection");
  assert.equal(h["x-kept"], "yes");
  assert.equal(h["transfer-encoding"], "chunked");
  // node:http answers with Connection: keep-alive and Keep-Alive: timeout=60: the client gets neither Keep-Alive nor the app's hop.
  assert.doesNotMatch(c.text(), /keep-alive: timeout/i);
  // A chunked answer goes through with its framing.
  c.sock.write("GET /chunked HTTP/1.1\r\nHost: x\r\n\r\n");
  const text = await c.until((x) => x.includes("0\r\n\r\n"), "the chunked answer's end");
  assert.match(text, /transfer-encoding: chunked\r\n/i);
  assert.match(text, /\r\n2\r\nab\r\n2\r\ncd\r\n0\r\n\r\n$/);
});

test("a malformed request gets 400 after the answers before it, and the connection closes; the proxy serves the next one", async (t) => {
  const s = await setup(t);
  const c = await rawClient(t, s.port);
  c.sock.write("GET /first HTTP/1.1\r\nHost: x\r\n\r\nGET /bad HTTP/1.1\r\nContent-Length: abc\r\n\r\n");
  await c.until((x) => x.includes("400"), "the 400");
  await once(c.sock, "close");
  assert.deepEqual(statusLines(c.text()), ["HTTP/1.1 200", "HTTP/1.1 400"]);
  assert.equal(s.exchanges.at(-1)?.status, 400);
  const next = await rawClient(t, s.port);
  next.sock.write("GET /next HTTP/1.1\r\nHost: x\r\n\r\n");
  await next.until((x) => x.includes("GET /next"), "an answer on a new connection");
});

test("answers without a body (HEAD, 204) end at their head; an app that closed an idle connection is dialled again", async (t) => {
  const s = await setup(t);
  const c = await rawClient(t, s.port);
  c.sock.write("HEAD /x HTTP/1.1\r\nHost: x\r\n\r\nGET /no-content HTTP/1.1\r\nHost: x\r\n\r\nGET /y HTTP/1.1\r\nHost: x\r\n\r\n");
  const text = await c.until((x) => x.includes("GET /y "), "the third answer");
  assert.deepEqual(statusLines(text), ["HTTP/1.1 200", "HTTP/1.1 204", "HTTP/1.1 200"]);
  assert.match(text, /content-length: 7\r\n/i, "HEAD's Content-Length describes a body that is not sent");
  // The app's keep-alive runs out: it closes its side; the client's connection carries on.
  for (const a of s.appSockets) a.end();
  await until(() => s.appSockets.size === 0, "the app to close its side");
  c.sock.write("GET /z HTTP/1.1\r\nHost: x\r\n\r\n");
  await c.until((x) => x.includes("GET /z "), "an answer after the app closed");
  assert.equal(s.dials(), 2);
  assert.equal(c.closed(), false);
});

test("an upgrade the app accepts turns the connection into a raw stream; a denied one gets 403 and the connection closes", async (t) => {
  const s = await setup(t);
  const appUpgrade = createServer((sock) => {
    sock.once("data", () => {
      sock.write("HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\nhello from the app ");
      sock.pipe(sock);
    });
  });
  appUpgrade.listen(0, "127.0.0.1");
  await once(appUpgrade, "listening");
  t.after(() => appUpgrade.close());
  const port = (appUpgrade.address() as AddressInfo).port;
  const proxy = createServer({ allowHalfOpen: true }, (client) => {
    const stop = new AbortController();
    streamHttp(client, {
      dial: async () => {
        const sock = connect({ port, host: "127.0.0.1", allowHalfOpen: true });
        await once(sock, "connect");
        return sock;
      },
      allow: (head) => head.url !== "/deny",
      onExchange: (x) => s.exchanges.push(x),
      signal: stop.signal,
      idleTimeoutMs: 0,
      keepAliveMs: 0,
    });
  });
  proxy.listen(0, "127.0.0.1");
  await once(proxy, "listening");
  t.after(() => proxy.close());
  const c = await rawClient(t, (proxy.address() as AddressInfo).port);
  c.sock.write("GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n");
  await c.until((x) => x.includes("hello from the app "), "the 101 and the bytes after it");
  c.sock.write("raw bytes, not HTTP\r\n\r\n");
  await c.until((x) => x.endsWith("raw bytes, not HTTP\r\n\r\n"), "the echo");
  assert.deepEqual(s.exchanges.map((x) => x.status), [101]);
  const d = await rawClient(t, (proxy.address() as AddressInfo).port);
  d.sock.write("GET /deny HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n");
  await once(d.sock, "close");
  assert.match(d.text(), /^HTTP\/1\.1 403 [^]*connection: close\r\n[^]*RBAC: access denied$/);
});

test("a drain closes an idle connection at once and a busy one after its answer, which says Connection: close", async (t) => {
  const s = await setup(t);
  const idle = await rawClient(t, s.port);
  idle.sock.write("GET /1 HTTP/1.1\r\nHost: x\r\n\r\n");
  await idle.until((x) => x.includes("GET /1"), "the answer");
  const busy = await rawClient(t, s.port);
  // Half a request: the head is in flight when the drain starts.
  busy.sock.write("POST /2 HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nab");
  await until(() => s.heads() === 2, "the second request's head at the app");
  for (const st of s.streams) st.drain();
  await once(idle.sock, "close");
  assert.equal(busy.closed(), false);
  busy.sock.write("cd");
  await once(busy.sock, "close");
  assert.match(busy.text(), /connection: close\r\n[^]*POST \/2 abcd$/i);
});

test("the idle timeout ends a keep-alive connection with nothing in flight in order, and cuts one whose request stalled", async (t) => {
  const s = await setup(t, { idleTimeoutMs: 200 });
  const idle = await rawClient(t, s.port);
  const idleEnd = new Promise<string>((resolve) => {
    idle.sock.once("end", () => resolve("FIN"));
    idle.sock.once("error", (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
  });
  idle.sock.write("GET /1 HTTP/1.1\r\nHost: x\r\n\r\n");
  await idle.until((x) => x.includes("GET /1"), "the answer");
  assert.equal(await idleEnd, "FIN", "an idle keep-alive connection ends cleanly");
  assert.equal((await s.streams[0]!.done).reason, "idle_timeout");

  const stalled = await rawClient(t, s.port);
  const stalledEnd = new Promise<string>((resolve) => {
    stalled.sock.once("end", () => resolve("FIN"));
    stalled.sock.once("error", (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
  });
  stalled.sock.write("POST /2 HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc"); // 7 bytes of the body never come
  assert.equal(await stalledEnd, "ECONNRESET", "a stalled exchange is cut");
  assert.equal((await s.streams[1]!.done).reason, "idle_timeout");
});

test("HTTP traffic counts as piped bytes, which the idle memory release watches for traffic", async (t) => {
  const s = await setup(t);
  const c = await rawClient(t, s.port);
  const before = bytesPiped();
  const request = "GET /counted HTTP/1.1\r\nHost: x\r\n\r\n";
  c.sock.write(request);
  const text = await c.until((x) => x.includes("GET /counted"), "the answer");
  // Both ways: the request, and the answer as the app sent it (its Keep-Alive field is not forwarded).
  assert.ok(bytesPiped() - before >= request.length + text.length, `${bytesPiped() - before} bytes counted`);
});
