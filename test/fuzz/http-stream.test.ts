// The HTTP pass-through must find every request's head and body end wherever the client's reads
// split the bytes: pipelined requests (allowed and denied, bodies none / Content-Length / chunked
// with extensions and trailers) are cut into random pieces, each handed to streamHttp as one read
// (the client is an in-memory socket, so the pieces arrive exactly as cut). The app behind is a
// real node:http server; every request must be answered in order and the app must see exactly the
// allowed ones, bodies intact.
import assert from "node:assert/strict";
import { once } from "node:events";
import { createServer as createHttpServer } from "node:http";
import { connect, type AddressInfo, type Socket } from "node:net";
import { Duplex } from "node:stream";
import { test } from "node:test";
import fc from "fast-check";
import { streamHttp, settlesWithin } from "../../src/net/index.js";

/** A socket in memory: what is pushed is read (one 'data' per push), what is written is kept. */
class MemorySocket extends Duplex {
  readonly written: Buffer[] = [];
  onWrite: (() => void) | undefined;
  override _read(): void {}
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: () => void): void {
    this.written.push(chunk);
    this.onWrite?.();
    cb();
  }
  setNoDelay(): this {
    return this;
  }
  setKeepAlive(): this {
    return this;
  }
  setTimeout(): this {
    return this;
  }
  resetAndDestroy(): this {
    return this.destroy();
  }
  text(): string {
    return Buffer.concat(this.written).toString("latin1");
  }
}

interface Req { path: string; body: string; framing: "none" | "length" | "chunked"; chunks: number[]; trailer: boolean; ext: boolean }

const reqArb: fc.Arbitrary<Req> = fc.record({
  path: fc.constantFrom("/a", "/b/c", "/deny", "/deny/x", "/q?x=1"),
  body: fc.string({ unit: fc.constantFrom("a", "b", "\r", "\n", "0", " ", ";"), maxLength: 40 }),
  framing: fc.constantFrom("none", "length", "chunked"),
  chunks: fc.array(fc.integer({ min: 1, max: 9 }), { maxLength: 6 }),
  trailer: fc.boolean(),
  ext: fc.boolean(),
});

/** The request on the wire, and the body the app must see. */
function encode(r: Req): { bytes: string; body: string } {
  const method = r.framing === "none" ? "GET" : "POST";
  const head = `${method} ${r.path} HTTP/1.1\r\nHost: x\r\nX-Case: Mixed\r\n`;
  if (r.framing === "none") return { bytes: `${head}\r\n`, body: "" };
  if (r.framing === "length") return { bytes: `${head}Content-Length: ${r.body.length}\r\n\r\n${r.body}`, body: r.body };
  let out = `${head}Transfer-Encoding: chunked\r\n\r\n`;
  let rest = r.body;
  for (const n of r.chunks) {
    if (rest === "") break;
    const part = rest.slice(0, n);
    rest = rest.slice(n);
    out += `${part.length.toString(16)}${r.ext ? ";e=1" : ""}\r\n${part}\r\n`;
  }
  if (rest !== "") out += `${rest.length.toString(16)}\r\n${rest}\r\n`;
  out += `0\r\n${r.trailer ? "X-Trailer: t\r\n" : ""}\r\n`;
  return { bytes: out, body: r.body };
}

test("every request is found, answered in order and forwarded intact wherever the reads split the bytes", async (t) => {
  const seen: string[] = [];
  const app = createHttpServer((req, res) => {
    let body = "";
    req.setEncoding("latin1");
    req.on("data", (d: string) => (body += d));
    req.on("end", () => {
      seen.push(`${req.url} ${JSON.stringify(body)}`);
      res.end(`<${req.url}>`);
    });
  });
  app.keepAliveTimeout = 60_000;
  app.listen(0, "127.0.0.1");
  await once(app, "listening");
  const port = (app.address() as AddressInfo).port;
  t.after(() => {
    app.closeAllConnections();
    app.close();
  });

  await fc.assert(
    fc.asyncProperty(fc.array(reqArb, { minLength: 1, maxLength: 5 }), fc.array(fc.integer({ min: 1, max: 400 }), { maxLength: 12 }), async (reqs, cuts) => {
      seen.length = 0;
      const encoded = reqs.map(encode);
      const all = Buffer.from(encoded.map((e) => e.bytes).join(""), "latin1");
      const client = new MemorySocket();
      const stop = new AbortController();
      const dialled: Socket[] = [];
      const stream = streamHttp(client as unknown as Socket, {
        dial: async () => {
          const s = connect({ port, host: "127.0.0.1", allowHalfOpen: true });
          dialled.push(s);
          await once(s, "connect");
          return s;
        },
        allow: (head) => !head.url.startsWith("/deny"),
        onExchange: () => {},
        signal: stop.signal,
        idleTimeoutMs: 0,
        keepAliveMs: 0,
      });
      assert.ok(stream !== undefined);
      const last = reqs.at(-1)!;
      const lastBody = last.path.startsWith("/deny") ? "RBAC: access denied" : `<${last.path}>`;
      const answers = (): number => (client.text().match(/HTTP\/1\.1 \d{3}/g) ?? []).length;
      const answered = new Promise<void>((resolve) => {
        client.onWrite = () => {
          if (answers() === reqs.length && client.text().endsWith(lastBody)) resolve();
        };
      });
      // The pieces: each is one read.
      let off = 0;
      for (const c of cuts) {
        if (off >= all.length) break;
        client.push(all.subarray(off, Math.min(all.length, off + c)));
        off += c;
        await new Promise((r) => setImmediate(r));
      }
      if (off < all.length) client.push(all.subarray(off));
      // A stall fails this run (and fast-check shrinks it) instead of hanging to the runner's timeout.
      assert.ok(await settlesWithin(answered, 2_000), `no complete answers; the client read: ${JSON.stringify(client.text().slice(-300))}`);
      const statuses = client.text().match(/HTTP\/1\.1 \d{3}/g)!.map((x) => Number(x.slice(9)));
      assert.deepEqual(statuses, reqs.map((r) => (r.path.startsWith("/deny") ? 403 : 200)), "answers in request order");
      const allowed = reqs.map((r, i) => ({ r, body: encoded[i]!.body })).filter(({ r }) => !r.path.startsWith("/deny"));
      assert.deepEqual(seen, allowed.map(({ r, body }) => `${r.path} ${JSON.stringify(body)}`), "the app saw the allowed requests, bodies intact");
      stop.abort();
      await stream.done;
      for (const s of dialled) s.destroy();
    }),
    { numRuns: 150 },
  );
});
