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
import { TLSSocket } from "node:tls";
import { errorCloseReason, isPipeCloseReason, type PipeCloseReason } from "./close-reason.js";
import { createChunkedBodyWalker, createHeadParser, readIntoScratch, type ChunkedBodyWalker, type HeadParser, type HttpHead, type HttpParseError } from "./node-internals.js";
import { countPiped, cut, pipe, RecordCoalescer, scratchBuffer, writeFromScratch, type PipeResult } from "./pipe.js";

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
  const scratch = scratchBuffer();

  const { promise: done, resolve } = Promise.withResolvers<PipeResult>();
  let server: Socket | undefined;
  let bytesFromClient = 0;
  let bytesFromServer = 0;
  let reason: PipeCloseReason | undefined;
  let closing = false; // an orderly close has begun: no more requests are read
  let settled = false;
  let draining = false;
  let clientEnded = false;
  let serverFull = false; // the server's write() said full: its 'drain' resumes the client

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

  /** `b` to hold past this read: a copy when it lies in the scratch buffer, which the next read overwrites. */
  const keep = (b: Buffer): Buffer => (b.buffer === scratch.buffer ? Buffer.from(b) : b);

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
    toServer.flushAll();
    toClient.flushAll();
    rq = "closed";
    client.pause();
    server?.end();
    if (client.destroyed) return settle();
    client.end(() => client.destroy());
  };

  /** Lets go of the client: our listeners, timers and the signal (the stream settles, or pipe() takes over). */
  const releaseClient = (): void => {
    settled = true;
    clearTimeout(headTimer);
    opts.signal.removeEventListener("abort", onAbort);
    client.off("data", onClientData).off("end", onClientEnd).off("error", onClientError).off("close", onClientClose).off("drain", onClientDrain);
    client.setTimeout(0);
  };

  const settle = (): void => {
    if (settled) return;
    releaseClient();
    toClient.discard();
    toServer.discard();
    // Requests that got no answer are reported as such.
    for (const p of queue.splice(0)) report(p, 0);
    if (server !== undefined) detachServer(server).destroy();
    resolve({ reason: reason ?? "done", bytesFromClient, bytesFromServer });
  };

  const report = (p: InFlight, status: number): void => {
    opts.onExchange({ method: p.method, url: p.url, status, bodyBytes: p.bodyBytes, seconds: (performance.now() - p.startedMs) / 1000 });
  };

  // ---- writing ----

  const toServer = new Forwarder(scratch, () => {
    serverFull = true;
    client.pause();
  });
  const toClient = new Forwarder(scratch, () => void server?.pause());
  toClient.setDst(client);

  /** Reads the client again unless something holds it: a dial, the close, a full server, or the in-flight limit. */
  const resumeClient = (): void => {
    if (backlog === undefined && !closing && !serverFull && queue.length < MAX_IN_FLIGHT) client.resume();
  };
  const onClientDrain = (): void => void server?.resume();
  const onServerDrain = (): void => {
    serverFull = false;
    resumeClient();
  };

  /** Sends the proxy's own answers that are next in line; after one that closes, the connection ends. */
  const answerLocal = (): void => {
    for (let p = queue[0]; p?.local !== undefined; p = queue[0]) {
      dequeue();
      toClient.send(p.local.bytes);
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
    if (queue.length === MAX_IN_FLIGHT - 1) resumeClient();
    return p;
  };

  const enqueueLocal = (head: HttpHead, answer: LocalAnswer, startedMs: number): void => {
    enqueue({ method: head.method, url: head.url, startedMs, local: answer, upgrade: false, closeAfter: answer.close, status: answer.status, bodyBytes: 0 });
    if (queue.length === 1) answerLocal();
  };

  // ---- requests ----

  // A read (into the scratch, or a 'data' chunk): what it forwards leaves in one write, head and body alike.
  const onClientData = (chunk: Buffer): void => {
    bytesFromClient += chunk.length;
    countPiped(chunk.length);
    if (backlog !== undefined) return void backlog.push(keep(chunk));
    readRequests(chunk);
  };

  const readRequests = (chunk: Buffer): void => {
    toServer.begin(chunk);
    let off = 0;
    while (off < chunk.length && !settled) {
      if (backlog !== undefined) {
        backlog.push(keep(chunk.subarray(off)));
        break;
      }
      if (rq === "head") {
        const r = headEnd(reqHeads, reqHeld, chunk, off, keep);
        if (typeof r !== "number") {
          badRequest(r);
          break;
        }
        if (r === -1) {
          headTimer ??= setTimeout(() => finish("client_timeout"), HEAD_TIMEOUT_MS);
          break;
        }
        clearTimeout(headTimer);
        headTimer = undefined;
        const bytes = wholeHead(reqHeld, chunk, off, r);
        off = r;
        onRequestHead(reqHeads.head, bytes);
      } else if (rq === "body") {
        const end = advanceBody(reqBody, chunk, off);
        if (typeof end !== "number") {
          if (reqForward) finish("client_error");
          else badRequest(end);
          break;
        }
        if (reqForward) toServer.forward(off, end);
        off = end;
        if (reqBody.complete) requestEnded();
      } else if (rq === "raw") {
        toServer.forward(off, chunk.length);
        off = chunk.length;
      } else break; // closed: after a request that ends the connection, nothing more is read
    }
    toServer.end();
  };

  const requestEnded = (): void => {
    rq = clientEnded ? "closed" : reqAfterBody;
    if (rq === "closed") answerLocal();
  };

  const startBody = (f: Framing): void => {
    if (startBodyCursor(reqBody, f)) rq = "body";
    else requestEnded();
  };

  const onRequestHead = (head: HttpHead, bytes: Buffer): void => {
    const startedMs = performance.now();
    const names = lowerCaseNames(head.headers);
    const framing = bodyFraming(head.headers, names, NONE, undefined);
    if (framing === undefined) return badRequest({ code: "HPE_INVALID_TRANSFER_ENCODING", reason: "" });
    const closeAfter = !head.keepAlive;
    if (opts.allow !== undefined && !opts.allow(head)) {
      opts.onDenied?.();
      // A client waiting for 100 Continue may never send the body it announced: close after the 403.
      const waits = framing.t !== "none" && fieldHasToken(head.headers, names, "expect", "100-continue");
      reqForward = false;
      reqAfterBody = head.upgrade || waits || closeAfter ? "closed" : "head";
      enqueueLocal(head, head.upgrade || waits || closeAfter ? DENIED_CLOSE : DENIED, startedMs);
      if (head.upgrade) return requestEnded(); // what follows an upgrade head is not HTTP
      return startBody(framing);
    }
    const p: InFlight = { method: head.method, url: head.url, startedMs, local: undefined, upgrade: head.upgrade, closeAfter, status: 0, bodyBytes: 0 };
    // The head goes on as it came, or rebuilt without its hop-by-hop fields.
    const out = head.upgrade ? bytes : withoutHopByHop(head, names, bytes, closeAfter ? "close" : "keep-alive");
    if (server === undefined) return dialThenForward(head, keep(out), framing, p);
    forwardRequest(head, out, framing, p);
  };

  const forwardRequest = (head: HttpHead, out: Buffer, framing: Framing, p: InFlight): void => {
    enqueue(p);
    toServer.send(out);
    reqForward = true;
    reqAfterBody = p.closeAfter ? "closed" : "head";
    if (head.upgrade) {
      rq = "raw"; // the bytes after an Upgrade or CONNECT head are the new protocol's
      return;
    }
    startBody(framing);
  };

  const dialThenForward = (head: HttpHead, out: Buffer, framing: Framing, p: InFlight): void => {
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
      forwardRequest(head, out, framing, p);
      for (const b of waiting) readRequests(b);
      if (clientEnded && backlog === undefined) onClientEnd();
      else resumeClient();
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
    countPiped(chunk.length);
    toClient.begin(chunk);
    readAnswers(chunk);
    toClient.end();
  };

  const readAnswers = (chunk: Buffer): void => {
    let off = 0;
    while (off < chunk.length && !settled) {
      if (rs === "head") {
        const r = headEnd(resHeads, resHeld, chunk, off, keep);
        if (typeof r !== "number") return badResponse();
        if (r === -1) return;
        const bytes = wholeHead(resHeld, chunk, off, r);
        off = r;
        if (onResponseHead(resHeads.head, bytes)) return switchToRaw(off);
      } else {
        const end = advanceBody(resBody, chunk, off);
        if (typeof end !== "number") return finish("server_error");
        toClient.forward(off, end);
        queue[0]!.bodyBytes += end - off;
        off = end;
        if (resBody.complete) responseEnded();
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
      toClient.send(bytes);
      return true;
    }
    const names = lowerCaseNames(head.headers);
    if (status < 200) {
      // 1xx (100 Continue, 103 Early Hints): interim, the final answer follows.
      toClient.send(withoutHopByHop(head, names, bytes, undefined));
      return false;
    }
    p.status = status;
    // An upgrade the server declined: the client's bytes after it were not HTTP.
    if (p.upgrade) p.closeAfter = true;
    const f = p.method === "HEAD" || status === 204 || status === 304 ? NONE : bodyFraming(head.headers, names, EOF, EOF);
    // The server closes after this answer: we may dial it again for the next request (the app), or not (an upstream instance).
    if (f.t === "eof" || (!head.keepAlive && opts.dial === undefined)) p.closeAfter = true;
    toClient.send(withoutHopByHop(head, names, bytes, p.closeAfter || draining ? "close" : "keep-alive"));
    if (draining) p.closeAfter = true;
    if (startBodyCursor(resBody, f)) rs = "body";
    else responseEnded();
    return false;
  };

  const responseEnded = (): void => {
    const p = dequeue();
    rs = "head";
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
    answerLocal();
  };

  /** The server closed, or failed: what that means depends on where the exchange stood. */
  const serverGone = (failure: PipeCloseReason | undefined): void => {
    const s = detachServer(server!);
    if (failure === undefined) s.end(); // its FIN is answered; it closes once written
    if (rs === "body" && resBody.t === "eof" && failure === undefined) return responseEnded(); // the answer was delimited by the close
    if (rs === "head" && resHeld.length === 0) {
      const p = queue[0];
      if (p === undefined || p.local !== undefined) {
        // Idle: the app's keep-alive ran out. The next request dials again; an upstream instance's end is the connection's.
        if (opts.dial === undefined) closeInOrder();
        else resumeClient();
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
    toServer.setDst(s);
    serverFull = false;
    s.on("data", onServerData).on("end", onServerEnd).on("error", onServerError).on("close", onServerClose).on("drain", onServerDrain);
    readIntoScratch(s, scratch, onServerRead);
    s.setNoDelay(true);
    if (opts.keepAliveMs > 0) s.setKeepAlive(true, opts.keepAliveMs);
    s.resume(); // a dialer may have paused it; adding 'data' does not undo that
  };
  /** Lets go of the server: it is no longer ours to write to or read from (errors on it are ignored). */
  const detachServer = (s: Socket): Socket => {
    s.off("data", onServerData).off("end", onServerEnd).off("error", onServerError).off("close", onServerClose).off("drain", onServerDrain);
    s.on("error", ignore);
    server = undefined;
    toServer.setDst(undefined);
    serverFull = false;
    return s;
  };

  /** 101 (or 2xx to CONNECT): from here on, bytes both ways, as layer 4 carries them; the read's bytes from `off` are the new protocol's. */
  const switchToRaw = (off: number): void => {
    const p = dequeue();
    report(p, p.status);
    const s = server!;
    client.pause();
    s.pause();
    detachServer(s);
    releaseClient(); // pipe() owns both sockets from here
    toClient.forward(off, toClient.length());
    toClient.flushAll();
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

  // Each read lands in the process's scratch buffer and is handled there, as a 'data' chunk would be
  // (what the socket read before this still comes as 'data', ahead of any later read): what goes on
  // in the same turn is written from it where that is safe, what is held (a head until it is
  // complete, a backlog while the server is dialled) is copied (keep).
  const onClientRead = (n: number, buf: Buffer): boolean => {
    onClientData(buf.subarray(0, n));
    return true;
  };
  const onServerRead = (n: number, buf: Buffer): boolean => {
    onServerData(buf.subarray(0, n));
    return true;
  };

  client.on("data", onClientData).on("end", onClientEnd).on("error", onClientError).on("close", onClientClose).on("drain", onClientDrain);
  readIntoScratch(client, scratch, onClientRead);
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

/**
 * One direction's writes while a read is handled (begin … end): the parts of that read that go on
 * as they came (a head, a body) are gathered while they are contiguous and written once, together
 * with the one piece from elsewhere before them (a rebuilt head, the proxy's own answer), so that
 * a head and its body leave in one write (one TLS record, one syscall). A read in the scratch buffer
 * is written from it where that is safe and copied where not, as pipe() does: writeFromScratch to a
 * TLS socket, a RecordCoalescer to a plain one (a TLS peer's full records, body bytes, gathered into
 * one write per turn). Outside a read, a piece is written at once. `onFull`: dst said it is full.
 */
class Forwarder {
  private dst: Socket | undefined;
  private coalescer: RecordCoalescer | undefined;
  private read: Buffer | undefined;
  private from = 0; // the gathered range: read[from, to)
  private to = 0;
  private lead: Buffer | undefined; // written before the range

  constructor(private readonly scratch: Buffer, private readonly onFull: () => void) {}

  /** Writes go to `d` from now on (undefined: nowhere); what was gathered for the one before goes to it first. */
  setDst(d: Socket | undefined): void {
    this.coalescer?.flush();
    this.dst = d;
    this.coalescer = d === undefined || d instanceof TLSSocket ? undefined : new RecordCoalescer(d, this.onFull);
  }

  begin(read: Buffer): void {
    this.read = read;
    this.from = this.to = 0;
  }

  end(): void {
    this.flush();
    this.read = undefined;
  }

  /** The length of the read being handled. */
  length(): number {
    return this.read?.length ?? 0;
  }

  /** read[start, end) of the read being handled. */
  forward(start: number, end: number): void {
    if (this.from === this.to) this.from = start;
    else if (start !== this.to) {
      this.flush();
      this.from = start;
    }
    this.to = end;
  }

  /** Any bytes: a view of the read being handled joins the range; others are written ahead of what follows. */
  send(b: Buffer): void {
    const r = this.read;
    if (r !== undefined && b.buffer === r.buffer && b.byteOffset >= r.byteOffset && b.byteOffset + b.length <= r.byteOffset + r.length) {
      const start = b.byteOffset - r.byteOffset;
      return this.forward(start, start + b.length);
    }
    if (this.lead !== undefined || this.from !== this.to) this.flush();
    this.lead = b;
    if (r === undefined) this.flush();
  }

  flush(): void {
    const { dst, lead, read, from, to } = this;
    this.lead = undefined;
    this.from = to;
    if (dst === undefined || dst.destroyed || (lead === undefined && from === to)) return;
    let ok: boolean;
    if (lead === undefined && read!.buffer === this.scratch.buffer) {
      ok = this.coalescer !== undefined ? this.coalescer.write(read!, from, to) : writeFromScratch(dst, read!, from, to);
    } else {
      this.coalescer?.flush(); // what it gathered goes first
      if (read === undefined || from === to) ok = dst.write(lead!);
      else if (lead !== undefined) {
        const out = Buffer.allocUnsafe(lead.length + to - from);
        lead.copy(out, 0);
        read.copy(out, lead.length, from, to);
        ok = dst.write(out);
      } else ok = dst.write(from === 0 && to === read.length ? read : read.subarray(from, to));
    }
    if (!ok) this.onFull();
  }

  /** flush(), and what the coalescer gathered: before an end, or before another writer takes over. */
  flushAll(): void {
    this.flush();
    if (this.coalescer !== undefined && !this.coalescer.flush()) this.onFull();
  }

  /** The stream ended: nothing more is written (what was gathered is dropped, its buffer kept for reuse). */
  discard(): void {
    this.coalescer?.discard();
    this.lead = undefined;
    this.from = this.to;
  }
}

/**
 * Parses a head from chunk[off, …): the offset just past it when it completed (the parser is then
 * ready for the next message; `parser.head` is this one), -1 when more is needed (what there is is
 * held, through `keep`), or the error.
 */
function headEnd(parser: HeadParser, held: Buffer[], chunk: Buffer, off: number, keep: (b: Buffer) => Buffer): number | HttpParseError {
  const r = parser.execute(chunk, off);
  if (r === -1) held.push(keep(off === 0 ? chunk : chunk.subarray(off)));
  else if (typeof r === "number") parser.reset();
  return r;
}

/** The bytes of a head that ends at chunk[end]: what was held of it, then chunk[off, end). */
function wholeHead(held: Buffer[], chunk: Buffer, off: number, end: number): Buffer {
  return held.length === 0 ? chunk.subarray(off, end) : Buffer.concat([...held.splice(0), chunk.subarray(off, end)]);
}

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

/** A head's field names in lower case, read once per head (framing, Expect, the hop-by-hop fields). */
function lowerCaseNames(headers: readonly string[]): string[] {
  const names = new Array<string>(headers.length >> 1);
  for (let i = 0; i < headers.length; i += 2) names[i >> 1] = headers[i]!.toLowerCase();
  return names;
}

/** The value of the first field named `name` (lower case), or undefined. */
function field(headers: readonly string[], names: readonly string[], name: string): string | undefined {
  const i = names.indexOf(name);
  return i === -1 ? undefined : headers[2 * i + 1];
}

/** True when a comma-separated field `name` holds `token` (case-insensitive), in any of its lines. */
function fieldHasToken(headers: readonly string[], names: readonly string[], name: string, token: string): boolean {
  for (let i = 0; i < names.length; i++) {
    if (names[i] !== name) continue;
    for (const t of headers[2 * i + 1]!.split(",")) if (t.trim().toLowerCase() === token) return true;
  }
  return false;
}

/**
 * RFC 9112 §6.3 for a message that may have a body (a request llhttp accepted, an answer): chunked,
 * a length, `unframed` when neither is given (requests: no body; answers: until the server closes),
 * `otherCoding` when the last transfer coding is not chunked (requests: undefined, a 400; answers:
 * until the server closes).
 */
function bodyFraming<O extends Framing | undefined>(headers: readonly string[], names: readonly string[], unframed: Framing, otherCoding: O): Framing | O {
  const te = field(headers, names, "transfer-encoding");
  if (te !== undefined) return lastCodingIsChunked(te) ? CHUNKED : otherCoding;
  const cl = field(headers, names, "content-length");
  return cl === undefined ? unframed : { t: "length", n: Number(cl) };
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
function withoutHopByHop(head: HttpHead, names: readonly string[], bytes: Buffer, ours: "close" | "keep-alive" | undefined): Buffer {
  const h = head.headers;
  let named: string[] | undefined;
  let rebuild = false;
  for (let i = 0; i < names.length; i++) {
    const name = names[i]!;
    if (!HOP_BY_HOP.has(name)) continue;
    if (name !== "connection") rebuild = true;
    else {
      for (const t of h[2 * i + 1]!.split(",")) {
        const token = t.trim().toLowerCase();
        (named ??= []).push(token);
        if (token !== ours) rebuild = true;
      }
    }
  }
  if (!rebuild && (named !== undefined || ours !== "close")) return bytes;
  let out = head.method === "" ? statusLine(head) : requestLine(head); // an answer has no method
  for (let i = 0; i < names.length; i++) {
    const name = names[i]!;
    if (HOP_BY_HOP.has(name) || named?.includes(name) === true) continue;
    out += `${h[2 * i]}: ${h[2 * i + 1]}\r\n`;
  }
  // The sender's Connection is replaced by ours; none was there: HTTP/1.1's default stands.
  if (ours === "close" || (ours !== undefined && named !== undefined)) out += `connection: ${ours}\r\n`;
  return Buffer.from(`${out}\r\n`, "latin1"); // llhttp's strings are latin1: bytes above 0x7f go back as they came
}
