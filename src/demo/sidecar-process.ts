// One sidecar child process of the demo, started exactly as a user would start it:
// `node dist/src/cli.js proxy -sidecar-for <id> -http-addr … -token-file …`.
import { spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";

export interface SidecarProcess {
  readonly name: string;
  readonly pid: number;
  /** Resolves with the admin URL once the sidecar logs "sidecar ready"; rejects if it exits first. */
  readonly ready: Promise<{ adminUrl: string }>;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves when the process has exited. */
  stop(graceMs: number): Promise<void>;
}

export interface SidecarProcessOptions {
  name: string;
  cliPath: string;
  args: string[];
  /** Each rendered log line of the child (prefixed with its name). */
  onLine(line: string): void;
}

// A user's CONNECT_* settings would beat -sidecar-for (spec §9.1 precedence): the demo sets its own.
const DROPPED_ENV = ["CONNECT_PROXY_ID", "CONNECT_SIDECAR_FOR", "CONSUL_HTTP_TOKEN", "CONSUL_HTTP_TOKEN_FILE", "CONSUL_HTTP_ADDR"];

/** Spawns the sidecar; its JSON log lines are rendered short and passed to onLine. */
export function spawnSidecar(opts: SidecarProcessOptions): SidecarProcess {
  const env = { ...process.env };
  for (const k of DROPPED_ENV) delete env[k];
  const child: ChildProcess = spawn(process.execPath, [opts.cliPath, ...opts.args], {
    stdio: ["ignore", "pipe", "pipe"],
    env,
    // Its own process group: Ctrl-C reaches the demo only, which then drains each sidecar with SIGTERM.
    detached: true,
  });
  if (child.pid === undefined) throw new Error(`could not start the ${opts.name} sidecar process`);
  // A detached child outlives a crashed parent: kill it when this process exits with the child still alive.
  const killOnExit = (): void => void child.kill("SIGKILL");
  process.on("exit", killOnExit);
  const exited = new Promise<void>((resolve) =>
    child.once("exit", () => {
      process.off("exit", killOnExit);
      resolve();
    }),
  );
  const prefix = `[${opts.name}]`;

  const ready = new Promise<{ adminUrl: string }>((resolve, reject) => {
    const onExit = (code: number | null, signal: NodeJS.Signals | null): void =>
      reject(new Error(`the ${opts.name} sidecar exited (${signal ?? `code ${code}`}) before it was ready; see its log above`));
    child.once("exit", onExit);
    createInterface({ input: child.stdout! }).on("line", (line) => {
      const entry = parseJsonLine(line);
      if (entry === undefined) return opts.onLine(`${prefix} ${line}`);
      opts.onLine(`${prefix} ${renderEntry(entry)}`);
      if (entry.msg === "sidecar ready" && typeof entry.admin === "string") {
        child.off("exit", onExit);
        resolve({ adminUrl: entry.admin });
      }
    });
    createInterface({ input: child.stderr! }).on("line", (line) => opts.onLine(`${prefix} ${line}`));
  });
  ready.catch(() => undefined);

  return {
    name: opts.name,
    pid: child.pid,
    ready,
    async stop(graceMs) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
      await exited;
      clearTimeout(timer);
    },
  };
}

type LogEntry = Record<string, unknown> & { msg?: unknown; level?: unknown };

function parseJsonLine(line: string): LogEntry | undefined {
  if (!line.startsWith("{")) return undefined;
  try {
    const v: unknown = JSON.parse(line);
    return typeof v === "object" && v !== null ? (v as LogEntry) : undefined;
  } catch {
    return undefined;
  }
}

const LEVELS: Record<number, string> = { 10: "TRACE", 20: "DEBUG", 30: "INFO", 40: "WARN", 50: "ERROR", 60: "FATAL" };
const SKIPPED = new Set(["level", "time", "pid", "hostname", "msg", "v"]);

/** "INFO connection closed src=spiffe://… reason=done" */
function renderEntry(e: LogEntry): string {
  const level = typeof e.level === "number" ? (LEVELS[e.level] ?? String(e.level)) : String(e.level ?? "");
  const fields = Object.entries(e)
    .filter(([k]) => !SKIPPED.has(k))
    .map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`);
  return [level.padEnd(5), String(e.msg ?? ""), ...fields].join(" ");
}
