// What the results were measured on, and where each process is pinned.
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { availableParallelism, cpus, release } from "node:os";

export interface Machine { cpuModel: string; cores: number; kernel: string; node: string; openssl: string }

/** CPU lists for `taskset -c`; undefined leaves that process unpinned. */
export interface Pinning { generator: string | undefined; app: string | undefined; proxies: string | undefined; note: string }

/** Describes this machine (CPU model from /proc/cpuinfo, falling back to os.cpus()). */
export function describeMachine(): Machine {
  let cpuModel = cpus()[0]?.model ?? "unknown";
  try {
    const m = /^model name\s*:\s*(.+)$/m.exec(readFileSync("/proc/cpuinfo", "utf8"));
    if (m) cpuModel = m[1]!.trim();
  } catch {
    // not Linux: os.cpus() it is
  }
  return { cpuModel, cores: availableParallelism(), kernel: release(), node: process.versions.node, openssl: process.versions.openssl };
}

/** True when `taskset` runs here. */
export function hasTaskset(): boolean {
  try {
    execFileSync("taskset", ["-p", String(process.pid)], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

/**
 * Keeps the load generator and the app off the proxies' CPUs: with 4+ cores the generator, the app
 * and the proxies each get their own; with 2–3 the generator and app share cpu 0 and the proxies get
 * cpu 1; with 1 core (or no taskset) nothing is pinned.
 */
export function planPinning(cores: number, taskset: boolean): Pinning {
  if (!taskset) return { generator: undefined, app: undefined, proxies: undefined, note: "taskset not available: nothing pinned" };
  if (cores >= 4) return { generator: "0", app: "1", proxies: "2,3", note: "generator cpu 0, app cpu 1, proxies cpus 2-3" };
  if (cores >= 2) return { generator: "0", app: "0", proxies: "1", note: "generator + app cpu 0, proxies cpu 1" };
  return { generator: undefined, app: undefined, proxies: undefined, note: "1 core: nothing pinned" };
}

/** Pins this (harness) process, with its in-process dev agent, to `cpus`; false when that fails. */
export function pinSelf(cpusList: string | undefined): boolean {
  if (cpusList === undefined) return false;
  try {
    execFileSync("taskset", ["-a", "-p", "-c", cpusList, String(process.pid)], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

/** Resident set size of a process in KiB (Linux /proc), or undefined when it cannot be read. */
export function rssKiB(pid: number): number | undefined {
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB$/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}
