import type { Socket } from "node:net";
import { TLSSocket } from "node:tls";
import { errorCloseReason, isPipeCloseReason, type PipeCloseReason } from "./close-reason.js";
import { readIntoScratch, resetOnDestroy } from "./node-internals.js";

export interface PipeOptions {
  /** Aborting ends both sockets at once; the reason is `signal.reason` when it is a PipeCloseReason, else "shutdown". */
  signal?: AbortSignal;
  /** End both sockets after this many ms with no byte either way. 0 or absent: no idle timeout. */
  idleTimeoutMs?: number;
  /**
   * TCP keepalive on both sockets: the first probe after this many idle ms, so a peer that vanished
   * without a FIN or a reset (power loss, a dropped route) ends as client_timeout / server_timeout.
   * 0 or absent: off. A no-op on unix sockets.
   */
  keepAliveMs?: number;
}

export interface PipeResult {
  reason: PipeCloseReason;
  bytesFromClient: number;
  bytesFromServer: number;
}

// Every pipe of the process reads into this one buffer (see readIntoScratch): each read is written
// on, or copied, before the next read of any socket can happen, so one buffer serves them all, and
// no read allocates a new 64 KiB ArrayBuffer (V8 runs a major GC per ~64 MB of those in bulk).
const SCRATCH_BYTES = 64 * 1024; // libuv's read size for a TCP socket
let sharedScratch: Buffer | undefined;
// Bytes moved by every pipe of the process, so far: one add per chunk tells a process-wide "traffic
// flowed" (the idle memory release must never pause a process that is carrying requests, however few).
let bytesMoved = 0;

/** The one buffer every proxied read of the process lands in (see readIntoScratch). */
export function scratchBuffer(): Buffer {
  return (sharedScratch ??= Buffer.allocUnsafeSlow(SCRATCH_BYTES));
}

/** Bytes every pipe of this process has moved, both ways, since it started (HTTP connections' included). */
export function bytesPiped(): number {
  return bytesMoved;
}

/** Counts bytes moved by a connection that is not a pipe (HTTP, http-stream.ts) into bytesPiped(). */
export function countPiped(n: number): void {
  bytesMoved += n;
}

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

    // A chunk that is the caller's to keep ('data' events, what was read before we attached).
    const onClientData = (chunk: Buffer): void => {
      bytesFromClient += chunk.length;
      bytesMoved += chunk.length;
      active = true;
      if (!server.write(chunk)) client.pause();
    };
    const onServerData = (chunk: Buffer): void => {
      bytesFromServer += chunk.length;
      bytesMoved += chunk.length;
      active = true;
      if (!client.write(chunk)) server.pause();
    };
    // A read into the shared scratch goes to a TLS socket through writeToTls (a view: it encrypts the
    // bytes inside write()), to any other socket as a copy (it may keep the buffer past write()),
    // gathered when it is one of a burst of full records.
    const toServer = server instanceof TLSSocket ? undefined : new RecordCoalescer(server, () => client.pause());
    const toClient = client instanceof TLSSocket ? undefined : new RecordCoalescer(client, () => server.pause());
    const onClientRead = (n: number, buf: Buffer): boolean => {
      bytesFromClient += n;
      bytesMoved += n;
      active = true;
      return toServer !== undefined ? toServer.write(buf, 0, n) : writeToTls(server, buf, 0, n);
    };
    const onServerRead = (n: number, buf: Buffer): boolean => {
      bytesFromServer += n;
      bytesMoved += n;
      active = true;
      return toClient !== undefined ? toClient.write(buf, 0, n) : writeToTls(client, buf, 0, n);
    };
    const onServerDrain = (): void => void client.resume();
    const onClientDrain = (): void => void server.resume();

    // Half-close: forward the FIN, and close a socket once it is done both ways.
    const onClientEnd = (): void => {
      toServer?.flush();
      if (!server.destroyed) server.end();
      closeIfDone(client);
    };
    const onServerEnd = (): void => {
      toClient?.flush();
      if (!client.destroyed) client.end();
      closeIfDone(server);
    };
    const onClientFinish = (): void => closeIfDone(client);
    const onServerFinish = (): void => closeIfDone(server);
    const closeIfDone = (s: Socket): void => {
      if (s.readableEnded && s.writableFinished) s.destroy();
    };

    const onClientError = (err: NodeJS.ErrnoException): void => finish(errorCloseReason(err, "client"));
    const onServerError = (err: NodeJS.ErrnoException): void => finish(errorCloseReason(err, "server"));

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
      finish(isPipeCloseReason(r) ? r : "shutdown");
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
      toServer?.discard();
      toClient?.discard();
      signal?.removeEventListener("abort", onAbort);
      client.off("data", onClientData).off("drain", onClientDrain).off("end", onClientEnd)
        .off("finish", onClientFinish).off("error", onClientError).off("close", onClientClose);
      server.off("data", onServerData).off("drain", onServerDrain).off("end", onServerEnd)
        .off("finish", onServerFinish).off("error", onServerError).off("close", onServerClose);
      resolve({ reason: reason ?? "done", bytesFromClient, bytesFromServer });
    };

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
    const keepAliveMs = opts.keepAliveMs ?? 0;
    if (keepAliveMs > 0) {
      client.setKeepAlive(true, keepAliveMs);
      server.setKeepAlive(true, keepAliveMs);
    }
    // What a socket read before we attached goes first (a full peer pauses the reader on its next
    // read, and its 'drain' resumes it); then every read goes to the scratch, or 'data' events where
    // this Node cannot do that.
    const scratch = scratchBuffer();
    for (let c: Buffer | null = client.read(); c !== null; c = client.read()) onClientData(c);
    for (let c: Buffer | null = server.read(); c !== null; c = server.read()) onServerData(c);
    if (!readIntoScratch(client, scratch, onClientRead)) client.on("data", onClientData);
    if (!readIntoScratch(server, scratch, onServerRead)) server.on("data", onServerData);
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
    resetOnDestroy(sock); // else a FIN: Node has no public reset for a TLS socket
    return void sock.destroy();
  }
  try {
    sock.resetAndDestroy();
  } catch {
    sock.destroy(); // not a TCP handle (unix socket)
  }
}

// Copies of large reads go into buffers kept for reuse, each taken back when the write that carried it
// completed (its callback), instead of a new ArrayBuffer each: in bulk transfers those were ~64 MB of
// dead ArrayBuffers between two GCs, which glibc kept after they were freed (a sidecar idle 25 s after
// 3 GiB of bulk: 178 MB RSS). Small reads use Node's 8 KiB buffer pool, which is cheap already.
const POOLED_COPY_MIN = 4096; // Buffer.allocUnsafe serves smaller sizes from its pool
const MAX_SPARE_COPIES = 16;
interface SpareCopy { readonly buf: Buffer; readonly release: () => void }
const spareCopies: SpareCopy[] = [];

function newSpareCopy(): SpareCopy {
  const spare: SpareCopy = {
    buf: Buffer.allocUnsafeSlow(SCRATCH_BYTES),
    // The write completed or failed: nothing reads the buffer any more.
    release: () => void (spareCopies.length < MAX_SPARE_COPIES && spareCopies.push(spare)),
  };
  return spare;
}

// A TLS socket encrypts inside write() and hands the records to its TCP socket at once, but reports
// the write complete only in a later turn (setImmediate), so each chunk looks queued until then and
// write() answers false for any chunk over 16 KiB. Pausing the source on that answer cost a pause and a
// resume (two io_uring syscalls in libuv) per 64 KiB read of bulk. The source is paused only once this
// much waits in the TLS socket: a few reads ahead, bounded.
const TLS_WRITE_AHEAD = 256 * 1024;

/**
 * Writes buf[start, end), bytes of a buffer that the next read overwrites (the scratch), to `dst`:
 * to a TLS socket through writeToTls, to any other as a copy (it may keep the buffer past write()).
 * Returns whether the source may keep reading (writeToTls's answer for a TLS socket).
 */
export function writeFromScratch(dst: Socket, buf: Buffer, start: number, end: number): boolean {
  return dst instanceof TLSSocket ? writeToTls(dst, buf, start, end) : writeCopy(dst, buf, start, end);
}

/**
 * Writes buf[start, end) to a TLS socket: a view when nothing is queued or corked (it is encrypted
 * inside write()), else a copy. Returns whether the source may keep reading: false only when write()
 * said so (so its 'drain' will come to resume the source) and the write-ahead is used up.
 */
function writeToTls(dst: Socket, buf: Buffer, start: number, end: number): boolean {
  const ok =
    dst.writableLength === 0 && dst.writableCorked === 0 ? dst.write(start === 0 && end === buf.length ? buf : buf.subarray(start, end)) : writeCopy(dst, buf, start, end);
  return ok || dst.writableLength < TLS_WRITE_AHEAD;
}

/** Writes a copy of buf[start, end) to a socket that may keep what it is given past write(). */
function writeCopy(dst: Socket, buf: Buffer, start: number, end: number): boolean {
  const n = end - start;
  if (n < POOLED_COPY_MIN) {
    const out = Buffer.allocUnsafe(n);
    buf.copy(out, 0, start, end);
    return dst.write(out);
  }
  const spare = spareCopies.pop() ?? newSpareCopy();
  buf.copy(spare.buf, 0, start, end);
  return dst.write(spare.buf.subarray(0, n), spare.release);
}

// A TLS socket hands over what one TCP read decrypted one record at a time: a 64 KiB read of bulk
// data is four calls of 16 KiB, in one turn of the event loop. Written as they come, each is a
// write() through the Writable and a syscall to a plain socket; gathered, the burst is one of each
// (bulk through a sidecar: 4x fewer writes to the app or the local client).
const FULL_RECORD = 16 * 1024; // TLS's largest plaintext record: more of the same read may follow

/**
 * Copies reads bound for a plain socket `dst` (one that may keep a buffer past write()), gathering
 * full-record reads into one buffer that is written when a shorter read ends the burst, when it is
 * full, or at the end of the turn (setImmediate), whichever comes first. A read that is not part of a
 * burst is written at once, as writeCopy does. Backpressure: write() returns what dst.write() said;
 * a flush at the end of the turn calls `onFull` when dst is full (pipe: pauses the source, which
 * dst's 'drain' resumes). Anything else written to dst must wait for flush().
 */
export class RecordCoalescer {
  private pending: SpareCopy | undefined;
  private used = 0;
  private flushScheduled = false;
  private readonly flushAtTurnEnd = (): void => {
    this.flushScheduled = false;
    if (this.pending !== undefined && !this.flush()) this.onFull();
  };

  constructor(private readonly dst: Socket, private readonly onFull: () => void) {}

  /** Copies buf[start, end), a read (or all that goes on of one), to dst or into the burst being gathered. */
  write(buf: Buffer, start: number, end: number): boolean {
    const n = end - start;
    if (n !== FULL_RECORD && this.pending === undefined) return writeCopy(this.dst, buf, start, end);
    if (this.pending !== undefined && this.used + n > SCRATCH_BYTES && !this.flush()) {
      // dst is full: this read goes on its own, and the source pauses.
      writeCopy(this.dst, buf, start, end);
      return false;
    }
    if (this.pending === undefined) {
      this.pending = spareCopies.pop() ?? newSpareCopy();
      this.used = 0;
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        setImmediate(this.flushAtTurnEnd);
      }
    }
    buf.copy(this.pending.buf, this.used, start, end);
    this.used += n;
    return n === FULL_RECORD ? true : this.flush();
  }

  /** Writes what was gathered, if anything; returns dst.write()'s answer (true when nothing was pending). */
  flush(): boolean {
    const spare = this.pending;
    if (spare === undefined) return true;
    this.pending = undefined;
    if (this.dst.destroyed || this.dst.writableEnded) {
      spare.release();
      return true;
    }
    return this.dst.write(spare.buf.subarray(0, this.used), spare.release);
  }

  /** The pipe ended: what was gathered is dropped (both sockets are gone) and its buffer kept for reuse. */
  discard(): void {
    this.pending?.release();
    this.pending = undefined;
  }
}
