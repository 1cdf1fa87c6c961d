import { connect, type Socket } from "node:net";
import type { Result } from "../net/index.js";

/** Where the local application listens: loopback TCP, or a unix socket. */
export type AppAddress = { host: string; port: number } | { socketPath: string };

/**
 * Connects to the local app and resolves with the connected socket (allowHalfOpen, no Nagle), or with
 * "app_unreachable" on an error or after `timeoutMs`, or with the signal's reason when `signal`
 * aborts first. Never rejects; a socket it does not hand out is destroyed.
 */
export function dialApp<R extends string>(o: {
  app: AppAddress;
  timeoutMs: number;
  signal: AbortSignal;
  abortReason: (signal: AbortSignal) => R;
}): Promise<Result<Socket, "app_unreachable" | R>> {
  const { app, timeoutMs, signal, abortReason } = o;
  if (signal.aborted) return Promise.resolve({ ok: false, reason: abortReason(signal) });
  return new Promise((resolve) => {
    const opts = "socketPath" in app ? { path: app.socketPath, allowHalfOpen: true } : { host: app.host, port: app.port, allowHalfOpen: true, noDelay: true };
    const sock = connect(opts);
    const done = (r: Result<Socket, "app_unreachable" | R>): void => {
      clearTimeout(timer);
      signal.removeEventListener("abort", onAbort);
      sock.off("connect", onConnect).off("error", onError);
      if (!r.ok) sock.destroy();
      resolve(r);
    };
    const onConnect = (): void => done({ ok: true, value: sock });
    const onError = (): void => done({ ok: false, reason: "app_unreachable" });
    const onAbort = (): void => done({ ok: false, reason: abortReason(signal) });
    const timer = setTimeout(onError, timeoutMs);
    sock.on("connect", onConnect).on("error", onError);
    signal.addEventListener("abort", onAbort, { once: true });
  });
}
