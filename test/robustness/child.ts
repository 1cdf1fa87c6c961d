// A real `connect-sidecar proxy` child process for the process-level cases: spawned as a user would
// (optionally under `ulimit -n`), its JSON log kept and awaitable, its CPU time read from /proc.
import { spawn, type ChildProcess } from "node:child_process";
import { EventEmitter, once } from "node:events";
import { readFileSync } from "node:fs";
import { createServer } from "node:net";
import type { TestContext } from "node:test";
import { CLI_PATH } from "../e2e/child.js";
const CLK_TCK = 100; // Linux USER_HZ

export type LogLine = Record<string, unknown> & { msg?: string };

export interface ProxyChild {
  pid: number;
  /** Everything written to stdout and stderr, verbatim. */
  output(): string;
  lines: LogLine[];
  next(pred: (l: LogLine) => boolean): Promise<LogLine>;
  /** User + system CPU seconds used so far. */
  cpuSeconds(): number;
  alive(): boolean;
  /** SIGTERM; resolves with the exit code (SIGKILL after graceMs). */
  stop(graceMs?: number): Promise<number | null>;
  exited: Promise<number | null>;
}

/** Spawns `node dist/bundle/cli.js proxy …args`; killed at the end of the test if still running. */
export function spawnProxy(t: TestContext, args: string[], opts: { ulimitFiles?: number; env?: NodeJS.ProcessEnv } = {}): ProxyChild {
  const env: NodeJS.ProcessEnv = { ...process.env, ...opts.env };
  for (const k of ["CONNECT_PROXY_ID", "CONNECT_SIDECAR_FOR", "CONSUL_HTTP_TOKEN", "CONSUL_HTTP_TOKEN_FILE", "CONSUL_HTTP_ADDR"]) {
    if (opts.env?.[k] === undefined) delete env[k];
  }
  const argv = [CLI_PATH, "proxy", "-log-json", ...args];
  const child: ChildProcess =
    opts.ulimitFiles === undefined
      ? spawn(process.execPath, argv, { stdio: ["ignore", "pipe", "pipe"], env })
      : spawn("bash", ["-c", `ulimit -n ${opts.ulimitFiles} && exec "$0" "$@"`, process.execPath, ...argv], { stdio: ["ignore", "pipe", "pipe"], env });
  const pid = child.pid!;
  let out = "";
  let partial = "";
  const lines: LogLine[] = [];
  const events = new EventEmitter();
  child.stdout!.on("data", (c: Buffer) => {
    out += c.toString();
    partial += c.toString();
    let nl: number;
    while ((nl = partial.indexOf("\n")) >= 0) {
      const text = partial.slice(0, nl);
      partial = partial.slice(nl + 1);
      try {
        const line = JSON.parse(text) as LogLine;
        lines.push(line);
        events.emit("line", line);
      } catch {
        // not JSON: kept in output() only
      }
    }
  });
  child.stderr!.on("data", (c: Buffer) => (out += c.toString()));
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => (events.emit("exit"), resolve(code))));
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  });
  return {
    pid,
    output: () => out,
    lines,
    next(pred) {
      const seen = lines.find(pred);
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const on = (l: LogLine): void => {
          if (!pred(l)) return;
          events.off("line", on).off("exit", onExit);
          resolve(l);
        };
        const onExit = (): void => {
          events.off("line", on);
          reject(new Error(`the sidecar exited before the awaited log line; output:\n${out}`));
        };
        events.on("line", on).once("exit", onExit);
      });
    },
    cpuSeconds() {
      // /proc/<pid>/stat: fields 14 and 15 (utime, stime) after the ")" that ends the command name.
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      return (Number(f[11]) + Number(f[12])) / CLK_TCK;
    },
    alive: () => child.exitCode === null && child.signalCode === null,
    async stop(graceMs = 10_000) {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
    exited,
  };
}

/** A port free now, to bind a moment later (pickFreePort: below the ephemeral range). */
export { pickFreePort as freePort } from "../../src/net/index.js";

/** GET an admin path; resolves with status and body, or status 0 when nothing answers. */
export async function adminGet(port: number, path: string): Promise<{ status: number; body: string }> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}${path}`, { signal: AbortSignal.timeout(5000) });
    return { status: res.status, body: await res.text() };
  } catch {
    return { status: 0, body: "" };
  }
}

/** A TCP forwarder we can cut (every connection reset, port closed) and restore on the same port. */
export interface Cuttable {
  port: number;
  cut(): Promise<void>;
  restore(): Promise<void>;
  close(): Promise<void>;
}

export async function startCuttable(t: TestContext, target: { host: string; port: number }): Promise<Cuttable> {
  const { connect } = await import("node:net");
  const socks = new Set<import("node:net").Socket>();
  const server = createServer((inbound) => {
    const outbound = connect(target.port, target.host);
    for (const s of [inbound, outbound]) {
      socks.add(s);
      s.on("error", () => {
        inbound.destroy();
        outbound.destroy();
      });
      s.on("close", () => socks.delete(s));
    }
    inbound.pipe(outbound).pipe(inbound);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const port = (server.address() as { port: number }).port;
  let listening = true;
  const cut = async (): Promise<void> => {
    if (!listening) return;
    listening = false;
    for (const s of socks) s.resetAndDestroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  t.after(cut);
  return {
    port,
    cut,
    async restore() {
      if (listening) return;
      server.listen(port, "127.0.0.1");
      await once(server, "listening");
      listening = true;
    },
    close: cut,
  };
}

