import { connect, type NetConnectOpts, type Socket } from "node:net";
import { TLSSocket } from "node:tls";

/** Why a piped connection ended: one string for the log line, the metric label and the test. */
export type PipeCloseReason =
  | "done" // both directions ended in order (FIN both ways)
  | "client_reset" // the client side reset (ECONNRESET / EPIPE) or was destroyed under us
  | "server_reset"
  | "client_error" // any other error on the client side
  | "server_error"
  | "idle_timeout" // no byte either way for idleTimeoutMs
  | "revoked" // the caller aborted with reason "revoked" (authorization withdrawn)
  | "shutdown"; // the caller aborted for any other reason

export interface PipeOptions {
  /** Aborting ends both sockets at once; the reason is `signal.reason` when it is a PipeCloseReason, else "shutdown". */
  signal?: AbortSignal;
  /** End both sockets after this many ms with no byte either way. 0 or absent: no idle timeout. */
  idleTimeoutMs?: number;
}

export interface PipeResult {
  reason: PipeCloseReason;
  bytesFromClient: number;
  bytesFromServer: number;
}

// A socket made by connectDirect(): its reads land in a scratch buffer shared by its owner's sockets
// and are handed to `sink` synchronously, with no 'data' event and no fresh ArrayBuffer per read.
const DIRECT = Symbol("connect-sidecar.directRead");
interface DirectRead {
  /** Set by pipe(); returns false to stop reading until resume(). */
  sink: ((chunk: Buffer) => boolean) | undefined;
  /** Copies of what arrived before pipe() took the socket over. */
  early: Buffer[];
}
type DirectSocket = Socket & { [DIRECT]?: DirectRead };

/**
 * net.connect() whose reads go into `scratch` (one buffer per owner, 64 KiB say) instead of a new
 * 64 KiB ArrayBuffer per read: less allocation per chunk and, in bulk transfers, far fewer major
 * GCs (V8 runs one per ~64 MB of ArrayBuffers that no scavenge freed). pipe() consumes each read
 * before the next one can happen: the peer's write() takes a view only when the peer is a TLS socket
 * with nothing queued (it encrypts the bytes inside write()), and a copy otherwise. The socket starts
 * paused; pipe() resumes it.
 */
export function connectDirect(opts: NetConnectOpts, scratch: Buffer): Socket {
  const relay: DirectRead = { sink: undefined, early: [] };
  const sock: DirectSocket = connect({
    ...opts,
    onread: {
      buffer: scratch,
      callback: (n: number, buf: Uint8Array): boolean => {
        const chunk = Buffer.from(buf.buffer, buf.byteOffset, n);
        if (relay.sink !== undefined) return relay.sink(chunk);
        relay.early.push(Buffer.from(chunk)); // copy: the scratch is reused by the next read
        return false;
      },
    },
  });
  sock[DIRECT] = relay;
  sock.pause();
  return sock;
}

const CLOSE_REASONS: ReadonlySet<string> = new Set<PipeCloseReason>([
  "done", "client_reset", "server_reset", "client_error", "server_error", "idle_timeout", "revoked", "shutdown",
]);
// The idle timer ticks this many times per idleTimeoutMs, so silence is detected within +25%.
const IDLE_TICKS = 4;

/**
 * Copies bytes both ways between `client` and `server` until both are closed, and resolves with
 * why it ended and how many bytes each side sent. Never rejects.
 *
 * - Backpressure: a side is paused while the other's write() returns false and resumed on 'drain'.
 * - Half-close: a side's 'end' ends the other's writable side; the pipe is "done" once both directions
 *   ended and both sockets closed. Create sockets with `allowHalfOpen: true` for this to hold.
 * - An error, a reset, an external destroy, the idle timeout or the signal destroys both sockets.
 * - Every listener and timer it adds is removed before the promise resolves.
 */
export function pipe(client: Socket, server: Socket, opts: PipeOptions = {}): Promise<PipeResult> {
  return new Promise<PipeResult>((resolve) => {
    let reason: PipeCloseReason | undefined;
    let bytesFromClient = 0;
    let bytesFromServer = 0;
    let active = false; // a byte moved since the last idle tick
    let silentTicks = 0;
    let clientClosed = client.closed;
    let serverClosed = server.closed;
    const signal = opts.signal;

    // First terminal event wins; destroying both then leads to two 'close' events and settle().
    // A cut (anything but "done" and the idle timeout, where nothing is in flight) resets both
    // sides, so neither peer can mistake a truncated stream for a complete one.
    const finish = (r: PipeCloseReason): void => {
      reason ??= r;
      if (reason === "done" || reason === "idle_timeout") {
        client.destroy();
        server.destroy();
      } else {
        cut(client);
        cut(server);
      }
    };

    const onClientData = (chunk: Buffer): void => {
      bytesFromClient += chunk.length;
      active = true;
      if (!server.write(chunk)) client.pause();
    };
    const onServerData = (chunk: Buffer): void => {
      bytesFromServer += chunk.length;
      active = true;
      if (!client.write(chunk)) server.pause();
    };
    // Reads of a connectDirect() socket live in a shared scratch buffer: see connectDirect.
    const clientDirect = (client as DirectSocket)[DIRECT];
    const serverDirect = (server as DirectSocket)[DIRECT];
    const clientTakesView = client instanceof TLSSocket;
    const serverTakesView = server instanceof TLSSocket;
    const onClientChunk = (chunk: Buffer): boolean => {
      bytesFromClient += chunk.length;
      active = true;
      return server.write(serverTakesView && server.writableLength === 0 ? chunk : Buffer.from(chunk));
    };
    const onServerChunk = (chunk: Buffer): boolean => {
      bytesFromServer += chunk.length;
      active = true;
      return client.write(clientTakesView && client.writableLength === 0 ? chunk : Buffer.from(chunk));
    };
    const onServerDrain = (): void => void client.resume();
    const onClientDrain = (): void => void server.resume();

    // Half-close: forward the FIN, and close a socket once it is done both ways.
    const onClientEnd = (): void => {
      if (!server.destroyed) server.end();
      closeIfDone(client);
    };
    const onServerEnd = (): void => {
      if (!client.destroyed) client.end();
      closeIfDone(server);
    };
    const onClientFinish = (): void => closeIfDone(client);
    const onServerFinish = (): void => closeIfDone(server);
    const closeIfDone = (s: Socket): void => {
      if (s.readableEnded && s.writableFinished) s.destroy();
    };

    const onClientError = (err: NodeJS.ErrnoException): void => finish(isReset(err) ? "client_reset" : "client_error");
    const onServerError = (err: NodeJS.ErrnoException): void => finish(isReset(err) ? "server_reset" : "server_error");

    const onClientClose = (): void => {
      clientClosed = true;
      // Closed without an orderly end both ways and without an error event: destroyed under us.
      if (!(client.readableEnded && client.writableFinished)) finish("client_reset");
      // It closed in order but the server has more to say: nobody can take it (a socket without allowHalfOpen).
      else if (!serverClosed && !server.readableEnded) finish("done");
      if (serverClosed) settle();
    };
    const onServerClose = (): void => {
      serverClosed = true;
      if (!(server.readableEnded && server.writableFinished)) finish("server_reset");
      else if (!clientClosed && !client.readableEnded) finish("done");
      if (clientClosed) settle();
    };

    const onAbort = (): void => {
      const r: unknown = signal?.reason;
      finish(typeof r === "string" && CLOSE_REASONS.has(r) ? (r as PipeCloseReason) : "shutdown");
    };

    const idleMs = opts.idleTimeoutMs ?? 0;
    const idleTimer =
      idleMs > 0
        ? setInterval(() => {
            if (active) {
              active = false;
              silentTicks = 0;
            } else if (++silentTicks >= IDLE_TICKS) {
              finish("idle_timeout");
            }
          }, Math.max(1, Math.floor(idleMs / IDLE_TICKS)))
        : undefined;

    const settle = (): void => {
      if (idleTimer !== undefined) clearInterval(idleTimer);
      signal?.removeEventListener("abort", onAbort);
      if (clientDirect !== undefined) clientDirect.sink = undefined;
      if (serverDirect !== undefined) serverDirect.sink = undefined;
      client.off("data", onClientData).off("drain", onClientDrain).off("end", onClientEnd)
        .off("finish", onClientFinish).off("error", onClientError).off("close", onClientClose);
      server.off("data", onServerData).off("drain", onServerDrain).off("end", onServerEnd)
        .off("finish", onServerFinish).off("error", onServerError).off("close", onServerClose);
      resolve({ reason: reason ?? "done", bytesFromClient, bytesFromServer });
    };

    if (clientDirect !== undefined) clientDirect.sink = onClientChunk;
    else client.on("data", onClientData);
    if (serverDirect !== undefined) serverDirect.sink = onServerChunk;
    else server.on("data", onServerData);
    client.on("drain", onClientDrain).on("end", onClientEnd)
      .on("finish", onClientFinish).on("error", onClientError).on("close", onClientClose);
    server.on("drain", onServerDrain).on("end", onServerEnd)
      .on("finish", onServerFinish).on("error", onServerError).on("close", onServerClose);
    signal?.addEventListener("abort", onAbort, { once: true });

    // Either side may already be gone (or the signal already aborted) by the time we are called.
    if (clientClosed || serverClosed) {
      finish(clientClosed ? "client_reset" : "server_reset");
      if (clientClosed && serverClosed) return settle();
      return;
    }
    if (signal?.aborted) return onAbort();
    client.setNoDelay(true);
    server.setNoDelay(true);
    // What a connectDirect() socket read before we attached goes first (a full peer pauses the
    // reader on its next read, and its 'drain' resumes it).
    if (clientDirect !== undefined) for (const c of clientDirect.early.splice(0)) onClientChunk(c);
    if (serverDirect !== undefined) for (const c of serverDirect.early.splice(0)) onServerChunk(c);
    // A caller may have paused a socket (say, while authorizing); adding 'data' does not undo that.
    client.resume();
    server.resume();
    // An end that was consumed before we attached will not be emitted again.
    if (client.readableEnded) onClientEnd();
    if (server.readableEnded) onServerEnd();
  });
}

/**
 * Destroys `sock` with a TCP reset rather than a FIN. A FIN would read as a clean end: a TLS peer
 * (Node's among them) takes a FIN without close_notify as one, and the proxy on the far side would
 * forward it as a half-close. Falls back to a plain destroy when there is no TCP socket to reset (a
 * unix socket) or this side already sent its FIN (libuv cannot reset a socket it has shut down).
 */
export function cut(sock: Socket): void {
  if (sock.destroyed || sock.writableEnded) return void sock.destroy();
  if (sock instanceof TLSSocket) {
    // Node has no public reset for a TLS socket. Destroying one closes its TCP handle with
    // handle.close(cb), later, off OpenSSL's stack; make that one call a reset (SO_LINGER 0, then
    // close, then cb). Resetting the TCP socket directly would free the SSL under OpenSSL when we
    // are called from inside a TLS callback (a segfault, seen in the tests).
    const tcp = (sock as unknown as { _handle?: { _parent?: TcpHandle } | null })._handle?._parent;
    if (tcp !== undefined && typeof tcp.reset === "function") tcp.close = tcp.reset;
    return void sock.destroy();
  }
  try {
    sock.resetAndDestroy();
  } catch {
    sock.destroy(); // not a TCP handle (unix socket)
  }
}

/** The TCP handle under a socket (Node's TCPWrap): the two methods cut() uses. */
interface TcpHandle {
  reset?: (cb?: () => void) => number;
  close: (cb?: () => void) => void;
}

function isReset(err: NodeJS.ErrnoException): boolean {
  return err.code === "ECONNRESET" || err.code === "EPIPE" || err.code === "ECONNABORTED";
}
