// Runs the CLI as a child process, as a user would (dist/bundle/cli.js, what the installed command
// runs), and reads its JSON log lines.
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

export const CLI_PATH = fileURLToPath(new URL("../../bundle/cli.js", import.meta.url));
/** The same CLI unbundled (tsc's output), as `node dist/src/cli.js` runs it. */
export const UNBUNDLED_CLI_PATH = fileURLToPath(new URL("../../src/cli.js", import.meta.url));

export interface Child {
  proc: ChildProcess;
  lines: string[];
  /** Resolves with the first stdout line matching `re` (already seen or still to come). */
  waitFor(re: RegExp): Promise<string>;
  /** Resolves with the exit code (or the signal name). */
  exited: Promise<number | string>;
}

export function startCli(args: string[], env: NodeJS.ProcessEnv = {}): Child {
  return startChild(process.execPath, [CLI_PATH, ...args], env);
}

/** Runs `command` (without the caller's CONSUL_* and CONNECT_* variables) and reads its output lines. */
export function startChild(command: string, args: string[], env: NodeJS.ProcessEnv = {}): Child {
  const clean = { ...process.env };
  for (const k of Object.keys(clean)) if (k.startsWith("CONSUL_") || k.startsWith("CONNECT_")) delete clean[k];
  const proc = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"], env: { ...clean, ...env } });
  const lines: string[] = [];
  const waiters: Array<{ re: RegExp; resolve: (l: string) => void }> = [];
  const onLine = (line: string): void => {
    lines.push(line);
    for (const w of [...waiters]) {
      if (w.re.test(line)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(line);
      }
    }
  };
  createInterface({ input: proc.stdout! }).on("line", onLine);
  createInterface({ input: proc.stderr! }).on("line", onLine);
  const exited = once(proc, "exit").then(([code, signal]) => (code ?? signal) as number | string);
  return {
    proc,
    lines,
    exited,
    waitFor(re) {
      const seen = lines.find((l) => re.test(l));
      if (seen !== undefined) return Promise.resolve(seen);
      return new Promise<string>((resolve, reject) => {
        waiters.push({ re, resolve });
        void exited.then((c) => reject(new Error(`exited (${c}) before a line matched ${re}:\n${lines.join("\n")}`)));
      });
    },
  };
}

/** True while a process with this PID exists. */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
