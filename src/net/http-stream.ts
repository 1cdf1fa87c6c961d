// One HTTP/1.1 connection proxied as a byte stream that is parsed on the way (protocol http, the
// public listener and the upstream listeners alike). llhttp (Node's parser, node-internals.ts) finds
// each message's head and where its body ends; the bytes go on as they came, and the proxy steps in
// only where it must:
// - a request head is held until it is complete, then the caller's L7 decision forwards it or
//   answers 403 in its place (its body is read and dropped; the connection stays usable);
// - answers go back in request order: a 403 (or 400, 503) waits for the answers before it;
// - hop-by-hop fields (RFC 9110 §7.6.1) are removed from heads: Connection and the fields it
//   names, Keep-Alive, Proxy-Connection, TE, and Upgrade outside an upgrade; Connection is replaced
//   by the proxy's own (keep-alive, or close). Transfer-Encoding stays: bodies are forwarded with the
//   framing they came with, so the next hop gets the encoding it is told about;
// - a malformed request gets 400 and the connection closes after the answers before it;
// - an Upgrade (WebSocket) or CONNECT request the server accepts (101, 2xx) turns the connection
//   into a raw pipe (pipe.ts) after the server's head;
// - draining: an idle connection closes at once, a busy one after its answer, which says so.
// Bodies are streamed with backpressure, never held: only heads are buffered until complete.
import type { Socket } from "node:net";
import { errorCloseReason, isPipeCloseReason, type PipeCloseReason } from "./close-reason.js";
import { createChunkedBodyWalker, createHeadParser, readIntoScratch, type ChunkedBodyWalker, type HttpHead, type HttpParseError } from "./node-internals.js";
import { cut, pipe, scratchBuffer, type PipeResult } from "./pipe.js";

export type { HttpHead } from "./node-internals.js";

/** One request and its answer, as the caller counts and logs it. */
export interface HttpExchange {
  method: string;
  /** The request target as sent (path and query). */
  url: string;
  /** The answer's status; 0: none was sent (the connection ended first). */
  status: number;
  /** Body bytes of the answer as sent (chunk framing included). */
  bodyBytes: number;
  seconds: number;
}

export interface HttpStreamOptions {
  /** The server's socket when one is connected already (an upstream instance): its end ends the connection. */
  server?: Socket;
  /**
   * Dials the server (the app) when a request is to be forwarded and none is connected (first, or
   * after the server closed an idle connection). Resolves undefined when it cannot be reached: 503.
   */
  dial?: () => Promise<Socket | undefined>;
  /** The L7 decision for a complete request head; absent: every request is forwarded. */
  allow?: (head: HttpHead) => boolean;
  /** A request refused by `allow` (before its exchange is reported). */
  onDenied?: () => void;
  /** One request answered (or abandoned). */
  onExchange: (x: HttpExchange) => void;
  /** Aborting cuts both sides; the reason is signal.reason when it is "revoked", else "shutdown". */
  signal: AbortSignal;
  /** 0: none. */
  idleTimeoutMs: number;
  /** 0: off. */
  keepAliveMs: number;
}

export interface HttpStream {
  /** How the connection ended, and the bytes each side sent; never rejects. */
  readonly done: Promise<PipeResult>;
  /** Closes the connection now when no request is in flight, else after the answer in flight (which says Connection: close). */
  drain(): void;
}

/**
 * A listener's live HTTP connections, so that its drain closes keep-alive ones when they are idle
 * instead of waiting for them (an idle timeout, or the drain's deadline and a cut).
 */
export interface HttpStreamSet {
  /** Follows `stream` until it ends (drained at once when the set drains already); resolves with its end. */
  track(stream: HttpStream): Promise<PipeResult>;
  /** Drains every stream followed now and from now on. */
  drain(): void;
}

export function createHttpStreamSet(): HttpStreamSet {
  const open = new Set<HttpStream>();
  let draining = false;
  return {
    track(stream) {
      open.add(stream);
      if (draining) stream.drain();
      return stream.done.finally(() => open.delete(stream));
    },
    drain() {
      draining = true;
      for (const s of open) s.drain();
    },
  };
}

/**
 * Makes each read of `sock` land in the process's scratch buffer and reach `onData` as a right-sized
 * copy, instead of Node's new 64 KiB ArrayBuffer per read (cut to size after the read): the same
 * chunks as 'data' events, which stream's logic keeps (held heads, a backlog), at less cost per read.
 * What the socket read before this stays in its readable buffer and still comes as 'data' (which
 * `onData` also handles) when it is resumed, ahead of any later read. pause()/resume() work as before.
 */
function readOwnCopies(sock: Socket, onData: (chunk: Buffer) => void): void {
  readIntoScratch(sock, scratchBuffer(), (n, buf) => {
    const chunk = Buffer.allocUnsafe(n); // small reads come from Node's pool
    buf.copy(chunk, 0, 0, n);
    onData(chunk);
    return true;
  });
}

/** Envoy's RBAC filter answers a denied request with this body (and 403). */
const DENIED_BODY = "RBAC: access denied";
const DENIED = localAnswer(403, "Forbidden", DENIED_BODY, false);
const DENIED_CLOSE = localAnswer(403, "Forbidden", DENIED_BODY, true);
const BAD_REQUEST = localAnswer(400, "Bad Request", "", true);
const HEADERS_TOO_LARGE = localAnswer(431, "Request Header Fields Too Large", "", true);
/** The app could not be reached, or failed before answering (Envoy says 503 too). */
const UNAVAILABLE = localAnswer(503, "Service Unavailable", "app unavailable", true);
const BAD_GATEWAY = localAnswer(502, "Bad Gateway", "", true);

/** Requests read ahead of their answers at most (pipelining): then the client is not read until one is answered. */
const MAX_IN_FLIGHT = 64;

/** A request head must be complete within this long of its first byte (slowloris), as node:http's default. */
const HEAD_TIMEOUT_MS = 60_000;

interface LocalAnswer { readonly status: number; readonly bytes: Buffer; readonly bodyBytes: number; readonly close: boolean }

function localAnswer(status: number, text: string, body: string, close: boolean): LocalAnswer {
  const head = `HTTP/1.1 ${status} ${text}\r\ncontent-type: text/plain\r\ncontent-length: ${body.length}\r\n${close ? "connection: close\r\n" : ""}\r\n`;
  return { status, bytes: Buffer.from(head + body, "latin1"), bodyBytes: body.length, close };
}

/** A request waiting for its answer, in order. */
interface InFlight {
  readonly method: string;
  readonly url: string;
  readonly startedMs: number;
  /** The proxy answers it itself, when its turn comes. */
  readonly local: LocalAnswer | undefined;
  /** An allowed Upgrade or CONNECT: a 101 (2xx for CONNECT) turns the connection raw. */
  readonly upgrade: boolean;
  /** The client asked to close after it (Connection: close, or HTTP/1.0 without keep-alive). */
  closeAfter: boolean;
  status: number;
  bodyBytes: number;
}

type Framing = { t: "none" } | { t: "length"; n: number } | { t: "chunked" } | { t: "eof" };
const NONE: Framing = { t: "none" };
const EOF: Framing = { t: "eof" };
const CHUNKED: Framing = { t: "chunked" };

/**
 * Serves `client` as HTTP/1.1 until it closes. Returns undefined, touching nothing, when this Node's
 * parser is not usable (the start-up self-test says so too); the caller then pipes bytes.
 */
export function streamHttp(client: Socket, opts: HttpStreamOptions): HttpStream | undefined {
  const reqHeads = createHeadParser("request");
  const resHeads = createHeadParser("response");
  if (reqHeads === undefined || resHeads === undefined) return undefined;
  const reqBody = newBodyCursor();
  const resBody = newBodyCursor();

  const { promise: done, resolve } = Promise.withResolvers<PipeResult>();
  let server: Socket | undefined;
  let bytesFromClient = 0;
  let bytesFromServer = 0;
  let reason: PipeCloseReason | undefined;
  let closing = false; // an orderly close has begun: no more requests are read
  let settled = false;
  let draining = false;
  let clientEnded = false;

  // Requests (client → server).
  type ReqState = "head" | "body" | "raw" | "closed";
  let rq: ReqState = "head";
  let reqForward = true; // false: a refused request's body, read and dropped
  let reqAfterBody: "head" | "closed" = "head";
  const reqHeld: Buffer[] = [];
  let headTimer: NodeJS.Timeout | undefined;
  /** Set while the server is being dialled: the client's bytes wait here (the client is paused). */
  let backlog: Buffer[] | undefined;

  // Answers (server → client).
  type ResState = "head" | "body";
  let rs: ResState = "head";
  const resHeld: Buffer[] = [];
  const queue: InFlight[] = [];

  /** No request is being read or waits for its answer. */
  const idle = (): boolean => queue.length === 0 && backlog === undefined && (rq === "closed" || (rq === "head" && reqHeld.length === 0));

  // ---- the end ----

  /** Cuts both sides (a reset: nobody may take what was sent for complete). */
  const finish = (r: PipeCloseReason): void => {
    if (settled) return;
    reason ??= r;
    closing = true;
    cut(client);
    if (server !== undefined) cut(server);
    if (client.closed) settle();
  };

  /** Ends in order: what was written is flushed, then the client gets a FIN and the server is let go. */
  const closeInOrder = (): void => {
    if (closing) return;
    closing = true;
    flushRange();
    rq = "closed";
    client.pause();
    server?.end();
    if (client.destroyed) return settle();
    client.end(() => client.destroy());
  };

  const settle = (): void => {
    if (settled) return;
    settled = true;
    clearTimeout(headTimer);
    opts.signal.removeEventListener("abort", onAbort);
    client.off("data", onClientData).off("end", onClientEnd).off("error", onClientError).off("close", onClientClose).off("drain", onClientDrain);
    client.setTimeout(0);
    // Requests that got no answer are reported as such.
    for (const p of queue.splice(0)) report(p, 0);
    if (server !== undefined) {
      detachServer(server);
      server.destroy();
    }
    resolve({ reason: reason ?? "done", bytesFromClient, bytesFromServer });
  };

  const report = (p: InFlight, status: number): void => {
    opts.onExchange({ method: p.method, url: p.url, status, bodyBytes: p.bodyBytes, seconds: (performance.now() - p.startedMs) / 1000 });
  };

  // ---- writing ----

  const toServer = (b: Buffer): void => {
    if (server !== undefined && !server.write(b)) client.pause();
  };
  // What one read of the server forwards as it came (a head and its body, say) is one range of that
  // read, written once: [from, to) of `reading` (byte offsets in its ArrayBuffer).
  let reading: Buffer | undefined;
  let from = 0;
  let to = 0;
  const flushRange = (): void => {
    if (reading === undefined || to === from || client.destroyed) return;
    const b = reading.subarray(from - reading.byteOffset, to - reading.byteOffset);
    from = to;
    if (!client.write(b)) server?.pause();
  };
  const toClient = (b: Buffer): void => {
    const r = reading;
    if (r !== undefined && b.buffer === r.buffer && b.byteOffset >= r.byteOffset && b.byteOffset + b.length <= r.byteOffset + r.length) {
      if (b.byteOffset !== to) {
        flushRange();
        from = to = b.byteOffset;
      }
      to += b.length;
      return;
    }
    flushRange();
    if (!client.write(b)) server?.pause();
  };
  const onClientDrain = (): void => void server?.resume();
  const onServerDrain = (): void => {
    if (backlog === undefined && !closing) client.resume();
  };

  /** Sends the proxy's own answers that are next in line; after one that closes, the connection ends. */
  const answerLocal = (): void => {
    for (let p = queue[0]; p?.local !== undefined; p = queue[0]) {
      dequeue();
      toClient(p.local.bytes);
      p.bodyBytes = p.local.bodyBytes;
      report(p, p.local.status);
      if (p.local.close || p.closeAfter) return closeInOrder();
    }
    if ((draining || rq === "closed") && idle() && !settled) closeInOrder();
  };

  /** Queues `p`; a client that pipelines far ahead of the answers is not read until they catch up. */
  const enqueue = (p: InFlight): void => {
    if (queue.push(p) >= MAX_IN_FLIGHT) client.pause();
  };
  const dequeue = (): InFlight => {
    const p = queue.shift()!;
    if (queue.length === MAX_IN_FLIGHT - 1 && backlog === undefined && !closing) client.resume();
    return p;
  };

  const enqueueLocal = (head: HttpHead, answer: LocalAnswer, startedMs: number): void => {
    enqueue({ method: head.method, url: head.url, startedMs, local: answer, upgrade: false, closeAfter: answer.close, status: answer.status, bodyBytes: 0 });
    if (queue.length === 1) answerLocal();
  };

  // ---- requests ----

  const onClientData = (chunk: Buffer): void => {
    bytesFromClient += chunk.length;
    if (backlog !== undefined) return void backlog.push(chunk);
    // What one read forwards goes out in one write (one TLS record, one syscall), head and body alike.
    const s = server;
    s?.cork();
    readRequests(chunk, 0);
    s?.uncork();
  };

  const readRequests = (chunk: Buffer, from: number): void => {
    let off = from;
    while (off < chunk.length && !settled) {
      if (backlog !== undefined) return void backlog.push(chunk.subarray(off));
      switch (rq) {
        case "head": {
          const r = reqHeads.execute(chunk, off);
          if (typeof r !== "number") return badRequest(r);
          if (r === -1) {
            reqHeld.push(off === 0 ? chunk : chunk.subarray(off));
            headTimer ??= setTimeout(() => finish("client_timeout"), HEAD_TIMEOUT_MS);
            return;
          }
          const bytes = reqHeld.length === 0 ? chunk.subarray(off, r) : Buffer.concat([...reqHeld.splice(0), chunk.subarray(off, r)]);
          clearTimeout(headTimer);
          headTimer = undefined;
          off = r;
          onRequestHead(reqHeads.head, bytes);
          break;
        }
        case "body": {
          const end = advanceBody(reqBody, chunk, off);
          if (typeof end !== "number") return reqForward ? finish("client_error") : badRequest(end);
          if (reqForward) toServer(slice(chunk, off, end));
          off = end;
          if (reqBody.complete) requestEnded();
          break;
        }
        case "raw":
          toServer(slice(chunk, off, chunk.length));
          off = chunk.length;
          break;
        case "closed":
          return; // after a request that ends the connection: nothing more is read
      }
    }
  };

  const requestEnded = (): void => {
    rq = clientEnded ? "closed" : reqAfterBody;
    reqHeads.reset();
    if (rq === "closed") answerLocal();
  };

  const startBody = (f: Framing): void => {
    if (startBodyCursor(reqBody, f)) rq = "body";
    else requestEnded();
  };

  const onRequestHead = (head: HttpHead, bytes: Buffer): void => {
    const startedMs = performance.now();
    const framing = requestFraming(head);
    if (framing === undefined) return badRequest({ code: "HPE_INVALID_TRANSFER_ENCODING", reason: "" });
    const closeAfter = !head.keepAlive;
    if (opts.allow !== undefined && !opts.allow(head)) {
      opts.onDenied?.();
      // A client waiting for 100 Continue may never send the body it announced: close after the 403.
      const waits = framing.t !== "none" && fieldHasToken(head.headers, "expect", "100-continue");
      reqForward = false;
      reqAfterBody = head.upgrade || waits || closeAfter ? "closed" : "head";
      enqueueLocal(head, head.upgrade || waits || closeAfter ? DENIED_CLOSE : DENIED, startedMs);
      if (head.upgrade) return requestEnded(); // what follows an upgrade head is not HTTP
      return startBody(framing);
    }
    const p: InFlight = { method: head.method, url: head.url, startedMs, local: undefined, upgrade: head.upgrade, closeAfter, status: 0, bodyBytes: 0 };
    if (server === undefined) return dialThenForward(head, bytes, framing, p);
    forwardRequest(head, bytes, framing, p);
  };

  const forwardRequest = (head: HttpHead, bytes: Buffer, framing: Framing, p: InFlight): void => {
    enqueue(p);
    toServer(head.upgrade ? bytes : withoutHopByHop(head, bytes, requestLine(head), p.closeAfter ? "close" : "keep-alive"));
    reqForward = true;
    reqAfterBody = p.closeAfter ? "closed" : "head";
    if (head.upgrade) {
      rq = "raw"; // the bytes after an Upgrade or CONNECT head are the new protocol's
      reqHeads.reset();
      return;
    }
    startBody(framing);
  };

  const dialThenForward = (head: HttpHead, bytes: Buffer, framing: Framing, p: InFlight): void => {
    if (opts.dial === undefined) return enqueueLocal(head, UNAVAILABLE, p.startedMs);
    backlog = [];
    client.pause();
    void opts.dial().then((s) => {
      const waiting = backlog!;
      backlog = undefined;
      if (settled) return void s?.destroy();
      if (s === undefined) {
        rq = "closed";
        return enqueueLocal(head, UNAVAILABLE, p.startedMs);
      }
      attachServer(s);
      forwardRequest(head, bytes, framing, p);
      for (const b of waiting) readRequests(b, 0);
      if (clientEnded && backlog === undefined) onClientEnd();
      else if (!closing && backlog === undefined) client.resume();
    });
  };

  const badRequest = (e: HttpParseError): void => {
    clearTimeout(headTimer);
    rq = "closed";
    reqHeld.length = 0;
    const head: HttpHead = { ...reqHeads.head, method: "", url: "" };
    enqueueLocal(head, e.code === "HPE_HEADER_OVERFLOW" ? HEADERS_TOO_LARGE : BAD_REQUEST, performance.now());
  };

  const onClientEnd = (): void => {
    clientEnded = true;
    if (backlog !== undefined || settled) return; // seen again once the dial settles
    // Half-closed after its last request: the answers still go back, then the connection closes.
    if (rq === "head" && reqHeld.length === 0) rq = "closed";
    if (rq === "raw" || rq === "closed") {
      if (idle()) closeInOrder();
      return;
    }
    finish("client_reset"); // in the middle of a request
  };
  const onClientError = (err: NodeJS.ErrnoException): void => finish(errorCloseReason(err, "client"));
  const onClientClose = (): void => {
    if (!closing) reason ??= "client_reset";
    if (server !== undefined && !server.destroyed) (reason === "done" || reason === undefined ? server.destroy() : cut(server));
    settle();
  };

  // ---- answers ----

  const onServerData = (chunk: Buffer): void => {
    bytesFromServer += chunk.length;
    reading = chunk;
    from = to = chunk.byteOffset;
    client.cork(); // a rebuilt head and the body after it still leave in one write
    readAnswers(chunk);
    flushRange();
    reading = undefined;
    client.uncork();
  };

  const readAnswers = (chunk: Buffer): void => {
    let off = 0;
    while (off < chunk.length && !settled) {
      switch (rs) {
        case "head": {
          const r = resHeads.execute(chunk, off);
          if (typeof r !== "number") return badResponse();
          if (r === -1) return void resHeld.push(off === 0 ? chunk : chunk.subarray(off));
          const bytes = resHeld.length === 0 ? chunk.subarray(off, r) : Buffer.concat([...resHeld.splice(0), chunk.subarray(off, r)]);
          off = r;
          if (onResponseHead(resHeads.head, bytes)) return switchToRaw(chunk.subarray(off));
          break;
        }
        case "body": {
          const end = advanceBody(resBody, chunk, off);
          if (typeof end !== "number") return finish("server_error");
          toClient(slice(chunk, off, end));
          queue[0]!.bodyBytes += end - off;
          off = end;
          if (resBody.complete) responseEnded();
          break;
        }
      }
    }
  };

  /** Forwards an answer's head; true when the connection turns raw after it. */
  const onResponseHead = (head: HttpHead, bytes: Buffer): boolean => {
    const p = queue[0];
    if (p === undefined || p.local !== undefined) {
      badResponse(); // an answer nobody asked for
      return false;
    }
    const status = head.statusCode;
    if (status === 101 ? p.upgrade : p.method === "CONNECT" && p.upgrade && status >= 200 && status < 300) {
      p.status = status;
      toClient(bytes);
      return true;
    }
    if (status < 200) {
      // 1xx (100 Continue, 103 Early Hints): interim, the final answer follows.
      toClient(withoutHopByHop(head, bytes, statusLine(head), undefined));
      resHeads.reset();
      return false;
    }
    p.status = status;
    // An upgrade the server declined: the client's bytes after it were not HTTP.
    if (p.upgrade) p.closeAfter = true;
    const f: Framing = p.method === "HEAD" || status === 204 || status === 304 ? NONE : responseFraming(head);
    // The server closes after this answer: we may dial it again for the next request (the app), or not (an upstream instance).
    if (f.t === "eof" || (!head.keepAlive && opts.dial === undefined)) p.closeAfter = true;
    toClient(withoutHopByHop(head, bytes, statusLine(head), p.closeAfter || draining ? "close" : "keep-alive"));
    if (draining) p.closeAfter = true;
    if (startBodyCursor(resBody, f)) rs = "body";
    else responseEnded();
    return false;
  };

  const responseEnded = (): void => {
    const p = dequeue();
    rs = "head";
    resHeads.reset();
    report(p, p.status);
    if (p.closeAfter) return closeInOrder();
    answerLocal();
  };

  /** The server sent what is not HTTP: a 502 when nothing of that answer went out, else a cut. */
  const badResponse = (): void => {
    const p = queue[0];
    if (rs !== "head" || p === undefined || p.local !== undefined) return finish("server_error");
    queue[0] = { ...p, local: BAD_GATEWAY };
    if (server !== undefined) detachServer(server).destroy();
    server = undefined;
    answerLocal();
  };

  /** The server closed, or failed: what that means depends on where the exchange stood. */
  const serverGone = (failure: PipeCloseReason | undefined): void => {
    const s = server!;
    detachServer(s);
    server = undefined;
    if (failure === undefined) s.end(); // its FIN is answered; it closes once written
    if (rs === "body" && resBody.t === "eof" && failure === undefined) return responseEnded(); // the answer was delimited by the close
    if (rs === "head" && resHeld.length === 0) {
      const p = queue[0];
      if (p === undefined || p.local !== undefined) {
        // Idle: the app's keep-alive ran out. The next request dials again; an upstream instance's end is the connection's.
        if (opts.dial === undefined) closeInOrder();
        return;
      }
      // A request got no answer: 503 for it, then close (those behind it were sent to a server that is gone).
      queue[0] = { ...p, local: UNAVAILABLE };
      if (failure !== undefined) s.destroy();
      return answerLocal();
    }
    finish(failure ?? "server_reset"); // an answer was cut short: the client must not take it for complete
  };
  const onServerEnd = (): void => serverGone(undefined);
  const onServerError = (err: NodeJS.ErrnoException): void => serverGone(errorCloseReason(err, "server"));
  const onServerClose = (): void => {
    if (server !== undefined) serverGone("server_reset"); // destroyed without an end or an error
  };

  const attachServer = (s: Socket): void => {
    server = s;
    s.on("data", onServerData).on("end", onServerEnd).on("error", onServerError).on("close", onServerClose).on("drain", onServerDrain);
    readOwnCopies(s, onServerData);
    s.setNoDelay(true);
    if (opts.keepAliveMs > 0) s.setKeepAlive(true, opts.keepAliveMs);
    s.resume(); // a dialer may have paused it; adding 'data' does not undo that
  };
  const detachServer = (s: Socket): Socket => {
    s.off("data", onServerData).off("end", onServerEnd).off("error", onServerError).off("close", onServerClose).off("drain", onServerDrain);
    s.on("error", ignore);
    return s;
  };

  /** 101 (or 2xx to CONNECT): from here on, bytes both ways, as layer 4 carries them. */
  const switchToRaw = (rest: Buffer): void => {
    const p = dequeue();
    report(p, p.status);
    const s = server!;
    client.pause();
    s.pause();
    detachServer(s);
    settled = true; // pipe() owns both sockets from here
    clearTimeout(headTimer);
    opts.signal.removeEventListener("abort", onAbort);
    client.off("data", onClientData).off("end", onClientEnd).off("error", onClientError).off("close", onClientClose).off("drain", onClientDrain);
    client.setTimeout(0);
    flushRange();
    if (rest.length > 0) client.write(rest);
    void pipe(client, s, { signal: opts.signal, idleTimeoutMs: opts.idleTimeoutMs, keepAliveMs: opts.keepAliveMs }).then((r) =>
      resolve({ reason: r.reason, bytesFromClient: bytesFromClient + r.bytesFromClient, bytesFromServer: bytesFromServer + r.bytesFromServer }),
    );
  };

  const onAbort = (): void => {
    const r: unknown = opts.signal.reason;
    finish(isPipeCloseReason(r) ? r : "shutdown");
  };
  // Silence with nothing in flight ends a keep-alive connection in order, as layer 4 ends an idle
  // one; silence in the middle of an exchange is a cut, so neither side takes half of it for whole.
  const onIdle = (): void => {
    if (!idle()) return finish("idle_timeout");
    reason ??= "idle_timeout";
    closeInOrder();
  };

  // ---- start ----

  client.on("data", onClientData).on("end", onClientEnd).on("error", onClientError).on("close", onClientClose).on("drain", onClientDrain);
  readOwnCopies(client, onClientData);
  client.setNoDelay(true);
  if (opts.keepAliveMs > 0) client.setKeepAlive(true, opts.keepAliveMs);
  // Any byte either way passes through the client's socket, whose timer both refresh.
  if (opts.idleTimeoutMs > 0) client.setTimeout(opts.idleTimeoutMs, onIdle);
  opts.signal.addEventListener("abort", onAbort, { once: true });
  if (opts.server !== undefined) attachServer(opts.server);
  if (opts.signal.aborted) onAbort();
  else if (client.closed) finish("client_reset");
  else {
    client.resume(); // what it read before we attached comes as 'data' now
    if (client.readableEnded) onClientEnd();
  }

  return {
    done,
    drain() {
      draining = true;
      if (!settled && idle()) closeInOrder();
    },
  };
}

function ignore(): void {}

/** Where a body being read stands: its framing, what is left of a length, the chunked walker. */
interface BodyCursor { t: "length" | "chunked" | "eof"; remaining: number; walker: ChunkedBodyWalker | undefined; complete: boolean }

function newBodyCursor(): BodyCursor {
  return { t: "eof", remaining: 0, walker: undefined, complete: false };
}

/** Sets `c` at the start of a body framed by `f`; false when there is no body to read. */
function startBodyCursor(c: BodyCursor, f: Framing): boolean {
  if (f.t === "none" || (f.t === "length" && f.n === 0)) return false;
  c.t = f.t;
  c.complete = false;
  if (f.t === "length") c.remaining = f.n;
  else if (f.t === "chunked") (c.walker ??= createChunkedBodyWalker()!).reset();
  return true;
}

/** The offset in `chunk` where the body's bytes from `off` end (all of it, or the body's end: then `c.complete`), or a framing error. */
function advanceBody(c: BodyCursor, chunk: Buffer, off: number): number | HttpParseError {
  if (c.t === "eof") return chunk.length; // until the server closes
  if (c.t === "length") {
    const end = Math.min(chunk.length, off + c.remaining);
    c.remaining -= end - off;
    c.complete = c.remaining === 0;
    return end;
  }
  const e = c.walker!.execute(chunk, off);
  if (typeof e !== "number") return e;
  c.complete = e !== -1;
  return e === -1 ? chunk.length : e;
}

/** buf[start, end) without a new Buffer object when that is all of it. */
function slice(buf: Buffer, start: number, end: number): Buffer {
  return start === 0 && end === buf.length ? buf : buf.subarray(start, end);
}

/** The value of the first field named `name` (lower case), or undefined. */
function field(headers: readonly string[], name: string): string | undefined {
  for (let i = 0; i < headers.length; i += 2) if (headers[i]!.length === name.length && headers[i]!.toLowerCase() === name) return headers[i + 1];
  return undefined;
}

/** True when a comma-separated field `name` holds `token` (case-insensitive), in any of its lines. */
function fieldHasToken(headers: readonly string[], name: string, token: string): boolean {
  for (let i = 0; i < headers.length; i += 2) {
    if (headers[i]!.toLowerCase() !== name) continue;
    for (const t of headers[i + 1]!.split(",")) if (t.trim().toLowerCase() === token) return true;
  }
  return false;
}

/** RFC 9112 §6.3 for a request llhttp accepted: chunked, a length, or no body. Undefined: a coding we cannot frame. */
function requestFraming(head: HttpHead): Framing | undefined {
  const te = field(head.headers, "transfer-encoding");
  if (te !== undefined) return lastCodingIsChunked(te) ? CHUNKED : undefined;
  const cl = field(head.headers, "content-length");
  return cl === undefined ? NONE : { t: "length", n: Number(cl) };
}

/** RFC 9112 §6.3 for an answer that may have a body: chunked, a length, or until the server closes. */
function responseFraming(head: HttpHead): Framing {
  const te = field(head.headers, "transfer-encoding");
  if (te !== undefined) return lastCodingIsChunked(te) ? CHUNKED : EOF;
  const cl = field(head.headers, "content-length");
  return cl === undefined ? EOF : { t: "length", n: Number(cl) };
}

function lastCodingIsChunked(te: string): boolean {
  const i = te.lastIndexOf(",");
  return (i === -1 ? te : te.slice(i + 1)).trim().toLowerCase() === "chunked";
}

// RFC 9110 §7.6.1: fields that describe one hop, never forwarded (Transfer-Encoding excepted: see the top).
const HOP_BY_HOP: ReadonlySet<string> = new Set(["connection", "keep-alive", "proxy-connection", "te", "upgrade"]);

function requestLine(h: HttpHead): string {
  return `${h.method} ${h.url} HTTP/${h.versionMajor}.${h.versionMinor}\r\n`;
}
function statusLine(h: HttpHead): string {
  return `HTTP/${h.versionMajor}.${h.versionMinor} ${h.statusCode} ${h.statusMessage}\r\n`;
}

/**
 * The head as it came when its only hop-by-hop field is a Connection that says just what ours says
 * (or there is none, and ours is not close); else the head rebuilt without them (and the fields
 * Connection names), with `connection: <ours>` when given. The first case returns `bytes` itself:
 * a message that crossed one of our proxies already (which wrote its Connection) is not rebuilt again.
 */
function withoutHopByHop(head: HttpHead, bytes: Buffer, firstLine: string, ours: "close" | "keep-alive" | undefined): Buffer {
  const h = head.headers;
  let named: string[] | undefined;
  let rebuild = false;
  for (let i = 0; i < h.length; i += 2) {
    const name = h[i]!.toLowerCase();
    if (!HOP_BY_HOP.has(name)) continue;
    if (name !== "connection") rebuild = true;
    else {
      for (const t of h[i + 1]!.split(",")) {
        const token = t.trim().toLowerCase();
        (named ??= []).push(token);
        if (token !== ours) rebuild = true;
      }
    }
  }
  if (!rebuild && (named !== undefined || ours !== "close")) return bytes;
  let out = firstLine;
  for (let i = 0; i < h.length; i += 2) {
    const name = h[i]!.toLowerCase();
    if (HOP_BY_HOP.has(name) || named?.includes(name) === true) continue;
    out += `${h[i]}: ${h[i + 1]}\r\n`;
  }
  // The sender's Connection is replaced by ours; none was there: HTTP/1.1's default stands.
  if (ours === "close" || (ours !== undefined && named !== undefined)) out += `connection: ${ours}\r\n`;
  return Buffer.from(`${out}\r\n`, "latin1"); // llhttp's strings are latin1: bytes above 0x7f go back as they came
}
