// The tiny app behind every path, run as its own (pinned) process:
// - HTTP/1.1 on loopback, keep-alive, pipelining-safe: `GET /` answers "ok", `GET /1k` answers 1 KiB;
//   a request with `Connection: close` is answered and then the connection is ended.
// - a raw TCP sink/source on a second port for bulk transfers: the client sends one op byte and an
//   8-byte big-endian length; 'D' streams that many bytes back then ends, 'U' reads that many then
//   answers one byte 'k' and ends.
// A hand-written responder rather than node:http so that the direct baseline measures the network
// path, not an HTTP framework (node:http would cap every path at its own rate).
// Prints {"http":PORT,"bulk":PORT} on stdout once listening; exits when stdin closes.
import { createServer, type Socket } from "node:net";

const KIB_BODY = "x".repeat(1024);

function response(body: string, close: boolean): Buffer {
  return Buffer.from(
    `HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: ${body.length}\r\n${close ? "Connection: close\r\n" : ""}\r\n${body}`,
    "latin1",
  );
}

const SMALL = response("ok", false);
const SMALL_CLOSE = response("ok", true);
const KIB = response(KIB_BODY, false);
const KIB_CLOSE = response(KIB_BODY, true);
const CLOSE_RE = /\r\nconnection:[ \t]*close/i;
const MAX_HEAD = 16 * 1024;

function serveHttp(sock: Socket): void {
  sock.setNoDelay(true);
  let pending = "";
  sock.on("data", (chunk: Buffer) => {
    pending = pending.length === 0 ? chunk.toString("latin1") : pending + chunk.toString("latin1");
    for (;;) {
      const end = pending.indexOf("\r\n\r\n");
      if (end < 0) {
        if (pending.length > MAX_HEAD) sock.destroy();
        return;
      }
      const head = pending.slice(0, end);
      pending = pending.slice(end + 4);
      const lineEnd = head.indexOf("\r\n");
      const line = lineEnd < 0 ? head : head.slice(0, lineEnd);
      const kib = line.startsWith("GET /1k ");
      const close = CLOSE_RE.test(head);
      if (close) {
        sock.end(kib ? KIB_CLOSE : SMALL_CLOSE);
        return;
      }
      sock.write(kib ? KIB : SMALL);
    }
  });
  sock.on("error", () => sock.destroy());
}

const CHUNK = Buffer.alloc(1 << 20, 0x61);

function serveBulk(sock: Socket): void {
  let head: Buffer = Buffer.alloc(0);
  const onHead = (chunk: Buffer): void => {
    head = head.length === 0 ? chunk : Buffer.concat([head, chunk]);
    if (head.length < 9) return;
    sock.off("data", onHead);
    const op = String.fromCharCode(head[0]!);
    const bytes = Number(head.readBigUInt64BE(1));
    const rest = head.subarray(9);
    if (op === "D") return source(sock, bytes);
    if (op === "U") return sink(sock, bytes, rest.length);
    sock.destroy();
  };
  sock.on("data", onHead);
  sock.on("error", () => sock.destroy());
}

function source(sock: Socket, bytes: number): void {
  let left = bytes;
  const pump = (): void => {
    while (left > 0) {
      const n = Math.min(left, CHUNK.length);
      left -= n;
      const more = sock.write(n === CHUNK.length ? CHUNK : CHUNK.subarray(0, n));
      if (!more) return void sock.once("drain", pump);
    }
    sock.end();
  };
  pump();
}

function sink(sock: Socket, bytes: number, already: number): void {
  let got = already;
  const done = (): void => void sock.end("k");
  if (got >= bytes) return done();
  sock.on("data", (chunk: Buffer) => {
    got += chunk.length;
    if (got >= bytes) done();
  });
}

function listen(handler: (s: Socket) => void): Promise<number> {
  const server = createServer({ noDelay: true }, handler);
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen({ host: "127.0.0.1", port: 0, backlog: 4096 }, () => resolve((server.address() as { port: number }).port));
  });
}

const http = await listen(serveHttp);
const bulk = await listen(serveBulk);
process.stdout.write(`${JSON.stringify({ http, bulk })}\n`);
process.stdin.resume();
process.stdin.on("end", () => process.exit(0));
process.stdin.on("error", () => process.exit(0));
