// A minimal HTTP/1.1 client connection on a raw socket for the load generators: one request in
// flight at a time (no pipelining), keep-alive, responses framed by Content-Length.
import { connect, type Socket } from "node:net";

const HEAD_END = Buffer.from("\r\n\r\n");
const LENGTH_RE = /\r\ncontent-length:[ \t]*(\d+)/i;

export type Target = { host: string; port: number };

/** Request bytes for `GET <path>`; `close` adds `Connection: close`. */
export function requestBytes(path: string, close = false): Buffer {
  return Buffer.from(`GET ${path} HTTP/1.1\r\nHost: bench\r\n${close ? "Connection: close\r\n" : ""}\r\n`, "latin1");
}

/** Opens a TCP connection with Nagle off; rejects on a connect error. */
export function dial(t: Target): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const sock = connect({ host: t.host, port: t.port, noDelay: true });
    const onError = (err: Error): void => reject(err);
    sock.once("error", onError);
    sock.once("connect", () => {
      sock.off("error", onError);
      resolve(sock);
    });
  });
}

/** One keep-alive connection; `send` calls back once with the outcome of that request. */
export class HttpConn {
  private pending: Buffer | undefined;
  private cb: ((ok: boolean) => void) | undefined;
  closed = false;

  constructor(readonly sock: Socket) {
    sock.on("data", (chunk: Buffer) => this.onData(chunk));
    sock.on("error", () => undefined);
    sock.on("close", () => {
      this.closed = true;
      this.finish(false);
    });
  }

  static async open(t: Target): Promise<HttpConn> {
    return new HttpConn(await dial(t));
  }

  get busy(): boolean {
    return this.cb !== undefined;
  }

  send(req: Buffer, cb: (ok: boolean) => void): void {
    if (this.closed) return cb(false);
    this.cb = cb;
    this.sock.write(req);
  }

  /** Resolves with the outcome of one request. */
  request(req: Buffer): Promise<boolean> {
    return new Promise((resolve) => this.send(req, resolve));
  }

  close(): void {
    this.sock.destroy();
  }

  private onData(chunk: Buffer): void {
    this.pending = this.pending === undefined ? chunk : Buffer.concat([this.pending, chunk]);
    const buf = this.pending;
    const end = buf.indexOf(HEAD_END);
    if (end < 0) return;
    const head = buf.toString("latin1", 0, end);
    const m = LENGTH_RE.exec(head);
    const total = end + 4 + (m ? Number(m[1]) : 0);
    if (buf.length < total) return;
    this.pending = buf.length > total ? buf.subarray(total) : undefined;
    this.finish(head.startsWith("HTTP/1.1 200"));
  }

  private finish(ok: boolean): void {
    const cb = this.cb;
    if (cb === undefined) return;
    this.cb = undefined;
    cb(ok);
  }
}
