// Every use of Node's private API in this codebase, in one place. Each one saves CPU or closes a
// hole that Node's public API leaves open, and each one is checked: checkNodeInternals() says what
// a Node release took away (the sidecar logs it at start-up), and test/net/node-internals.test.ts
// proves on real sockets that each still does what it is used for. When one is missing, its caller
// falls back to the public API (slower, or a FIN where a reset was meant), never to a crash.
import { Socket } from "node:net";
import type { TLSSocket } from "node:tls";

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
 * stream, errors and 'close' are emitted as before. Returns false, changing nothing, when this Node
 * lacks the mechanism or the socket has no open handle; the caller then reads 'data' events.
 * Whatever the socket had already read stays in its readable buffer: take it with sock.read() first.
 */
export function readIntoScratch(sock: Socket, scratch: Buffer, onRead: (n: number, buf: Buffer) => boolean): boolean {
  const sym = findScratchSymbols();
  const s = sock as SocketInternals;
  const handle = s._handle;
  if (sym === null || handle == null || typeof handle.useUserBuffer !== "function" || s[sym.buffer] !== null) return false;
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

// ---- the check ----

/**
 * What this Node no longer offers of the internals above, as sentences for a log line; empty when
 * all is there. Cheap and synchronous: it looks for what can be seen without opening a socket (the
 * symbols); a handle method that is missing shows at first use (the caller falls back), and the test
 * suite proves on real sockets that each internal behaves.
 */
export function checkNodeInternals(): string[] {
  if (findScratchSymbols() !== null) return [];
  return ["net.Socket has no kBuffer/kBufferCb/kBufferGen symbols: proxied reads fall back to 'data' events (more CPU per chunk)"];
}
