// What a proxy process uses, read from Linux /proc: resident and private memory, and CPU time.
// Each reader returns undefined (never throws) when the file is missing or the process is gone.
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";

function read(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return undefined;
  }
}

/** Resident set size of a process in KiB (VmRSS), or undefined when it cannot be read. */
export function rssKiB(pid: number): number | undefined {
  const m = /^VmRSS:\s+(\d+)\s+kB$/m.exec(read(`/proc/${pid}/status`) ?? "");
  return m ? Number(m[1]) : undefined;
}

/** The malloc a process runs on: "jemalloc" when libjemalloc is mapped into it (a proxy preloads it where the host has it), else "glibc"; undefined when its maps cannot be read. */
export function mallocOf(pid: number): "jemalloc" | "glibc" | undefined {
  const maps = read(`/proc/${pid}/maps`);
  return maps === undefined ? undefined : maps.includes("/libjemalloc.so") ? "jemalloc" : "glibc";
}

/**
 * Unique set size in KiB: Private_Clean + Private_Dirty of /proc/<pid>/smaps_rollup (Linux 4.14+).
 * RSS counts the pages of the node binary and shared libraries in every process that maps them;
 * USS is what one more process of the same binary costs the host.
 */
export function ussKiB(pid: number): number | undefined {
  const text = read(`/proc/${pid}/smaps_rollup`);
  if (text === undefined) return undefined;
  const clean = /^Private_Clean:\s+(\d+)\s+kB$/m.exec(text);
  const dirty = /^Private_Dirty:\s+(\d+)\s+kB$/m.exec(text);
  return clean && dirty ? Number(clean[1]) + Number(dirty[1]) : undefined;
}

let ticksPerSecond: number | undefined;

/** USER_HZ, the unit of /proc/<pid>/stat's utime and stime (`getconf CLK_TCK`, 100 when it cannot run). */
function clockTicksPerSecond(): number {
  if (ticksPerSecond === undefined) {
    try {
      const v = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim());
      ticksPerSecond = Number.isInteger(v) && v > 0 ? v : 100;
    } catch {
      ticksPerSecond = 100;
    }
  }
  return ticksPerSecond;
}

/** One process's CPU time so far: ns per thread (schedstat) and utime + stime in ns (ticks). */
interface ProcessCpu { threadNs: Map<string, number> | undefined; statNs: number | undefined }

/**
 * Nanoseconds on CPU per thread: the first field of /proc/<pid>/task/<tid>/schedstat. Per thread
 * because /proc/<pid>/schedstat is the main thread's alone, and V8's GC and libuv's threads run
 * beside it. A thread gone between the listing and the read is left out (cpuSince notices).
 */
function threadNs(pid: number): Map<string, number> | undefined {
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return undefined;
  }
  const out = new Map<string, number>();
  for (const tid of tids) {
    const text = read(`/proc/${pid}/task/${tid}/schedstat`);
    if (text === undefined) continue;
    const ns = Number(text.split(" ", 1)[0]);
    if (!Number.isFinite(ns)) return undefined; // not the format we know: use the ticks
    out.set(tid, ns);
  }
  return out.size > 0 ? out : undefined;
}

/**
 * CPU ns a process has used so far: its live threads' schedstat (exact to the ns; threads that exited
 * are not in it), else utime + stime in whole ticks. Undefined when the process cannot be read.
 */
export function processCpuNs(pid: number): number | undefined {
  const threads = threadNs(pid);
  return threads === undefined ? statNs(pid) : [...threads.values()].reduce((a, b) => a + b, 0);
}

/**
 * utime and stime (fields 14 and 15 of /proc/<pid>/stat) in ns: every thread, living or exited, in
 * whole ticks. Undefined when the process cannot be read.
 */
export function userSysNs(pid: number): { userNs: number; sysNs: number } | undefined {
  const text = read(`/proc/${pid}/stat`);
  if (text === undefined) return undefined;
  // The command name (field 2) is in parentheses and may hold spaces: count from after its ")".
  const f = text.slice(text.lastIndexOf(")") + 2).split(" ");
  const [user, sys] = [Number(f[11]), Number(f[12])];
  if (!Number.isFinite(user) || !Number.isFinite(sys)) return undefined;
  const nsPerTick = 1e9 / clockTicksPerSecond();
  return { userNs: user * nsPerTick, sysNs: sys * nsPerTick };
}

function statNs(pid: number): number | undefined {
  const t = userSysNs(pid);
  return t === undefined ? undefined : t.userNs + t.sysNs;
}

/** CPU readings of some processes, to subtract from a later reading with cpuSince. */
export interface CpuSnapshot { pids: number[]; readings: ProcessCpu[] }

export function cpuSnapshot(pids: number[]): CpuSnapshot {
  return { pids, readings: pids.map((pid) => ({ threadNs: threadNs(pid), statNs: statNs(pid) })) };
}

/**
 * CPU the snapshot's processes used since it was taken, summed over them, in ns. From the threads'
 * schedstat when every thread of the first reading is still there (exact to the ns); otherwise,
 * or without schedstat, from the ticks of /proc/<pid>/stat (a whole tick, 10 ms at 100 Hz, of
 * error per process and reading). Undefined when a process cannot be read at all.
 */
export function cpuSince(before: CpuSnapshot): { ns: number; source: "schedstat" | "stat" } | undefined {
  const after = cpuSnapshot(before.pids);
  let exact: number | undefined = 0;
  let ticked: number | undefined = 0;
  before.readings.forEach((a, i) => {
    const b = after.readings[i]!;
    const kept = a.threadNs !== undefined && b.threadNs !== undefined && [...a.threadNs.keys()].every((tid) => b.threadNs!.has(tid));
    if (kept && exact !== undefined) for (const [tid, ns] of b.threadNs!) exact += ns - (a.threadNs!.get(tid) ?? 0);
    else exact = undefined;
    if (a.statNs !== undefined && b.statNs !== undefined && ticked !== undefined) ticked += b.statNs - a.statNs;
    else ticked = undefined;
  });
  if (exact !== undefined) return { ns: exact, source: "schedstat" };
  return ticked === undefined ? undefined : { ns: ticked, source: "stat" };
}
