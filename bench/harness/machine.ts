// What the results were measured on, and where each process is pinned.
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { availableParallelism, cpus, release } from "node:os";

export interface Machine {
  cpuModel: string; cores: number; kernel: string; node: string; openssl: string;
  /**
   * How busy the machine was (all CPUs, %) over one second before the harness started anything and
   * one second after it stopped everything: other work sharing the machine shows here.
   */
  busyPctBefore: number | null; busyPctAfter: number | null;
}

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
  return {
    cpuModel, cores: availableParallelism(), kernel: release(), node: process.versions.node, openssl: process.versions.openssl,
    busyPctBefore: null, busyPctAfter: null,
  };
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

/** The CPUs this process may run on (Linux Cpus_allowed_list), or undefined when unknown. */
export function allowedCpus(): number[] | undefined {
  try {
    const m = /^Cpus_allowed_list:\s*(.+)$/m.exec(readFileSync("/proc/self/status", "utf8"));
    if (!m) return undefined;
    const ids: number[] = [];
    for (const part of m[1]!.trim().split(",")) {
      const [a, b] = part.split("-").map(Number);
      if (a === undefined || !Number.isInteger(a)) return undefined;
      for (let i = a; i <= (b ?? a); i++) ids.push(i);
    }
    return ids.length > 0 ? ids : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Keeps the load generator and the app off the proxies' CPUs, using the CPUs this process may run
 * on: with 4+ the generator, the app and the proxies each get their own; with 2–3 the generator and
 * app share the first and the proxies get the second; with 1 (or no taskset) nothing is pinned.
 */
export function planPinning(cpuIds: number[] | undefined, taskset: boolean): Pinning {
  if (!taskset) return { generator: undefined, app: undefined, proxies: undefined, note: "taskset not available: nothing pinned" };
  if (cpuIds === undefined || cpuIds.length < 2) return { generator: undefined, app: undefined, proxies: undefined, note: "1 core: nothing pinned" };
  const [a, b, c, d] = cpuIds.map(String) as [string, string, string | undefined, string | undefined];
  if (c !== undefined && d !== undefined) {
    return { generator: a, app: b, proxies: `${c},${d}`, note: `generator cpu ${a}, app cpu ${b}, proxies cpus ${c},${d}` };
  }
  return { generator: a, app: a, proxies: b, note: `generator + app + harness cpu ${a}, proxies cpu ${b}` };
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

function cpuTimes(): { total: number; idle: number } | undefined {
  try {
    const line = readFileSync("/proc/stat", "utf8").split("\n")[0]!;
    const f = line.trim().split(/\s+/).slice(1).map(Number); // user nice system idle iowait irq softirq steal …
    return { total: f.slice(0, 8).reduce((a, b) => a + b, 0), idle: (f[3] ?? 0) + (f[4] ?? 0) };
  } catch {
    return undefined;
  }
}

/** Share of all CPUs busy over the next `ms` (Linux /proc/stat), in %; undefined elsewhere. */
export async function sampleBusyPct(ms: number): Promise<number | undefined> {
  const a = cpuTimes();
  await new Promise((r) => setTimeout(r, ms));
  const b = cpuTimes();
  if (a === undefined || b === undefined || b.total <= a.total) return undefined;
  return (1 - (b.idle - a.idle) / (b.total - a.total)) * 100;
}
