// Every use of Node's private API in this codebase, in one place. Each one saves CPU or closes a
// hole that Node's public API leaves open, and each one is checked: selfTestNodeInternals() tries each
// on real loopback sockets at start-up (the sidecar logs what a Node release broke as errors), and test/net/node-internals.test.ts
// proves on real sockets that each still does what it is used for. When one is missing, its caller
// falls back to the public API (slower, or a FIN where a reset was meant), never to a crash.
import { once } from "node:events";
import { connect, createServer, Socket, type AddressInfo } from "node:net";
import { TLSSocket } from "node:tls";
import { settlesWithin } from "./wait.js";

// ---- scratch reads: a socket's reads land in one reused buffer instead of a new one each ----
//
// The mechanism behind net.connect({ onread }) (documented), applied to sockets Node made for us
// (accepted by a server, or wrapped by tls.Server) where the option cannot be passed: Node keeps
// the buffer and the callback under three symbols of net.Socket, and the stream handle (TCPWrap,
// TLSWrap) reads into whatever buffer useUserBuffer() gave it. A read then costs one call of the
// callback: no new ArrayBuffer, no Buffer, no Readable push or 'data' event. Node's own
// Socket.pause()/resume() honour the symbols (readStop/readStart), so backpressure works as before.
interface ScratchSymbols { buffer: symbol; callback: symbol; generator: symbol }
let scratchSymbols: ScratchSymbols | null | undefined; // undefined: not looked up yet; null: missing

function findScratchSymbols(): ScratchSymbols | null {
  if (scratchSymbols !== undefined) return scratchSymbols;
  const own = Object.getOwnPropertySymbols(new Socket());
  const named = (d: string): symbol | undefined => own.find((s) => s.description === d);
  const buffer = named("kBuffer");
  const callback = named("kBufferCb");
  const generator = named("kBufferGen");
  scratchSymbols = buffer && callback && generator ? { buffer, callback, generator } : null;
  return scratchSymbols;
}

type StreamHandle = { useUserBuffer?: (buf: Uint8Array) => void; reading?: boolean };
type SocketInternals = Socket & { _handle?: StreamHandle | null } & Record<symbol, unknown>;

/**
 * Makes each read of `sock` call `onRead(n, scratch)` with the bytes in scratch[0, n), in place of
 * 'data' events. `onRead` must be done with those bytes when it returns (the next read of any socket
 * sharing `scratch` overwrites them); returning false pauses the socket until resume(). End of
 * stream, errors and 'close' are emitted as before. A socket that reads into `scratch` already
 * changes hands: its reads go to `onRead` from now on (an HTTP connection that turns raw). Returns
 * false, changing nothing, when this Node lacks the mechanism, the socket has no open handle, or it
 * reads into another buffer; the caller then reads 'data' events.
 * Whatever the socket had already read stays in its readable buffer: take it with sock.read() first.
 */
export function readIntoScratch(sock: Socket, scratch: Buffer, onRead: (n: number, buf: Buffer) => boolean): boolean {
  const sym = findScratchSymbols();
  const s = sock as SocketInternals;
  const handle = s._handle;
  if (sym === null || handle == null || typeof handle.useUserBuffer !== "function") return false;
  if (s[sym.buffer] === scratch) {
    s[sym.callback] = onRead;
    return true;
  }
  if (s[sym.buffer] !== null) return false;
  s[sym.buffer] = scratch;
  s[sym.callback] = onRead;
  s[sym.generator] = null;
  handle.useUserBuffer(scratch);
  return true;
}

// ---- the TCP socket under a TLS socket ----

/** The socket that tls.Server's 'connection' event saw, for the TLS socket it wrapped in place. */
export function rawSocketOf(sock: TLSSocket): Socket | undefined {
  const parent = (sock as TLSSocket & { _parent?: unknown })._parent;
  return parent instanceof Socket ? parent : undefined;
}

// ---- a TLS socket closed with a TCP reset ----

/** The TCP handle under a TLS socket (Node's TCPWrap): the two methods resetOnDestroy() uses. */
interface TcpHandle {
  reset?: (cb?: () => void) => number;
  close: (cb?: () => void) => void;
}

/**
 * Makes the coming destroy() of a TLS socket close its TCP connection with a reset (SO_LINGER 0)
 * instead of a FIN. Node has no public reset for a TLS socket; destroying one closes its TCP handle
 * with handle.close(cb), later, off OpenSSL's stack, so that one call becomes a reset. (Resetting
 * the TCP socket at once would free the SSL under OpenSSL when called from inside a TLS callback: a
 * segfault, seen in the tests.) Returns false when the handle is not there to arm.
 */
export function resetOnDestroy(sock: TLSSocket): boolean {
  const tcp = (sock as unknown as { _handle?: { _parent?: TcpHandle } | null })._handle?._parent;
  if (tcp === undefined || typeof tcp.reset !== "function") return false;
  tcp.close = tcp.reset;
  return true;
}

// ---- linear-time regular expressions ----
//
// V8's linear-time engine (the `l` flag, enabled by the --enable-experimental-regexp-engine flag,
// which V8 takes at run time): no backtracking, so no request can make an operator's pattern run
// for seconds (`(a+)+$` on 26 hostile characters: 7.5 s on the backtracking engine). That is RE2's
// guarantee, which Envoy gives Consul's L7 intentions. Like RE2 it refuses backreferences and
// lookaround; it also refuses unicode mode, so patterns match UTF-16 code units (paths and headers
// are ASCII on the wire).
// The flag stays on once a pattern is compiled: V8 aborts the process when an `l` pattern runs with the
// flag off. Until then it stays off, because any V8 flag set changes V8's flag hash and V8 then refuses
// the code cache Node ships for its own modules: every builtin loaded afterwards compiles from source.
let linearEngineOn = false;

/** `source` compiled for the linear-time engine, or undefined when it cannot run there (or this V8 has no such engine). */
export function linearRegExp(source: string): RegExp | undefined {
  if (!linearEngineOn) {
    process.getBuiltinModule("node:v8").setFlagsFromString("--enable-experimental-regexp-engine");
    linearEngineOn = true;
  }
  try {
    return new RegExp(source, "l");
  } catch {
    return undefined;
  }
}

/** Whether the linear-time engine runs here; leaves the flag as it found it (see above). */
function linearEngineWorks(): boolean {
  const wasOn = linearEngineOn;
  try {
    // A backreference compiles on the backtracking engine only: refused means the linear one ran it.
    return linearRegExp("^(?:(a+)+)$")?.test("aab") === false && linearRegExp("(a)\\1") === undefined;
  } finally {
    if (!wasOn) {
      process.getBuiltinModule("node:v8").setFlagsFromString("--no-enable-experimental-regexp-engine");
      linearEngineOn = false;
    }
  }
}

// ---- a full garbage collection on demand, without --expose-gc ----
//
// The idle memory release (ops/idle-memory-release.ts) needs V8's gc(). Given at launch, --expose-gc
// changes V8's flag hash, so V8 refuses Node's code cache for every builtin module and compiles each
// from source: ~60 ms more CPU to start a proxy (bench/README.md, "where the time and memory go").
// V8 installs gc() in each context it creates while the flag is on: so the flag is on only while one
// fresh context is made, and the gc() taken from it collects the whole isolate.

/** V8's gc(), with the options object its gc extension takes. */
export type FullGc = (opts: { type: "major"; execution: "sync"; flavor: "last-resort" }) => void;
let fullGc: FullGc | null | undefined; // undefined: not made yet; null: this V8 gives none

/** A gc() for this process, or null when V8 no longer installs one when the flag is set at run time. */
export function exposedGc(): FullGc | null {
  if (fullGc !== undefined) return fullGc;
  const given = (globalThis as { gc?: unknown }).gc;
  if (typeof given === "function") return (fullGc = given as FullGc);
  const v8 = process.getBuiltinModule("node:v8");
  v8.setFlagsFromString("--expose-gc");
  try {
    const gc: unknown = process.getBuiltinModule("node:vm").runInNewContext("typeof gc === 'function' ? gc : undefined");
    fullGc = typeof gc === "function" ? (gc as FullGc) : null;
  } catch {
    fullGc = null;
  } finally {
    v8.setFlagsFromString("--no-expose-gc");
  }
  return fullGc;
}

// ---- llhttp, Node's HTTP/1.1 parser, for heads and chunked bodies ----
//
// Node's HTTPParser (the binding behind node:http, exported by the `_http_common` module) used to
// find where messages begin and end in a byte stream that is forwarded as it is (http-stream.ts).
// Two of its behaviours are relied on: a head callback returning 2 ("upgrade": no body, pause)
// makes execute() stop right after the head and return its length, without an Error object; and
// after a message of a `Connection: close` head, the next byte is refused with
// HPE_CLOSED_CONNECTION one past it, which finds the end of a chunked body the parser walked.

interface NodeHttpParser {
  initialize(type: number, resource: object, maxHeaderSize: number, lenient: number): void;
  execute(buf: Buffer): number | (Error & { code?: string; bytesParsed?: number });
  [k: number]: unknown;
}
interface HttpParserModule {
  HTTPParser: { new (): NodeHttpParser; REQUEST: number; RESPONSE: number; kOnHeaders: number; kOnHeadersComplete: number; kOnBody: number; kOnMessageComplete: number };
  methods: string[];
}
let parserModule: HttpParserModule | null | undefined; // undefined: not looked up yet; null: missing

function findParserModule(): HttpParserModule | null {
  if (parserModule !== undefined) return parserModule;
  try {
    const m = process.getBuiltinModule("_http_common") as unknown as Partial<HttpParserModule> | undefined;
    const P = m?.HTTPParser;
    parserModule = P !== undefined && typeof P.kOnHeadersComplete === "number" && Array.isArray(m?.methods) ? (m as HttpParserModule) : null;
  } catch {
    parserModule = null;
  }
  return parserModule;
}

/** One message head as llhttp parsed it. Header names keep their case; `headers` is flat: name, value, … */
export interface HttpHead {
  versionMajor: number;
  versionMinor: number;
  headers: string[];
  /** Requests: the method ("GET"); responses: "". */
  method: string;
  /** Requests: the request target as sent; responses: "". */
  url: string;
  /** Responses: the status code; requests: 0. */
  statusCode: number;
  statusMessage: string;
  /** Connection: upgrade with an Upgrade field, or CONNECT. */
  upgrade: boolean;
  keepAlive: boolean;
}

/** A parse failure: llhttp's code (HPE_…) and why. */
export interface HttpParseError { code: string; reason: string }

/** Finds heads: execute() returns the offset just past a complete head, -1 when it needs more bytes, or the error. */
export interface HeadParser {
  /** Parses buf[start, end) from where the last call stopped; the head found is `head`. */
  execute(buf: Buffer, start: number): number | HttpParseError;
  readonly head: HttpHead;
  /** Forgets the message: the next byte begins a new one. */
  reset(): void;
}

/** Finds the end of a chunked body: execute() returns the offset just past it, -1 when it needs more bytes, or the error. */
export interface ChunkedBodyWalker {
  execute(buf: Buffer, start: number): number | HttpParseError;
  /** Starts a new body. */
  reset(): void;
}

const EMPTY_HEAD: HttpHead = { versionMajor: 1, versionMinor: 1, headers: [], method: "", url: "", statusCode: 0, statusMessage: "", upgrade: false, keepAlive: true };
const HPE_CLOSED_CONNECTION = "HPE_CLOSED_CONNECTION";
const PAUSE_AFTER_HEAD = 2; // llhttp: "no body, and stop here" (what Node returns for an upgrade)

function parseError(r: Error & { code?: string }): HttpParseError {
  return { code: r.code ?? "HPE_UNKNOWN", reason: (r as { reason?: string }).reason ?? r.message };
}

/**
 * A head parser for requests or responses; undefined when this Node has no usable HTTPParser (the
 * caller then proxies at layer 4 and says so).
 */
export function createHeadParser(kind: "request" | "response"): HeadParser | undefined {
  const m = findParserModule();
  if (m === null) return undefined;
  const { HTTPParser, methods } = m;
  const type = kind === "request" ? HTTPParser.REQUEST : HTTPParser.RESPONSE;
  const p = new HTTPParser();
  const resource = {};
  let head = EMPTY_HEAD;
  let more: string[] | undefined; // fields flushed early (over 32 of them, or a head split across reads)
  let moreUrl = "";
  let done = false;
  p[HTTPParser.kOnHeaders] = (headers: string[], url: string): void => {
    (more ??= []).push(...headers);
    moreUrl += url;
  };
  p[HTTPParser.kOnHeadersComplete] = (
    versionMajor: number, versionMinor: number, headers: string[] | undefined, method: number | undefined, url: string | undefined,
    statusCode: number | undefined, statusMessage: string | undefined, upgrade: boolean, keepAlive: boolean,
  ): number => {
    const all = more === undefined ? (headers ?? []) : headers === undefined ? more : more.concat(headers);
    head = {
      versionMajor, versionMinor, headers: all,
      method: method === undefined ? "" : (methods[method] ?? ""),
      url: moreUrl + (url ?? ""),
      statusCode: statusCode ?? 0, statusMessage: statusMessage ?? "", upgrade, keepAlive,
    };
    done = true;
    return PAUSE_AFTER_HEAD;
  };
  const reset = (): void => {
    p.initialize(type, resource, 0, 0);
    more = undefined;
    moreUrl = "";
    done = false;
  };
  reset();
  return {
    execute(buf, start) {
      const r = p.execute(start === 0 ? buf : buf.subarray(start));
      if (typeof r !== "number") return parseError(r);
      return done ? start + r : -1;
    },
    get head() {
      return head;
    },
    reset,
  };
}

/** A chunked-body walker; undefined when this Node has no usable HTTPParser. */
export function createChunkedBodyWalker(): ChunkedBodyWalker | undefined {
  const m = findParserModule();
  if (m === null) return undefined;
  const { HTTPParser } = m;
  const p = new HTTPParser();
  const resource = {};
  let complete = false;
  p[HTTPParser.kOnHeadersComplete] = () => 0;
  p[HTTPParser.kOnBody] = () => {};
  p[HTTPParser.kOnMessageComplete] = () => void (complete = true);
  // The body is walked as that of a made-up head that closes the connection after it (see above).
  const prelude = Buffer.from("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n", "latin1");
  const reset = (): void => {
    p.initialize(HTTPParser.REQUEST, resource, 0, 0);
    complete = false;
    p.execute(prelude);
  };
  reset();
  return {
    execute(buf, start) {
      if (complete) return start;
      const r = p.execute(start === 0 ? buf : buf.subarray(start));
      if (typeof r === "number") return complete ? start + r : -1;
      // The first byte after the body is refused one past it (CR and LF are skipped first).
      if (r.code === HPE_CLOSED_CONNECTION && complete) return start + (r.bytesParsed ?? 1) - 1;
      return parseError(r);
    },
    reset,
  };
}

// ---- the self-test ----

/**
 * What this Node no longer does of the internals above, as sentences for an error line; empty when
 * all is there. Run at start-up on a real loopback TCP pair (a few ms, no TLS handshake): a read
 * must land in the scratch buffer, a TLS socket must know the socket it wrapped, and its destroy
 * must reach the peer as a reset. A problem costs CPU or turns a cut into a FIN; it never crashes.
 */
export async function selfTestNodeInternals(): Promise<string[]> {
  const problems: string[] = [];
  if (findScratchSymbols() === null) problems.push("net.Socket has no kBuffer/kBufferCb/kBufferGen symbols");
  if (!linearEngineWorks())
    problems.push("V8 has no linear-time regexp engine: L7 intention regexes cannot be evaluated, so an allow with one never matches and a deny with one always does");
  if (exposedGc() === null)
    problems.push("V8 no longer installs gc() in a new context when --expose-gc is set at run time: the idle memory release is off, and a sidecar keeps the RSS of its busiest spell");
  const httpProblem = selfTestHttpParser();
  if (httpProblem !== undefined) problems.push(httpProblem);
  const server = createServer();
  const sockets: Socket[] = [];
  try {
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    const client = connect((server.address() as AddressInfo).port, "127.0.0.1");
    client.on("error", () => {});
    sockets.push(client);
    const [accepted] = (await once(server, "connection")) as [Socket];
    sockets.push(accepted);
    await once(client, "connect");

    const read = new Promise<number>((resolve) => readIntoScratch(client, Buffer.alloc(16), (n) => (resolve(n), true)) || resolve(-1));
    accepted.write("x");
    if ((await resultWithin(read)) !== 1) problems.push("a read did not land in the scratch buffer: proxied reads fall back to 'data' events (more CPU per chunk)");

    const wrapped = new TLSSocket(accepted, { isServer: true });
    wrapped.on("error", () => {});
    if (rawSocketOf(wrapped) !== accepted) problems.push("a TLS socket no longer knows the TCP socket it wrapped (_parent): the handshake deadline starts at the handshake, not at accept");
    const armed = resetOnDestroy(wrapped);
    const reset = once(client, "error").then(([err]) => (err as NodeJS.ErrnoException).code === "ECONNRESET", () => false);
    wrapped.destroy();
    if (!armed || (await resultWithin(reset)) !== true) problems.push("a TLS socket's destroy no longer sends a TCP reset: a cut connection ends with a FIN, which a peer may take for a complete stream");
  } catch (err) {
    problems.push(`the self-test could not run on loopback: ${(err as Error).message}`);
  } finally {
    for (const s of sockets) s.destroy();
    server.close();
  }
  return problems;
}

/** What is wrong with llhttp as http-stream.ts uses it, or undefined. Pure: no socket needed. */
function selfTestHttpParser(): string | undefined {
  const heads = createHeadParser("request");
  const bodies = createChunkedBodyWalker();
  if (heads === undefined || bodies === undefined) return "node has no HTTPParser (_http_common): listeners whose protocol is http are proxied at layer 4";
  const head = "POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
  const body = "3\r\nabc\r\n0\r\n\r\n";
  const bytes = Buffer.from(`${head}${body}GET / HTTP/1.1\r\n\r\n`, "latin1");
  const h = heads.execute(bytes, 0);
  if (h !== head.length || heads.head.method !== "POST" || heads.head.url !== "/x") {
    return "llhttp no longer stops after a request head: listeners whose protocol is http cannot find their requests";
  }
  if (bodies.execute(bytes, h) !== head.length + body.length) {
    return "llhttp no longer finds the end of a chunked body: listeners whose protocol is http cannot find their requests";
  }
  return undefined;
}

const SELF_TEST_MS = 2_000;

/** What `p` resolved with, or undefined when it did not within SELF_TEST_MS. */
async function resultWithin<T>(p: Promise<T>): Promise<T | undefined> {
  return (await settlesWithin(p, SELF_TEST_MS)) ? p : undefined;
}
