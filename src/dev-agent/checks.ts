// The checks the dev agent really runs (spec §6.3): TTL expiry, TCP connects and HTTP GETs on
// their interval. Alias checks have no timer: the catalog recomputes them on every change.

import net from "node:net";
import type { CheckRecord, CheckStatus } from "./catalog-model.js";

const DEFAULT_TIMEOUT_MS = 10_000;

/** What a runner may do to its check. */
export interface CheckSink {
  /** Sets status and output; a no-op when both are unchanged. */
  set(checkId: string, status: CheckStatus, output: string): void;
}

/** A running check; `stop()` clears its timers and ends any probe in flight. */
export interface CheckRunner {
  /** TTL checks: restarts the expiry timer. */
  touch(): void;
  stop(): void;
}

function splitHostPort(addr: string): { host: string; port: number } {
  const m = /^\[(.*)\]:(\d+)$/.exec(addr) ?? /^(.*):(\d+)$/.exec(addr);
  if (!m) return { host: addr, port: NaN };
  return { host: m[1]!, port: Number(m[2]) };
}

/** Connects once; resolves with Consul's output text. */
export function probeTcp(addr: string, timeoutMs: number, signal?: AbortSignal): Promise<{ ok: boolean; output: string }> {
  const { host, port } = splitHostPort(addr);
  return new Promise((resolve) => {
    if (!Number.isInteger(port)) return resolve({ ok: false, output: `dial tcp ${addr}: missing port in address` });
    const sock = net.connect({ host, port });
    const timer = setTimeout(() => finish(false, `dial tcp ${addr}: i/o timeout`), timeoutMs);
    const onAbort = () => finish(false, `dial tcp ${addr}: operation was canceled`);
    signal?.addEventListener("abort", onAbort, { once: true });
    const finish = (ok: boolean, output: string) => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
      sock.removeAllListeners();
      sock.on("error", () => undefined);
      sock.destroy();
      resolve({ ok, output });
    };
    sock.once("connect", () => finish(true, `TCP connect ${addr}: Success`));
    sock.once("error", (err: NodeJS.ErrnoException) => {
      const why = err.code === "ECONNREFUSED" ? "connect: connection refused" : err.message;
      finish(false, `dial tcp ${addr}: ${why}`);
    });
  });
}

async function probeHttp(url: string, method: string, timeoutMs: number, signal: AbortSignal): Promise<{ status: CheckStatus; output: string }> {
  try {
    const res = await fetch(url, { method: method || "GET", signal: AbortSignal.any([signal, AbortSignal.timeout(timeoutMs)]), redirect: "follow" });
    const body = (await res.text()).slice(0, 4096);
    const output = `HTTP ${method || "GET"} ${url}: ${res.status} ${res.statusText} Output: ${body}`;
    if (res.status >= 200 && res.status < 300) return { status: "passing", output };
    if (res.status === 429) return { status: "warning", output };
    return { status: "critical", output };
  } catch (err) {
    return { status: "critical", output: `Get "${url}": ${(err as Error).message}` };
  }
}

/**
 * Starts the runner `check` needs, or undefined for checks without one (alias, and kinds the dev
 * agent does not run). TCP and HTTP checks probe right away, then every Interval.
 */
export function startCheckRunner(check: CheckRecord, sink: CheckSink): CheckRunner | undefined {
  const id = check.id;
  switch (check.type) {
    case "ttl": {
      let timer: NodeJS.Timeout | undefined;
      const arm = () => {
        clearTimeout(timer);
        timer = setTimeout(() => sink.set(id, "critical", "TTL expired"), check.ttlMs);
        timer.unref();
      };
      arm();
      return { touch: arm, stop: () => clearTimeout(timer) };
    }
    case "tcp":
    case "http": {
      let stopped = false;
      let running = false;
      const ac = new AbortController();
      const timeoutMs = check.timeoutMs || DEFAULT_TIMEOUT_MS;
      const run = async () => {
        if (running || stopped) return;
        running = true;
        try {
          if (check.type === "tcp") {
            const r = await probeTcp(check.tcp, timeoutMs, ac.signal);
            if (!stopped) sink.set(id, r.ok ? "passing" : "critical", r.output);
          } else {
            const r = await probeHttp(check.http, check.method, timeoutMs, ac.signal);
            if (!stopped) sink.set(id, r.status, r.output);
          }
        } finally {
          running = false;
        }
      };
      const timer = setInterval(() => void run(), check.intervalMs);
      timer.unref();
      void run();
      return {
        touch: () => undefined,
        stop: () => {
          stopped = true;
          ac.abort();
          clearInterval(timer);
        },
      };
    }
    default:
      return undefined;
  }
}
