// Child processes of the harness, optionally pinned with `taskset -c`, all tracked so that every
// one of them is ended when the harness stops (normally, on error, or on Ctrl-C).
import { spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";

export interface ChildHandle {
  readonly name: string;
  readonly pid: number;
  readonly proc: ChildProcess;
  /** The last lines the child wrote (stdout and stderr), for error messages. */
  tail(): string;
  /** Resolves with the first stdout line for which `match` returns a value; rejects if the child exits first or after timeoutMs. */
  waitFor<T>(match: (line: string) => T | undefined, timeoutMs: number): Promise<T>;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGTERM, then SIGKILL after graceMs; resolves once exited. */
  stop(graceMs?: number): Promise<void>;
}

export interface SpawnOptions {
  name: string;
  cmd: string;
  args: string[];
  /** A taskset CPU list such as "1" or "2,3"; undefined runs unpinned. */
  cpus: string | undefined;
  env?: NodeJS.ProcessEnv;
  /** Keep stdin open as a pipe (the child exits when it closes); default ignored. */
  stdinPipe?: boolean;
  /** Called with each stdout/stderr line (after it is kept for tail()). */
  onLine?: (line: string, stream: "stdout" | "stderr") => void;
}

const TAIL_LINES = 40;

export class ProcessGroup {
  private readonly live = new Set<ChildHandle>();
  readonly tasksetAvailable: boolean;

  constructor(opts: { tasksetAvailable: boolean }) {
    this.tasksetAvailable = opts.tasksetAvailable;
  }

  /** Starts a child; throws when it cannot be spawned. */
  spawn(o: SpawnOptions): ChildHandle {
    const pinned = o.cpus !== undefined && this.tasksetAvailable;
    const cmd = pinned ? "taskset" : o.cmd;
    const args = pinned ? ["-c", o.cpus!, o.cmd, ...o.args] : o.args;
    const proc = spawn(cmd, args, { stdio: [o.stdinPipe ? "pipe" : "ignore", "pipe", "pipe"], env: o.env ?? process.env });
    if (proc.pid === undefined) throw new Error(`could not start ${o.name} (${o.cmd})`);
    const lines: string[] = [];
    const waiters = new Set<(line: string) => void>();
    const keep = (line: string, stream: "stdout" | "stderr"): void => {
      lines.push(line);
      if (lines.length > TAIL_LINES) lines.shift();
      o.onLine?.(line, stream);
      if (stream === "stdout") for (const w of [...waiters]) w(line);
    };
    createInterface({ input: proc.stdout! }).on("line", (l) => keep(l, "stdout"));
    createInterface({ input: proc.stderr! }).on("line", (l) => keep(l, "stderr"));
    proc.stdin?.on("error", () => undefined);
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      proc.once("exit", (code, signal) => resolve({ code, signal })),
    );
    // readline may still hold lines when "exit" fires; "close" comes after the streams end.
    const closed = new Promise<void>((resolve) => proc.once("close", () => resolve()));
    const handle: ChildHandle = {
      name: o.name,
      pid: proc.pid,
      proc,
      exited,
      tail: () => lines.join("\n"),
      waitFor: <T>(match: (line: string) => T | undefined, timeoutMs: number) =>
        new Promise<T>((resolve, reject) => {
          const timer = setTimeout(() => {
            waiters.delete(onLine);
            reject(new Error(`${o.name} did not report within ${timeoutMs} ms; its last lines:\n${handle.tail()}`));
          }, timeoutMs);
          const onLine = (line: string): void => {
            const v = match(line);
            if (v === undefined) return;
            clearTimeout(timer);
            waiters.delete(onLine);
            resolve(v);
          };
          waiters.add(onLine);
          for (const l of lines) onLine(l);
          void closed.then(() => {
            if (!waiters.has(onLine)) return;
            clearTimeout(timer);
            waiters.delete(onLine);
            reject(new Error(`${o.name} exited before it reported; its last lines:\n${handle.tail()}`));
          });
        }),
      stop: async (graceMs = 5000) => {
        if (proc.exitCode === null && proc.signalCode === null) {
          proc.kill("SIGTERM");
          const timer = setTimeout(() => proc.kill("SIGKILL"), graceMs);
          await exited;
          clearTimeout(timer);
        }
        this.live.delete(handle);
      },
    };
    this.live.add(handle);
    void exited.then(() => this.live.delete(handle));
    return handle;
  }

  /**
   * Runs a child to completion and returns its last stdout line parsed as JSON. Throws with the
   * child's last lines when it exits non-zero, prints no JSON, or outlives timeoutMs.
   */
  async runJson<T>(o: SpawnOptions & { timeoutMs: number }): Promise<T> {
    const child = this.spawn(o);
    const timer = setTimeout(() => child.proc.kill("SIGKILL"), o.timeoutMs);
    const { code, signal } = await child.exited;
    await new Promise<void>((resolve) => (child.proc.stdout!.readableEnded ? resolve() : child.proc.once("close", () => resolve())));
    clearTimeout(timer);
    const last = child.tail().split("\n").reverse().find((l) => l.startsWith("{"));
    if (code !== 0 || last === undefined) {
      throw new Error(`${o.name} failed (${signal ?? `exit ${code}`}); its last lines:\n${child.tail()}`);
    }
    return JSON.parse(last) as T;
  }

  /** SIGKILLs every child still running (synchronous: usable from an exit handler). */
  killAll(): void {
    for (const c of this.live) {
      if (c.proc.exitCode === null && c.proc.signalCode === null) c.proc.kill("SIGKILL");
    }
    this.live.clear();
  }

  /** Stops every child still running, SIGTERM first. */
  async stopAll(graceMs = 5000): Promise<void> {
    await Promise.all([...this.live].map((c) => c.stop(graceMs)));
  }
}
